// Stored credentials: the caller's upstream model endpoints and their API
// keys. The list shows each key masked only; a key typed into the form is
// sent once and the form forgets it.
//
// No "reveal": the server has GET /api/credentials/{id}/secret for
// holders of `credentials:reveal`, meant for a trusted service reading its
// own keys. The page never offers it: a person who stored a key has it
// elsewhere, and a secret painted on a screen ends up in screenshots,
// screen shares and the browser's memory. The masked form tells keys apart.
//
// Every logged-in user may manage their own credentials (the routes are
// `Access::Own`), so the controls are offered to all.

import {
  html, useState, useEffect, useRef, Field, FormError, Notice, Table, Loading, Screen, useLoad,
  useAction, formatTime, TextArea,
} from "../ui.js";
import { api } from "../api.js";

/** The envelope code of "storing secrets is disabled" (no --master-key). */
const VAULT_DISABLED = 50302;

/** The server cannot store secrets: said in words, with what to do. */
function VaultDisabled({ error }) {
  return html`<div class="notice notice-error vault-disabled" role="alert">
    <p><strong>This server cannot store credentials:</strong> it was started without a master key,
      and kxy never keeps an API key unencrypted.</p>
    <p>Ask whoever runs kxy-server to start it with <code>--master-key</code>
      (<code>kxy-server keygen</code> prints a new one).</p>
    <p class="muted">The server said: ${error.message}</p>
  </div>`;
}

const EMPTY = { name: "", model_id: "", base_url: "", api_key: "", config: "" };

function fieldsOf(credential) {
  return {
    name: credential.name ?? "",
    model_id: credential.model_id,
    base_url: credential.base_url ?? "",
    api_key: "",
    config: credential.config ? JSON.stringify(credential.config, null, 2) : "",
  };
}

/** Creates a credential, or edits `editing` (then an empty key field keeps
 * the stored key, and an empty URL or config keeps the stored one: the
 * API changes only what is sent). */
function CredentialForm({ editing, onSaved, onCancel }) {
  const [values, setValues] = useState(editing ? fieldsOf(editing) : EMPTY);
  const set = (name) => (value) => setValues((v) => ({ ...v, [name]: value }));
  const action = useAction();
  const submit = (e) => {
    e.preventDefault();
    action.run(async () => {
      const body = { name: values.name, model_id: values.model_id };
      if (values.base_url !== "") body.base_url = values.base_url;
      if (!editing || values.api_key !== "") body.api_key = values.api_key;
      if (values.config.trim() !== "") {
        try {
          body.config = JSON.parse(values.config);
        } catch (error) {
          throw Object.assign(new Error(`config: not valid JSON (${error.message})`), { field: "config" });
        }
      }
      const saved = editing
        ? await api("PUT", `/api/credentials/${encodeURIComponent(editing.id)}`, body)
        : await api("POST", "/api/credentials", body);
      // The key typed in is not kept anywhere once sent.
      setValues(EMPTY);
      onSaved(saved, editing ? "updated" : "stored");
    });
  };
  const fields = ["name", "model_id", "base_url", "api_key", "config"];
  const formId = editing ? "edit-credential" : "create-credential";
  const vaultDisabled = action.error?.code === VAULT_DISABLED;
  const title = useRef(null);
  useEffect(() => {
    // Editing starts with the form in view and focus on it.
    if (editing) title.current?.focus();
  }, [editing]);
  return html`<form id=${formId} class="card" onSubmit=${submit} novalidate>
    <h2 tabindex="-1" ref=${title}>${editing ? `Edit “${editing.name || editing.model_id}”` : "Store a credential"}</h2>
    <${Field} label="Name" name="name" value=${values.name} onInput=${set("name")} error=${action.error}
      autocomplete="off" hint="Optional, for you: say “OpenAI production”." />
    <${Field} label="Model" name="model_id" value=${values.model_id} onInput=${set("model_id")}
      error=${action.error} autocomplete="off" hint="The model id the upstream expects." required />
    <${Field} label="Base URL" name="base_url" type="url" value=${values.base_url} onInput=${set("base_url")}
      error=${action.error} autocomplete="off"
      hint=${editing?.base_url ? "Empty keeps the current URL." : "Optional: http:// or https://."} />
    <${Field} label="API key" name="api_key" type="password" value=${values.api_key} onInput=${set("api_key")}
      error=${action.error} autocomplete="new-password" spellcheck="false"
      hint=${editing
        ? `Empty keeps the stored key (${editing.api_key_masked || "empty"}).`
        : "Stored encrypted; from now on shown only masked. May be empty for a local model server."} />
    <${TextArea} label="Settings (JSON)" name="config" value=${values.config} onInput=${set("config")}
      error=${action.error} rows="4" spellcheck="false"
      hint=${editing?.config ? "A JSON object. Empty keeps the current settings." : "Optional: a JSON object, say {\"temperature\": 0.2}."} />
    ${vaultDisabled ? html`<${VaultDisabled} error=${action.error} />` : html`<${FormError} error=${action.error} fields=${fields} />`}
    <div class="actions">
      <button type="submit" disabled=${action.busy}>${editing ? "Save changes" : "Store credential"}</button>
      ${editing && html`<button type="button" class="secondary" onClick=${onCancel}>Cancel</button>`}
    </div>
  </form>`;
}

export default function Credentials() {
  const list = useLoad(() => api("GET", "/api/credentials"), []);
  const [editing, setEditing] = useState(null);
  const [done, setDone] = useState(null);
  const action = useAction();

  const saved = (credential, how) => {
    setEditing(null);
    setDone(`Credential “${credential.name || credential.model_id}” ${how}.`);
    list.reload();
  };
  const remove = (credential) => {
    setDone(null);
    const label = credential.name || credential.model_id;
    if (!window.confirm(`Delete the credential “${label}” (${credential.api_key_masked || "no key"})?`)) return;
    action.run(async () => {
      await api("DELETE", `/api/credentials/${encodeURIComponent(credential.id)}`);
      if (editing?.id === credential.id) setEditing(null);
      setDone(`Credential “${label}” deleted.`);
      await list.reload();
    });
  };

  const columns = [
    ["Name", (c) => (c.name ? html`<strong>${c.name}</strong>` : html`<span class="muted">—</span>`)],
    ["Model", (c) => html`<code>${c.model_id}</code>`],
    ["Base URL", (c) => (c.base_url ? html`<span class="url">${c.base_url}</span>` : "—")],
    ["API key", (c) => (c.api_key_masked ? html`<code class="masked">${c.api_key_masked}</code>` : html`<span class="muted">none</span>`)],
    ["Settings", (c) => (c.config ? html`<code class="config">${JSON.stringify(c.config)}</code>` : "—")],
    ["Updated", (c) => formatTime(c.updated_at)],
    ["", (c) => html`<div class="actions" data-credential=${c.id}>
      <button type="button" class="secondary" aria-label=${`Edit ${c.name || c.model_id}`}
        onClick=${() => { setDone(null); setEditing(c); }}>Edit</button>
      <button type="button" class="danger" aria-label=${`Delete ${c.name || c.model_id}`}
        disabled=${action.busy} onClick=${() => remove(c)}>Delete</button>
    </div>`],
  ];

  return html`<${Screen} title="Credentials">
    <p class="muted">Upstream model endpoints and their API keys, stored encrypted. Keys are only ever
      shown masked.</p>
    <${FormError} error=${action.error} />
    ${done && html`<${Notice}>${done}</${Notice}>`}
    <${Loading} state=${list}>
      <${Table} label="Stored credentials" columns=${columns} rows=${list.data}
        empty="You have no stored credentials yet." />
    </${Loading}>
    ${editing
      ? html`<${CredentialForm} key=${`edit-${editing.id}`} editing=${editing} onSaved=${saved}
          onCancel=${() => setEditing(null)} />`
      : html`<${CredentialForm} key="create" onSaved=${saved} />`}
  </${Screen}>`;
}
