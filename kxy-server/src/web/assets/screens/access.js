// The access screen: registered endpoints (`access:read`; defined by
// `access:admin`), endpoint grants (`access:read`; made and deleted with
// `access:write`) and the check "may user U call METHOD PATH?"
// (`access:check`), showing the server's verdict and its reason.

import {
  html, useState, Field, Select, FormError, Notice, Table, Loading, Screen, useAction, useLoad,
  formatTime, placing, confirmed, Check, useNotice,
} from "../ui.js";
import { api, call, can } from "../api.js";

const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "*"];
const LEVELS = ["read", "write", "admin"];

/** Every user (for names instead of ids), if the caller may list them. */
async function allUsers() {
  if (!can("users:read")) return null;
  const users = [];
  for (let page = 1; ; page++) {
    const data = await api("GET", `/api/users?page=${page}&page_size=200&sort=username`);
    users.push(...data.items);
    if (data.items.length === 0 || users.length >= data.total) return users;
  }
}

async function load() {
  const [endpoints, grants, users, roles] = await Promise.all([
    api("GET", "/api/access/endpoints"),
    api("GET", "/api/access/grants"),
    allUsers().catch(() => null),
    can("roles:read") ? api("GET", "/api/roles").then((rs) => rs.map((r) => r.name), () => null) : null,
  ]);
  endpoints.sort((a, b) => a.path.localeCompare(b.path) || a.method.localeCompare(b.method));
  return { endpoints, grants, users, roles };
}

function endpointText(endpoints, id) {
  const e = endpoints.find((x) => x.id === id);
  return e ? `${e.method} ${e.path}` : id;
}

function userName(users, id) {
  return users?.find((u) => u.id === id)?.username ?? id;
}

/** Where an endpoint refusal shows: the server names `endpoint` for both
 * the method and the path. */
function placeEndpointError(error) {
  if (error.field === "endpoint") return /^endpoint: method/.test(error.message) ? "method" : "path";
  if (error.field) return error.field;
  if (error.code === 40902) return "path";
  return undefined;
}

function NewEndpoint({ onDone }) {
  const [method, setMethod] = useState("GET");
  const [path, setPath] = useState("");
  const [requireAuth, setRequireAuth] = useState(true);
  const action = useAction();
  const submit = (e) => {
    e.preventDefault();
    action.run(async () => {
      const envelope = await placing(
        () => call("POST", "/api/access/endpoints", { method, path, require_auth: requireAuth }),
        placeEndpointError,
      );
      setPath("");
      setRequireAuth(true);
      onDone(`${envelope.msg}: ${envelope.data.method} ${envelope.data.path}`);
    });
  };
  return html`<form class="card" id="new-endpoint" onSubmit=${submit} novalidate>
    <h3>New endpoint</h3>
    <${Select} label="Method" name="method" value=${method} onInput=${setMethod} options=${METHODS}
      error=${action.error} />
    <${Field} label="Path" name="path" value=${path} onInput=${setPath} error=${action.error}
      autocomplete="off" required placeholder="/orders/{id}"
      hint="{name} matches one segment, a final * the rest." />
    <${Check} name="require_auth" label="Requires login (unticked: open to everyone)" checked=${requireAuth}
      onInput=${setRequireAuth} />
    <${FormError} error=${action.error} fields=${["method", "path"]} />
    <button type="submit" disabled=${action.busy}>Add endpoint</button>
  </form>`;
}

function Endpoints({ data, onChanged }) {
  const action = useAction();
  const admin = can("access:admin");
  const toggle = (e) =>
    action.run(async () => {
      if (e.require_auth && !confirmed(`Open ${e.method} ${e.path} to everyone, without login?`)) return;
      const envelope = await call("PUT", `/api/access/endpoints/${encodeURIComponent(e.id)}`, {
        require_auth: !e.require_auth,
      });
      onChanged(`${envelope.msg}: ${e.method} ${e.path}`);
    });
  const remove = (e) =>
    action.run(async () => {
      if (!confirmed(`Delete endpoint ${e.method} ${e.path} and every grant on it?`)) return;
      const envelope = await call("DELETE", `/api/access/endpoints/${encodeURIComponent(e.id)}`);
      onChanged(`${envelope.msg}: ${e.method} ${e.path}`);
    });
  const columns = [
    ["Method", (e) => html`<code>${e.method}</code>`],
    ["Path", (e) => html`<code>${e.path}</code>`],
    ["Login", (e) => e.require_auth
      ? html`<span class="badge badge-ok">required</span>`
      : html`<span class="badge badge-bad">open to everyone</span>`],
  ];
  if (admin) {
    columns.push(["", (e) => html`<div class="actions">
      <button type="button" class="secondary" disabled=${action.busy} onClick=${() => toggle(e)}>
        ${e.require_auth ? "Open to everyone" : "Require login"}</button>
      <button type="button" class="danger" disabled=${action.busy} onClick=${() => remove(e)}>Delete</button>
    </div>`]);
  }
  return html`<section aria-labelledby="endpoints-title">
    <h2 id="endpoints-title">Endpoints</h2>
    <${FormError} error=${action.error} />
    <${Table} label="Endpoints" columns=${columns} rows=${data.endpoints} empty="No endpoints registered." />
    ${admin && html`<${NewEndpoint} onDone=${onChanged} />`}
  </section>`;
}

/** Where a grant refusal shows: an unknown user or role next to the
 * subject, a bad expiry next to it. */
function placeGrantError(error) {
  if (error.field === "roles") return "subject";
  if (error.field) return error.field;
  if (error.code === 40402 && /^(user|role) /.test(error.message)) return "subject";
  return undefined;
}

function NewGrant({ data, onDone }) {
  const [kind, setKind] = useState("user");
  const [subject, setSubject] = useState("");
  const [chosenEndpoint, setEndpointId] = useState("");
  // The first endpoint until one is chosen (or if the chosen one is gone).
  const endpointId = data.endpoints.some((ep) => ep.id === chosenEndpoint)
    ? chosenEndpoint
    : data.endpoints[0]?.id ?? "";
  const [level, setLevel] = useState("read");
  const [expires, setExpires] = useState("");
  const action = useAction();
  const submit = (e) => {
    e.preventDefault();
    action.run(async () => {
      const typed = subject.trim();
      if (typed === "") {
        throw Object.assign(new Error(`Name the ${kind}.`), { field: "subject" });
      }
      // Users are granted by id; a name the list knows is turned into one.
      const id = kind === "user" ? data.users?.find((u) => u.username === typed)?.id ?? typed : typed;
      const body = { subject: { type: kind, id }, endpoint_id: endpointId, level };
      if (expires !== "") {
        const at = Date.parse(expires);
        if (Number.isNaN(at)) throw Object.assign(new Error("Not a date and time."), { field: "expires_at" });
        body.expires_at = Math.floor(at / 1000);
      }
      const envelope = await placing(() => call("POST", "/api/access/grants", body), placeGrantError);
      setSubject("");
      setExpires("");
      onDone(`${envelope.msg}: ${level} on ${endpointText(data.endpoints, endpointId)} to ${kind} ${typed}`);
    });
  };
  if (data.endpoints.length === 0) {
    return html`<p class="muted" id="new-grant">Register an endpoint before granting access to it.</p>`;
  }
  const subjectField = kind === "role" && data.roles
    ? html`<${Select} label="Role" name="subject" value=${subject} onInput=${setSubject}
        options=${[["", "Choose a role"], ...data.roles]} error=${action.error} />`
    : html`<${Field} label=${kind === "user" ? "Username" : "Role"} name="subject" value=${subject}
        onInput=${setSubject} error=${action.error} autocomplete="off" required
        list=${kind === "user" && data.users ? "grant-usernames" : undefined}
        hint=${kind === "user" && !data.users ? "The user's id (you may not list users)." : undefined} />`;
  return html`<form class="card" id="new-grant" onSubmit=${submit} novalidate>
    <h3>New grant</h3>
    <${Select} label="Grant to" name="type" value=${kind} onInput=${(k) => { setKind(k); setSubject(""); }}
      options=${[["user", "A user"], ["role", "A role"]]} error=${action.error} />
    ${subjectField}
    ${data.users && html`<datalist id="grant-usernames">
      ${data.users.map((u) => html`<option value=${u.username} />`)}
    </datalist>`}
    <${Select} label="Endpoint" name="endpoint_id" value=${endpointId} onInput=${setEndpointId}
      options=${data.endpoints.map((ep) => [ep.id, `${ep.method} ${ep.path}`])} error=${action.error} />
    <${Select} label="Level" name="level" value=${level} onInput=${setLevel} options=${LEVELS}
      error=${action.error} />
    <${Field} label="Expires (optional)" name="expires_at" type="datetime-local" value=${expires}
      onInput=${setExpires} error=${action.error} hint="Empty: the grant does not expire." />
    <${FormError} error=${action.error} fields=${["type", "subject", "endpoint_id", "level", "expires_at"]} />
    <button type="submit" disabled=${action.busy}>Grant</button>
  </form>`;
}

function Grants({ data, onChanged }) {
  const action = useAction();
  const writable = can("access:write");
  const remove = (g) =>
    action.run(async () => {
      const what = `${g.level} on ${endpointText(data.endpoints, g.endpoint_id)}`;
      if (!confirmed(`Delete the grant of ${what}?`)) return;
      const envelope = await call("DELETE", `/api/access/grants/${encodeURIComponent(g.id)}`);
      onChanged(`${envelope.msg}: ${what}`);
    });
  const columns = [
    ["Subject", (g) => g.subject.type === "user"
      ? `user ${userName(data.users, g.subject.id)}`
      : `role ${g.subject.id}`],
    ["Endpoint", (g) => html`<code>${endpointText(data.endpoints, g.endpoint_id)}</code>`],
    ["Level", (g) => g.level],
    ["Expires", (g) => g.expires_at ? formatTime(g.expires_at) : "never"],
    ["Granted by", (g) => userName(data.users, g.granted_by)],
  ];
  if (writable) {
    columns.push(["", (g) => html`<button type="button" class="danger" disabled=${action.busy}
      onClick=${() => remove(g)}>Delete</button>`]);
  }
  return html`<section aria-labelledby="grants-title">
    <h2 id="grants-title">Grants</h2>
    <${FormError} error=${action.error} />
    <${Table} label="Grants" columns=${columns} rows=${data.grants} empty="No grants." />
    ${writable && html`<${NewGrant} data=${data} onDone=${onChanged} />`}
  </section>`;
}

function CheckAccess() {
  const [subject, setSubject] = useState("");
  const [method, setMethod] = useState("GET");
  const [path, setPath] = useState("");
  const [level, setLevel] = useState("");
  const [verdict, setVerdict] = useState(null);
  const action = useAction();
  const submit = (e) => {
    e.preventDefault();
    setVerdict(null);
    action.run(async () => {
      const body = { subject, method, path };
      if (level !== "") body.level = level;
      const data = await api("POST", "/api/access/check", body);
      // The matching endpoint by name, for those who may read endpoints.
      let endpoint = data.endpoint_id;
      if (endpoint && can("access:read")) {
        const e = await api("GET", `/api/access/endpoints/${encodeURIComponent(endpoint)}`).catch(() => null);
        if (e) endpoint = `${e.method} ${e.path} (${e.id})`;
      }
      setVerdict({ ...data, endpoint, asked: `${subject} ${method} ${path}` });
    });
  };
  return html`<section aria-labelledby="check-title">
    <h2 id="check-title">Check access</h2>
    <form class="card" id="check-access" onSubmit=${submit} novalidate>
      <p class="muted">May this user call this endpoint? Answered as other services are answered.</p>
      <${Field} label="Username" name="subject" value=${subject} onInput=${setSubject}
        error=${action.error} autocomplete="off" required />
      <${Select} label="Method" name="method" value=${method} onInput=${setMethod}
        options=${METHODS.filter((m) => m !== "*")} error=${action.error} />
      <${Field} label="Path" name="path" value=${path} onInput=${setPath} error=${action.error}
        autocomplete="off" required placeholder="/orders/42" />
      <${Select} label="Level needed" name="level" value=${level} onInput=${setLevel}
        options=${[["", "As the method needs"], ...LEVELS]} error=${action.error} />
      <${FormError} error=${action.error} fields=${["subject", "method", "path", "level"]} />
      <button type="submit" disabled=${action.busy}>Check</button>
      ${verdict && html`<div id="check-result" class=${`verdict ${verdict.allowed ? "verdict-yes" : "verdict-no"}`}
        role="status">
        <p><strong>${verdict.allowed ? "Allowed" : "Denied"}</strong> <span class="muted">${verdict.asked}</span></p>
        <p id="check-reason">${verdict.reason}</p>
        <dl class="facts">
          <dt>Level held</dt><dd>${verdict.level ?? "none"}</dd>
          <dt>Level needed</dt><dd>${verdict.required}</dd>
          <dt>Endpoint</dt><dd>${verdict.endpoint ?? "none matches"}</dd>
        </dl>
      </div>`}
    </form>
  </section>`;
}

function AccessMap() {
  const state = useLoad(load, []);
  const [notice, say] = useNotice();
  const changed = (message) => {
    say(message);
    state.reload();
  };
  return html`${notice && html`<${Notice}>${notice}</${Notice}>`}
    <${Loading} state=${state}>
      ${state.data && html`<${Endpoints} data=${state.data} onChanged=${changed} />
        <${Grants} data=${state.data} onChanged=${changed} />`}
    </${Loading}>`;
}

export default function Access() {
  return html`<${Screen} title="Access">
    ${can("access:read") && html`<${AccessMap} />`}
    ${can("access:check") && html`<${CheckAccess} />`}
  </${Screen}>`;
}
