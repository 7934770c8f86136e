// The users screen: the list (username, e-mail, roles, active, locked), a
// new user, and per user: e-mail and roles, deactivate or reactivate, a new
// password, unlock, delete. Controls that change something show only with
// `users:write`; the server refuses them anyway, and refuses handing on
// rights the caller does not hold (its message shows next to the roles).

import {
  html, useState, Field, FormError, Notice, Table, Loading, Screen, useAction, useLoad, formatTime,
  placing, confirmed, Checks, useNotice, FocusHeading, words,
} from "../ui.js";
import { api, call, can } from "../api.js";

const PAGE_SIZE = 20;

async function loadUsers(page) {
  // Each item carries its lock state (`locked_for`, seconds, or null).
  return api("GET", `/api/users?page=${page}&page_size=${PAGE_SIZE}&sort=username`);
}

async function loadRoleNames() {
  // Without roles:read the role names are typed.
  if (!can("roles:read")) return { names: null };
  return { names: (await api("GET", "/api/roles")).map((r) => r.name) };
}

/** Where a refusal about roles shows: the server's 403 for handing on
 * rights, or an unknown role name. */
function placeUserError(error) {
  if (error.field) return error.field;
  if (error.code === 40301 && /role to assign/.test(error.message)) return "roles";
  if (error.code === 40902 && /^username /.test(error.message)) return "username";
  return undefined;
}

/** Picks roles from the role list, or (without `roles:read`) types them. */
function RolePicker({ roleNames, value, onInput, error }) {
  if (roleNames) {
    const options = [...new Set([...roleNames, ...value])];
    return html`<${Checks} legend="Roles" name="roles" options=${options} value=${value}
      onInput=${onInput} error=${error} empty="No roles yet." />`;
  }
  return html`<${Field} label="Roles" name="roles" value=${value.join(", ")}
    onInput=${(text) => onInput(words(text))} error=${error}
    hint="Role names, separated by commas." />`;
}

function NewUser({ roleNames, onDone }) {
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [email, setEmail] = useState("");
  const [roles, setRoles] = useState([]);
  const action = useAction();
  const submit = (e) => {
    e.preventDefault();
    action.run(async () => {
      const body = { username, password, roles };
      if (email.trim() !== "") body.email = email.trim();
      const envelope = await placing(() => call("POST", "/api/users", body), placeUserError);
      setUsername("");
      setPassword("");
      setEmail("");
      setRoles([]);
      onDone(`${envelope.msg}: ${envelope.data.username}`);
    });
  };
  const fields = ["username", "password", "email", "roles"];
  return html`<form class="card" id="new-user" onSubmit=${submit} novalidate>
    <h2>New user</h2>
    <${Field} label="Username" name="username" value=${username} onInput=${setUsername}
      error=${action.error} autocomplete="off" required />
    <${Field} label="Password" name="password" type="password" value=${password} onInput=${setPassword}
      error=${action.error} autocomplete="new-password" required
      hint="At least 10 characters, with a letter and a digit; not the username." />
    <${Field} label="E-mail (optional)" name="email" type="email" value=${email} onInput=${setEmail}
      error=${action.error} autocomplete="off" />
    <${RolePicker} roleNames=${roleNames} value=${roles} onInput=${setRoles} error=${action.error} />
    <${FormError} error=${action.error} fields=${fields} />
    <button type="submit" disabled=${action.busy}>Create user</button>
  </form>`;
}

function EditUser({ user, me, roleNames, onChanged, onClose }) {
  const [email, setEmail] = useState(user.email ?? "");
  const [roles, setRoles] = useState(user.roles);
  const [password, setPassword] = useState("");
  const edit = useAction();
  const account = useAction();
  const reset = useAction();
  const self = user.id === me.user.id;
  const path = `/api/users/${encodeURIComponent(user.id)}`;

  const save = (e) => {
    e.preventDefault();
    edit.run(async () => {
      const change = {};
      if (email.trim() !== (user.email ?? "")) change.email = email.trim();
      const sameRoles = roles.length === user.roles.length && roles.every((r) => user.roles.includes(r));
      if (!sameRoles) change.roles = roles;
      if (Object.keys(change).length === 0) {
        throw new Error("Nothing changed.");
      }
      const envelope = await placing(() => call("PUT", path, change), placeUserError);
      onChanged(`${envelope.msg}: ${user.username}`);
    });
  };
  const setActive = (active) =>
    account.run(async () => {
      if (!active && !confirmed(`Deactivate ${user.username}? Every login of theirs ends and their API keys stop working.`)) return;
      const envelope = await call("PUT", path, { active });
      onChanged(`${active ? "reactivated" : "deactivated"}: ${user.username} (${envelope.msg})`);
    });
  const unlock = () =>
    account.run(async () => {
      const envelope = await call("POST", `${path}/unlock`);
      onChanged(`${envelope.msg}: ${user.username}`);
    });
  const remove = () =>
    account.run(async () => {
      if (!confirmed(`Delete ${user.username}? This cannot be undone.`)) return;
      const envelope = await call("DELETE", path);
      onClose();
      onChanged(`${envelope.msg}: ${user.username}`);
    });
  const resetPassword = (e) => {
    e.preventDefault();
    reset.run(async () => {
      if (!confirmed(`Set a new password for ${user.username}? Every login of theirs ends and their API keys are disabled.`)) return;
      const envelope = await call("POST", `${path}/reset-password`, { password });
      setPassword("");
      onChanged(envelope.msg);
    });
  };

  return html`<section class="card user-panel" id="edit-user" aria-labelledby="edit-user-title">
    <div class="panel-head">
      <${FocusHeading} id="edit-user-title">User ${user.username}</${FocusHeading}>
      <button type="button" class="secondary" onClick=${onClose}>Close</button>
    </div>
    <form id="user-details" onSubmit=${save} novalidate>
      <${Field} label="E-mail" name="email" type="email" value=${email} onInput=${setEmail}
        error=${edit.error} autocomplete="off" />
      <${RolePicker} roleNames=${roleNames} value=${roles} onInput=${setRoles} error=${edit.error} />
      <${FormError} error=${edit.error} fields=${["email", "roles"]} />
      <button type="submit" disabled=${edit.busy}>Save changes</button>
    </form>
    <h3>Account</h3>
    <p>
      ${user.active ? "Active." : "Inactive: cannot log in; API keys are refused."}
      ${user.locked_for ? ` Locked after failed logins for ${user.locked_for} s more.` : ""}
    </p>
    ${!self && html`<div class="actions">
      ${user.active
        ? html`<button type="button" class="danger" disabled=${account.busy} onClick=${() => setActive(false)}>Deactivate</button>`
        : html`<button type="button" disabled=${account.busy} onClick=${() => setActive(true)}>Reactivate</button>`}
      ${user.locked_for && html`<button type="button" disabled=${account.busy} onClick=${unlock}>Unlock</button>`}
      <button type="button" class="danger" disabled=${account.busy} onClick=${remove}>Delete user</button>
    </div>`}
    ${self && html`<p class="muted">This is you: change your own password under <a href="#/account">your account</a>.</p>`}
    <${FormError} error=${account.error} />
    ${!self && html`<form id="reset-password" onSubmit=${resetPassword} novalidate>
      <h3>New password</h3>
      <${Field} label="New password" name="password" type="password" value=${password} onInput=${setPassword}
        error=${reset.error} autocomplete="new-password" required
        hint="Ends every login of the user, disables their API keys and unlocks the account." />
      <${FormError} error=${reset.error} fields=${["password"]} />
      <button type="submit" disabled=${reset.busy}>Reset password</button>
    </form>`}
  </section>`;
}

export default function Users({ me }) {
  const [page, setPage] = useState(1);
  const [editing, setEditing] = useState(null);
  const [notice, say] = useNotice();
  const users = useLoad(() => loadUsers(page), [page]);
  const roles = useLoad(loadRoleNames, []);
  const writable = can("users:write");
  const roleNames = roles.data?.names ?? null;
  const changed = (message) => {
    say(message);
    users.reload();
  };
  const columns = [
    ["Username", (u) => u.username],
    ["E-mail", (u) => u.email ?? "—"],
    ["Roles", (u) => u.roles.join(", ") || html`<span class="muted">none</span>`],
    ["Active", (u) => u.active
      ? html`<span class="badge badge-ok">active</span>`
      : html`<span class="badge badge-off">inactive</span>`],
    ["Locked", (u) => u.locked_for
      ? html`<span class="badge badge-bad" title=${`for ${u.locked_for} s more`}>locked</span>`
      : "no"],
    ["Created", (u) => formatTime(u.created_at)],
  ];
  if (writable) {
    columns.push(["", (u) => html`<button type="button" class="secondary"
      aria-label=${`Edit ${u.username}`} onClick=${() => { say(null); setEditing(u.id); }}>Edit</button>`]);
  }
  const data = users.data;
  const pages = data ? Math.max(1, Math.ceil(data.total / PAGE_SIZE)) : 1;
  const current = data?.items.find((u) => u.id === editing);
  return html`<${Screen} title="Users">
    ${notice && html`<${Notice}>${notice}</${Notice}>`}
    <${Loading} state=${users}>
      <${Table} label="Users" columns=${columns} rows=${data?.items} empty="No users on this page." />
      ${pages > 1 && html`<div class="pager actions">
        <button type="button" class="secondary" disabled=${page <= 1} onClick=${() => setPage(page - 1)}>Previous</button>
        <span>Page ${page} of ${pages} (${data.total} users)</span>
        <button type="button" class="secondary" disabled=${page >= pages} onClick=${() => setPage(page + 1)}>Next</button>
      </div>`}
    </${Loading}>
    ${writable && html`<div class="columns">
      ${current && html`<${EditUser} key=${`${current.id}-${current.updated_at}-${current.locked_for}`}
        user=${current} me=${me} roleNames=${roleNames} onChanged=${changed} onClose=${() => setEditing(null)} />`}
      <${NewUser} roleNames=${roleNames} onDone=${changed} />
    </div>`}
  </${Screen}>`;
}
