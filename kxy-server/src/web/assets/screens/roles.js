// The roles screen: every role with its permissions; with `roles:write`, a
// new role, a role's description and permissions, and deleting one. The
// permissions are picked from the server's catalog (`GET /api/permissions`),
// and others (wildcards such as `counters:*`) typed. The built-in `admin`
// role is shown but offers no change.

import {
  html, useState, Field, FormError, Notice, Table, Loading, Screen, useAction, useLoad, placing,
  confirmed, Checks, useNotice, FocusHeading, words,
} from "../ui.js";
import { api, call, can } from "../api.js";

async function load() {
  const [roles, catalog] = await Promise.all([api("GET", "/api/roles"), api("GET", "/api/permissions")]);
  return { roles, catalog };
}

/** Where a refusal shows: a bad permission next to the typed ones, one the
 * caller lacks next to the picked ones, a taken name next to the name. */
function placeRoleError(error) {
  if (/is not a permission/.test(error.message)) return "more_permissions";
  if (error.field) return error.field;
  if (error.code === 40301) return "permissions";
  if (error.code === 40902) return "name";
  return undefined;
}

/** The form for a new role (no `role`) or a change to `role`. */
function RoleForm({ role, catalog, onDone, onClose }) {
  const editing = role !== undefined;
  const held = role?.permissions ?? [];
  const [name, setName] = useState("");
  const [description, setDescription] = useState(role?.description ?? "");
  const [picked, setPicked] = useState(held.filter((p) => catalog.includes(p)));
  const [more, setMore] = useState(held.filter((p) => !catalog.includes(p)).join(", "));
  const action = useAction();
  const submit = (e) => {
    e.preventDefault();
    action.run(async () => {
      const permissions = [...new Set([...picked, ...words(more)])];
      const envelope = editing
        ? await placing(
            () => call("PUT", `/api/roles/${encodeURIComponent(role.name)}`, { description, permissions }),
            placeRoleError,
          )
        : await placing(() => call("POST", "/api/roles", { name, description, permissions }), placeRoleError);
      if (!editing) {
        setName("");
        setDescription("");
        setPicked([]);
        setMore("");
      }
      onDone(`${envelope.msg}: ${envelope.data.name}`);
    });
  };
  const id = editing ? "edit-role" : "new-role";
  // Editing has no name field: a refusal about the name shows under the form.
  const fields = [...(editing ? [] : ["name"]), "description", "permissions", "more_permissions"];
  return html`<form class="card" id=${id} onSubmit=${submit} novalidate>
    ${editing
      ? html`<div class="panel-head">
          <${FocusHeading} id="edit-role-title">Role ${role.name}</${FocusHeading}>
          <button type="button" class="secondary" onClick=${onClose}>Close</button>
        </div>`
      : html`<h2>New role</h2>`}
    ${!editing && html`<${Field} label="Name" name="name" value=${name} onInput=${setName}
      error=${action.error} autocomplete="off" required hint="Lower-case letters, digits, _ and -." />`}
    <${Field} label="Description" name="description" value=${description} onInput=${setDescription}
      error=${action.error} autocomplete="off" />
    <${Checks} legend="Permissions" name="permissions" options=${catalog} value=${picked}
      onInput=${setPicked} error=${action.error} />
    <${Field} label="Other permissions" name="more_permissions" value=${more} onInput=${setMore}
      error=${action.error} autocomplete="off"
      hint="resource:action, separated by commas; * for any (counters:*, *:*)." />
    <${FormError} error=${action.error} fields=${fields} />
    <button type="submit" disabled=${action.busy}>${editing ? "Save changes" : "Create role"}</button>
  </form>`;
}

export default function Roles() {
  const state = useLoad(load, []);
  const [editing, setEditing] = useState(null);
  const [notice, say] = useNotice();
  const remove = useAction();
  const writable = can("roles:write");
  const changed = (message) => {
    say(message);
    state.reload();
  };
  const del = (role) =>
    remove.run(async () => {
      if (!confirmed(`Delete role ${role.name}? Its members lose it and its endpoint grants are deleted.`)) return;
      const envelope = await call("DELETE", `/api/roles/${encodeURIComponent(role.name)}`);
      if (editing === role.name) setEditing(null);
      changed(`${envelope.msg}: ${role.name}`);
    });
  const columns = [
    ["Name", (r) => html`${r.name}${r.builtin && html` <span class="badge">built in</span>`}`],
    ["Description", (r) => r.description || html`<span class="muted">—</span>`],
    ["Permissions", (r) => r.permissions.length
      ? html`<ul class="perm-list">${r.permissions.map((p) => html`<li><code>${p}</code></li>`)}</ul>`
      : html`<span class="muted">none</span>`],
  ];
  if (writable) {
    columns.push(["", (r) => r.builtin
      ? html`<span class="muted">cannot be changed</span>`
      : html`<div class="actions">
          <button type="button" class="secondary" aria-label=${`Edit role ${r.name}`}
            onClick=${() => { say(null); remove.setError(null); setEditing(r.name); }}>Edit</button>
          <button type="button" class="danger" aria-label=${`Delete role ${r.name}`}
            disabled=${remove.busy} onClick=${() => del(r)}>Delete</button>
        </div>`]);
  }
  const data = state.data;
  const current = data?.roles.find((r) => r.name === editing && !r.builtin);
  return html`<${Screen} title="Roles">
    ${notice && html`<${Notice}>${notice}</${Notice}>`}
    <${FormError} error=${remove.error} />
    <${Loading} state=${state}>
      <${Table} label="Roles" columns=${columns} rows=${data?.roles} />
      ${writable && data && html`<div class="columns">
        ${current && html`<${RoleForm} key=${current.name + JSON.stringify(current)}
          role=${current} catalog=${data.catalog} onDone=${changed} onClose=${() => setEditing(null)} />`}
        <${RoleForm} catalog=${data.catalog} onDone=${changed} />
      </div>`}
    </${Loading}>
  </${Screen}>`;
}
