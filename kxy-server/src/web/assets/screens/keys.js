// API keys: the caller's keys for programs. Create one (its full secret is
// shown once, right after creation, and never again), list them by their
// prefix, turn them off and on, delete them. Holders of `keys:admin` may
// also see and manage every user's keys.
//
// Every logged-in user may manage their own keys (the routes are
// `Access::Own`: a login session holds `keys:read|write` over its own
// records whatever its roles), so the own-key controls are offered to all;
// the everyone's-keys view only to `keys:admin`. The server decides anyway.

import {
  html, useState, useEffect, useRef, useId, Field, Select, FormError, Notice, Table, Loading, CopyButton, Screen,
  useLoad, useAction, formatTime,
} from "../ui.js";
import { api, can } from "../api.js";

/** The self-service permissions every user holds over their own records;
 * a key may be given them whatever the user's roles. */
const SELF_SERVICE = ["keys:read", "keys:write", "credentials:read", "credentials:write"];

/** What a new key may be limited to: the caller's permissions (spelled
 * out from the catalog when the caller may read it, so a wildcard like
 * `*:*` becomes the permissions it covers) and the self-service ones. */
async function scopeChoices(me) {
  let held = me.permissions;
  if (can("roles:read")) {
    try {
      held = (await api("GET", "/api/permissions")).filter((p) => can(p));
    } catch {
      // The catalog is a convenience; the caller's own list will do.
    }
  }
  return [...new Set([...held, ...SELF_SERVICE])].sort();
}

/** A date input's value (YYYY-MM-DD) as Unix seconds at the end of that
 * day, local time; undefined when empty. */
function endOfDay(value) {
  if (!value) return undefined;
  const at = new Date(`${value}T23:59:59`);
  return Number.isNaN(at.getTime()) ? undefined : Math.floor(at.getTime() / 1000);
}

function expired(key) {
  return key.expires_at !== null && key.expires_at !== undefined && key.expires_at * 1000 <= Date.now();
}

function StatusBadge({ keyRow }) {
  if (keyRow.status !== "active") return html`<span class="badge badge-off">disabled</span>`;
  if (expired(keyRow)) return html`<span class="badge badge-bad">expired</span>`;
  return html`<span class="badge badge-ok">active</span>`;
}

function Scopes({ permissions }) {
  if (!permissions) return html`<span class="muted">all of the owner's</span>`;
  if (permissions.length === 0) return html`<span class="muted">none</span>`;
  return html`<span class="scopes">${permissions.map((p) => html`<code>${p}</code> `)}</span>`;
}

/** The permissions a new key is limited to: all the owner's, or the ones
 * ticked. Shows the server's message about `permissions` under it. */
function ScopePicker({ choices, scope, setScope, picked, setPicked, error }) {
  const id = useId("scope");
  const mine = error && error.field === "permissions";
  const toggle = (p, on) => setPicked(on ? [...picked, p] : picked.filter((x) => x !== p));
  return html`<fieldset class="field scope-picker" aria-describedby=${mine ? `${id}-error` : undefined}>
    <legend>Permissions</legend>
    <div class="key-choice">
      <input type="radio" id=${`${id}-all`} name="scope" value="all" checked=${scope === "all"}
        onChange=${() => setScope("all")} />
      <label for=${`${id}-all`}>All of mine, now and later</label>
    </div>
    <div class="key-choice">
      <input type="radio" id=${`${id}-some`} name="scope" value="some" checked=${scope === "some"}
        onChange=${() => setScope("some")} />
      <label for=${`${id}-some`}>Only the ones I pick</label>
    </div>
    ${scope === "some" && html`<div class="key-choices" role="group" aria-label="Permissions of the key">
      ${choices.map((p, i) => html`<div class="key-choice">
        <input type="checkbox" id=${`${id}-p${i}`} value=${p} checked=${picked.includes(p)}
          onChange=${(e) => toggle(p, e.target.checked)} />
        <label for=${`${id}-p${i}`}><code>${p}</code></label>
      </div>`)}
    </div>`}
    ${mine && html`<p class="error" id=${`${id}-error`} role="alert" data-field="permissions">${error.message}</p>`}
  </fieldset>`;
}

function CreateKey({ me, onCreated }) {
  const [name, setName] = useState("");
  const [keyType, setKeyType] = useState("public");
  const [scope, setScope] = useState("all");
  const [picked, setPicked] = useState([]);
  const [expires, setExpires] = useState("");
  const choices = useLoad(() => scopeChoices(me), [me]);
  const action = useAction();
  const submit = (e) => {
    e.preventDefault();
    action.run(async () => {
      const body = { name, key_type: keyType };
      if (scope === "some") {
        if (picked.length === 0) {
          throw Object.assign(new Error("Pick at least one permission, or choose “All of mine”."), {
            field: "permissions",
          });
        }
        body.permissions = picked;
      }
      if (expires) {
        const at = endOfDay(expires);
        if (at === undefined) {
          throw Object.assign(new Error("expires_at: not a date"), { field: "expires_at" });
        }
        body.expires_at = at;
      }
      const created = await api("POST", "/api/keys", body);
      setName("");
      setScope("all");
      setPicked([]);
      setExpires("");
      onCreated(created);
    });
  };
  const fields = ["name", "key_type", "permissions", "expires_at"];
  return html`<form id="create-key" class="card" onSubmit=${submit} novalidate>
    <h2>Create a key</h2>
    <${Field} label="Name" name="name" value=${name} onInput=${setName} error=${action.error}
      autocomplete="off" hint="What uses it, say orders-service." required />
    <${Select} label="Type" name="key_type" value=${keyType} onInput=${setKeyType} error=${action.error}
      options=${[["public", "Public: used from outside"], ["local", "Local: a service next to kxy"]]} />
    <${Loading} state=${choices}>
      <${ScopePicker} choices=${choices.data ?? []} scope=${scope} setScope=${setScope}
        picked=${picked} setPicked=${setPicked} error=${action.error} />
    </${Loading}>
    <${Field} label="Expires on" name="expires_at" type="date" value=${expires} onInput=${setExpires}
      error=${action.error} hint="Optional: the key stops working at the end of that day. Empty: never." />
    <${FormError} error=${action.error} fields=${fields} />
    <button type="submit" disabled=${action.busy}>Create key</button>
  </form>`;
}

/** The new key, shown once: it lives only in this screen's memory and is
 * gone when the user dismisses it or leaves the screen. */
function NewKey({ created, onDone }) {
  const title = useRef(null);
  useEffect(() => {
    title.current?.focus();
  }, [created]);
  return html`<section class="card new-key" id="new-key" aria-labelledby="new-key-title">
    <h2 id="new-key-title" tabindex="-1" ref=${title}>Key “${created.name}” created</h2>
    <${Notice} kind="warn"><strong>Copy the secret now: it is shown only this once.</strong> kxy keeps
      only its hash and cannot show it again. If it is lost, delete the key and create another.</${Notice}>
    <p class="label">Secret</p>
    <code class="secret" id="new-key-secret">${created.secret}</code>
    <div class="actions"><${CopyButton} text=${created.secret} label="Copy secret" /></div>
    <p class="label">Key id</p>
    <code class="mono" id="new-key-id">${created.id}</code>
    <div class="actions"><${CopyButton} text=${created.id} label="Copy key id" /></div>
    <p class="muted">Send it as <code>Authorization: Bearer <var>secret</var></code>, or as the pair${" "}<code
      >X-API-Key: <var>key id</var></code> + <code>X-API-Secret: <var>secret</var></code>.</p>
    <button type="button" onClick=${onDone}>I have stored it</button>
  </section>`;
}

/** Usernames by id, for the everyone's-keys view (when the caller may
 * read users; else the id is shown). */
async function usernames() {
  if (!can("users:read")) return {};
  const names = {};
  for (let page = 1; ; page++) {
    const data = await api("GET", `/api/users?page=${page}&page_size=200`);
    for (const u of data.items) names[u.id] = u.username;
    if (page * data.page_size >= data.total || data.items.length === 0) return names;
  }
}

export default function Keys({ me }) {
  const admin = can("keys:admin");
  const [everyone, setEveryone] = useState(false);
  const [created, setCreated] = useState(null);
  const [done, setDone] = useState(null);
  const list = useLoad(async () => {
    if (!everyone) return { keys: await api("GET", "/api/keys"), names: {} };
    const [keys, names] = await Promise.all([api("GET", "/api/keys?all=true"), usernames().catch(() => ({}))]);
    return { keys, names };
  }, [everyone]);
  const action = useAction();

  const change = (key, status) => {
    setDone(null);
    action.run(async () => {
      await api("PATCH", `/api/keys/${encodeURIComponent(key.id)}`, { status });
      setDone(`Key “${key.name}” ${status === "active" ? "turned on" : "disabled"}.`);
      await list.reload();
    });
  };
  const remove = (key) => {
    setDone(null);
    if (!window.confirm(`Delete the key “${key.name}” (${key.display_prefix})? Programs using it stop working.`)) {
      return;
    }
    action.run(async () => {
      await api("DELETE", `/api/keys/${encodeURIComponent(key.id)}`);
      setDone(`Key “${key.name}” deleted.`);
      await list.reload();
    });
  };

  const owner = (key) => {
    if (key.user_id === me.user.id) return html`<span>${me.user.username} (you)</span>`;
    const name = list.data?.names[key.user_id];
    return name ? html`<span>${name}</span>` : html`<code>${key.user_id}</code>`;
  };
  const columns = [
    ["Name", (k) => html`<strong>${k.name}</strong>`],
    ...(everyone ? [["Owner", owner]] : []),
    ["Key", (k) => html`<code class="prefix">${k.display_prefix}</code>`],
    ["Status", (k) => html`<${StatusBadge} keyRow=${k} />`],
    ["Type", (k) => k.key_type],
    ["Permissions", (k) => html`<${Scopes} permissions=${k.permissions} />`],
    ["Created", (k) => formatTime(k.created_at)],
    ["Last used", (k) => formatTime(k.last_used_at)],
    ["Expires", (k) => (k.expires_at ? formatTime(k.expires_at) : "never")],
    ["", (k) => html`<div class="actions" data-key=${k.id}>
      ${k.status === "active"
        ? html`<button type="button" class="secondary" aria-label=${`Disable ${k.name}`}
            disabled=${action.busy} onClick=${() => change(k, "disabled")}>Disable</button>`
        : html`<button type="button" class="secondary" aria-label=${`Turn on ${k.name}`}
            disabled=${action.busy} onClick=${() => change(k, "active")}>Turn on</button>`}
      <button type="button" class="danger" aria-label=${`Delete ${k.name}`} disabled=${action.busy}
        onClick=${() => remove(k)}>Delete</button>
    </div>`],
  ];

  return html`<${Screen} title="API keys">
    <p class="muted">Keys let programs call kxy as you, with your permissions or fewer.</p>
    ${created && html`<${NewKey} created=${created} onDone=${() => setCreated(null)} />`}
    <h2>${everyone ? "Every user's keys" : "Your keys"}</h2>
    ${admin && html`<div class="key-choice">
      <input type="checkbox" id="keys-everyone" checked=${everyone}
        onChange=${(e) => setEveryone(e.target.checked)} />
      <label for="keys-everyone">Show every user's keys</label>
    </div>`}
    <${FormError} error=${action.error} />
    ${done && html`<${Notice}>${done}</${Notice}>`}
    <${Loading} state=${list}>
      <${Table} label="API keys" columns=${columns} rows=${list.data?.keys}
        empty=${everyone ? "No user has a key yet." : "You have no keys yet."} />
    </${Loading}>
    <${CreateKey} me=${me} onCreated=${(key) => {
      setDone(null);
      setCreated(key);
      list.reload();
    }} />
  </${Screen}>`;
}
