// The databases screen: the registered databases (add, edit, delete), a
// connection test per database, initializing one ("scan now") as a job with
// its progress, and per database the tables the scanner discovered
// (approve, dismiss) and custom counters.
//
// Passwords are never shown: the list says only whether one is stored, and
// the edit form leaves it empty, meaning "keep the stored one".

import {
  html, useState, useEffect, useRef, useId, Field, Select, FormError, Notice, Table, Loading,
  Screen, useLoad, useAction, formatTime, TextArea,
} from "../ui.js";
import { api, call, can } from "../api.js";

const TYPES = [
  ["mysql", "MySQL / MariaDB"],
  ["postgresql", "PostgreSQL"],
  ["sqlite", "SQLite"],
];
const TLS_MODES = [
  ["prefer", "prefer: encrypted if the server offers it"],
  ["require", "require: encrypted, certificate not checked"],
  ["verify", "verify: encrypted, certificate and host checked"],
];
/** The fields that say where a database is: changing one needs the
 * password again (the stored one is only sent where it was entered for). */
const TARGET = ["address", "db_name", "username", "tls", "tls_ca"];
const COLUMNS = 8;
const POLL_MS = 400;

const typeName = (type) => (TYPES.find(([value]) => value === type) ?? [type, type])[1];
const label = (db) => `${db.system_code} / ${db.db_name}`;
const where = (db) => (db.db_type === "sqlite" ? db.db_name : `${db.address} / ${db.db_name}`);
const tablePath = (db, table) =>
  `/api/database/${db.guid}/discovered-tables/${encodeURIComponent(table)}`;

/** An error the page raises itself, shown next to `field` like the server's. */
function fieldError(field, message) {
  return Object.assign(new Error(message), { field });
}

/** The list, each database with its discovered tables and last scan. */
async function loadDatabases() {
  const list = await api("GET", "/api/database/list");
  list.sort((a, b) => label(a).localeCompare(label(b)));
  const extras = await Promise.all(
    list.map((db) =>
      api("GET", `/api/database/${db.guid}/discovered-tables`).catch((error) => ({ error })),
    ),
  );
  return list.map((db, i) => ({ ...db, discovered: extras[i] }));
}

export default function Databases() {
  const state = useLoad(loadDatabases);
  const writer = can("databases:write");
  // null, {mode: "add"} or {mode: "edit", db}
  const [form, setForm] = useState(null);
  const [notice, setNotice] = useState(null);
  const changed = (message) => {
    if (message) setNotice(message);
    state.reload();
  };
  return html`<${Screen} title="Databases">
    <p class="muted">The databases whose tables kxy numbers. Initializing one registers a counter
      above the IDs each table holds; the scanner then lists tables that appear later.</p>
    ${notice && html`<${Notice}>${notice}</${Notice}>`}
    ${writer && !form && html`<div class="actions db-toolbar">
      <button type="button" id="db-add" onClick=${() => { setNotice(null); setForm({ mode: "add" }); }}>
        Add database</button>
    </div>`}
    ${form && html`<${DatabaseForm} key=${form.db ? form.db.guid : "new"} existing=${form.db}
      onCancel=${() => setForm(null)}
      onDone=${(message) => { setForm(null); changed(message); }} />`}
    <${Loading} state=${state}>
      <${DatabaseTable} databases=${state.data ?? []} writer=${writer} onChanged=${changed}
        onEdit=${(db) => { setNotice(null); setForm({ mode: "edit", db }); }} />
    </${Loading}>
  </${Screen}>`;
}

function DatabaseTable({ databases, writer, onEdit, onChanged }) {
  if (databases.length === 0) {
    return html`<p class="empty">No database is registered yet.</p>`;
  }
  return html`<div class="table-wrap" role="region" aria-label="Registered databases" tabindex="0">
    <table class="db-table">
      <thead><tr>
        <th scope="col">System</th><th scope="col">Type</th><th scope="col">Where</th>
        <th scope="col">User</th><th scope="col">Password</th><th scope="col">Status</th>
        <th scope="col">Last scan</th><th scope="col">Actions</th>
      </tr></thead>
      ${databases.map((db) => html`<${DatabaseRow} key=${db.guid} db=${db} writer=${writer}
        onEdit=${onEdit} onChanged=${onChanged} />`)}
    </table>
  </div>`;
}

/** How the scanner's last pass over a database ended, as a badge. */
function Status({ discovered }) {
  const scan = discovered && !discovered.error ? discovered.last_scan : null;
  if (discovered?.error) return html`<span class="badge badge-off">unknown</span>`;
  if (!scan) return html`<span class="badge badge-off">not scanned yet</span>`;
  if (scan.error) return html`<span class="badge badge-bad">last scan failed</span>`;
  return html`<span class="badge badge-ok">reachable</span>`;
}

/** One database: its row, and under it what was done to it (test result,
 * scan progress) and its tables when opened. */
function DatabaseRow({ db, writer, onEdit, onChanged }) {
  const [test, setTest] = useState(null);
  const [testing, setTesting] = useState(false);
  const [job, setJob] = useState(null);
  const [jobError, setJobError] = useState(null);
  const [open, setOpen] = useState(false);
  const [rowError, setRowError] = useState(null);
  const [busy, setBusy] = useState(false);
  const timer = useRef(null);
  const panelId = useId("db-tables");
  useEffect(() => () => clearTimeout(timer.current), []);

  const testConnection = async () => {
    setTesting(true);
    setTest(null);
    try {
      const envelope = await call("POST", `/api/database/${db.guid}/test`);
      setTest({ ok: true, message: envelope.msg });
    } catch (error) {
      setTest({ ok: false, message: error.message });
    } finally {
      setTesting(false);
    }
  };

  const follow = (id) => {
    timer.current = setTimeout(async () => {
      try {
        const current = await api("GET", `/api/database/jobs/${id}`);
        setJob(current);
        if (current.state === "running") follow(id);
        else onChanged();
      } catch (error) {
        setJobError(error.message);
      }
    }, POLL_MS);
  };

  const scan = async () => {
    clearTimeout(timer.current);
    setJobError(null);
    setJob(null);
    try {
      const started = await api("POST", `/api/database/${db.guid}/jobs`);
      setJob(started);
      follow(started.id);
    } catch (error) {
      setJobError(error.message);
    }
  };

  const remove = async () => {
    const question = `Delete the database ${label(db)}? Its counters stay: the IDs they handed out stay used.`;
    if (!window.confirm(question)) return;
    setBusy(true);
    setRowError(null);
    try {
      await api("DELETE", `/api/database/${db.guid}`);
      onChanged(`Database ${label(db)} deleted; its counters stay.`);
    } catch (error) {
      setRowError(error.message);
      setBusy(false);
    }
  };

  const discovered = db.discovered && !db.discovered.error ? db.discovered.tables : [];
  const running = job?.state === "running";
  const detail = rowError || test || testing || job || jobError || open;
  return html`<tbody class="db-row" data-guid=${db.guid}>
    <tr>
      <td>${db.system_code}</td>
      <td>${typeName(db.db_type)}</td>
      <td class="db-where"><span class="mono">${where(db)}</span></td>
      <td>${db.username || "—"}</td>
      <td>${db.password_masked ? "stored" : "none"}</td>
      <td><${Status} discovered=${db.discovered} /></td>
      <td>${formatTime(db.discovered?.last_scan?.at)}</td>
      <td><div class="actions">
        <button type="button" class="secondary" onClick=${testConnection} disabled=${testing}>
          ${testing ? "Testing…" : "Test connection"}</button>
        <button type="button" class="secondary" aria-expanded=${open ? "true" : "false"}
          aria-controls=${panelId} onClick=${() => setOpen(!open)}>
          ${`Tables${discovered.length ? ` (${discovered.length} new)` : ""}`}</button>
        ${writer && html`
          <button type="button" onClick=${scan} disabled=${running}>Scan now</button>
          <button type="button" class="secondary" onClick=${() => onEdit(db)}>Edit</button>
          <button type="button" class="danger" onClick=${remove} disabled=${busy}>Delete</button>`}
      </div></td>
    </tr>
    ${detail && html`<tr class="db-detail"><td colspan=${COLUMNS}><div class="db-detail-body">
      ${rowError && html`<p class="error" role="alert">${rowError}</p>`}
      ${testing && html`<p class="muted db-testing" role="status">Connecting…</p>`}
      ${test && (test.ok
        ? html`<p class="notice db-test" role="status">${test.message}</p>`
        : html`<p class="notice notice-error error db-test" role="alert">${test.message}</p>`)}
      ${(job || jobError) && html`<${JobProgress} job=${job} error=${jobError} />`}
      ${open && html`<${TablesPanel} id=${panelId} db=${db} writer=${writer} onChanged=${onChanged} />`}
    </div></td></tr>`}
  </tbody>`;
}

/** An initialize job: a progress bar while it runs, its report after. */
function JobProgress({ job, error }) {
  if (!job) return html`<p class="error" role="alert">${error}</p>`;
  const report = job.report;
  const counts = job.tables_total
    ? `${job.tables_done} of ${job.tables_total} tables`
    : "listing the tables…";
  return html`<div class="db-job" data-state=${job.state}>
    ${job.tables_total
      ? html`<progress class="progress" max=${job.tables_total} value=${job.tables_done}
          aria-label="Scan progress">${counts}</progress>`
      : html`<progress class="progress" aria-label="Scan progress"></progress>`}
    <p class="db-job-counts" role="status">
      ${job.state === "running" && `Scanning: ${counts}${job.current_table ? `, last ${job.current_table}` : ""}.`}
      ${job.state === "done" && report &&
        `Scan done: ${report.registered.length} of ${report.tables_total} tables registered, ${report.skipped.length} skipped.`}
      ${job.state === "failed" && `Scan failed after ${counts}.`}
    </p>
    ${job.state === "failed" && html`<p class="error" role="alert">${job.error}</p>`}
    ${error && html`<p class="error" role="alert">${error}</p>`}
    ${report && report.warnings?.length > 0 &&
      report.warnings.map((w) => html`<p class="notice notice-warn">${w}</p>`)}
    ${report && (report.registered.length > 0 || report.skipped.length > 0) && html`<details class="db-report">
      <summary>What the scan did</summary>
      <${Table} label="Registered tables" rows=${report.registered} columns=${[
        ["Table", (r) => r.table],
        ["Key", (r) => r.field],
        ["Next ID", (r) => r.next_id],
        ["Outcome", (r) => r.outcome],
        ["Decided by", (r) => r.decided_by],
      ]} empty="No table registered." />
      <${Table} label="Skipped tables" rows=${report.skipped} columns=${[
        ["Table", (s) => s.table],
        ["Why skipped", (s) => s.reason],
      ]} empty="No table skipped." />
    </details>`}
  </div>`;
}

/** A database's discovered tables (approve, dismiss) and custom counters. */
function TablesPanel({ id, db, writer, onChanged }) {
  const info = db.discovered ?? {};
  const tables = info.tables ?? [];
  const scan = info.last_scan;
  const list = useAction();
  const [done, setDone] = useState(null);
  const [counter, setCounter] = useState({ table_name: "custom", field_name: "", initial_value: "0" });
  const counterForm = useRef(null);

  const approve = (table) => {
    setDone(null);
    list.run(async () => {
      const r = await api("POST", `${tablePath(db, table.table)}/approve`);
      setDone(`Counter for ${r.table}.${r.field} ${r.outcome}: the next ID is ${r.next_id}.`);
      onChanged();
    });
  };
  const dismiss = (table) => {
    const question = `Dismiss ${table.table}? The scanner will not list it again (initializing still numbers it).`;
    if (!window.confirm(question)) return;
    setDone(null);
    list.run(async () => {
      await api("DELETE", tablePath(db, table.table));
      setDone(`${table.table} dismissed.`);
      onChanged();
    });
  };
  const useFor = (table) => {
    setCounter((c) => ({ ...c, table_name: table.table, field_name: table.field }));
    counterForm.current?.querySelector('input[name="initial_value"]')?.focus();
  };

  return html`<div class="db-tables" id=${id}>
    <h2>Tables of ${label(db)}</h2>
    ${info.error && html`<p class="error" role="alert">${info.error.message}</p>`}
    <p class="muted">
      ${scan ? `The scanner's last pass (${formatTime(scan.at)}) found ${scan.new_tables} new table${scan.new_tables === 1 ? "" : "s"}.`
        : "The scanner has not visited this database yet."}
    </p>
    ${scan?.error && html`<p class="notice notice-error">Last scan failed: ${scan.error}</p>`}
    ${done && html`<${Notice}>${done}</${Notice}>`}
    <${FormError} error=${list.error} />
    <${Table} label=${`Discovered tables of ${label(db)}`} rows=${tables}
      empty="No table waits for a counter."
      columns=${[
        ["Table", (t) => html`<span class="mono">${t.table}</span>`],
        ["Key column", (t) => t.field || "—"],
        ["Found", (t) => formatTime(t.found_at)],
        ...(writer ? [["Actions", (t) => html`<div class="actions">
          <button type="button" onClick=${() => approve(t)} disabled=${list.busy}
            aria-label=${`Approve ${t.table}`}>Approve</button>
          <button type="button" class="secondary" onClick=${() => useFor(t)}
            aria-label=${`Custom counter for ${t.table}`}>Custom counter…</button>
          <button type="button" class="danger" onClick=${() => dismiss(t)} disabled=${list.busy}
            aria-label=${`Dismiss ${t.table}`}>Dismiss</button>
        </div>`]] : []),
      ]} />
    ${writer && html`<${CounterForm} db=${db} values=${counter} setValues=${setCounter}
      formRef=${counterForm} onDone=${onChanged} />`}
  </div>`;
}

/** A number as JSON without rounding: IDs go up to 2^63-1, past what a
 * JavaScript number holds exactly. */
function integer(text, field) {
  const trimmed = text.trim();
  if (!/^-?\d+$/.test(trimmed)) throw fieldError(field, "Enter a whole number.");
  return typeof JSON.rawJSON === "function" ? JSON.rawJSON(trimmed) : Number(trimmed);
}

/** The seed's "add config": a counter of this database that no table's
 * key backs (say, an order number), starting above `initial_value`. */
function CounterForm({ db, values, setValues, formRef, onDone }) {
  const action = useAction();
  const [done, setDone] = useState(null);
  const set = (name) => (value) => setValues((v) => ({ ...v, [name]: value }));
  const submit = (e) => {
    e.preventDefault();
    setDone(null);
    action.run(async () => {
      const body = {
        table_name: values.table_name.trim() || "custom",
        field_name: values.field_name.trim(),
        initial_value: integer(values.initial_value, "initial_value"),
      };
      if (!body.field_name) throw fieldError("field_name", "Enter the field the counter numbers.");
      const r = await api("POST", `/api/database/${db.guid}/add-config`, body);
      setDone(`Counter ${db.system_code} / ${db.counter_db_name} / ${r.table} / ${r.field} ${r.outcome}: the next ID is ${r.next_id}.`);
      onDone();
    });
  };
  const fields = ["table_name", "field_name", "initial_value"];
  return html`<form class="db-counter" ref=${formRef} onSubmit=${submit} novalidate>
    <h3>Add a counter</h3>
    <p class="muted">A counter of this database that is not a table's key (the seed's "add config").</p>
    <div class="db-grid">
      <${Field} label="Table part" name="table_name" value=${values.table_name} onInput=${set("table_name")}
        error=${action.error} hint="custom unless it belongs to a table" autocomplete="off" />
      <${Field} label="Field name" name="field_name" value=${values.field_name} onInput=${set("field_name")}
        error=${action.error} autocomplete="off" required />
      <${Field} label="Initial value" name="initial_value" value=${values.initial_value}
        onInput=${set("initial_value")} error=${action.error} inputmode="numeric" autocomplete="off"
        hint="The highest ID already in use; the first handed out is one more." required />
    </div>
    <${FormError} error=${action.error} fields=${fields} />
    ${done && html`<${Notice}>${done}</${Notice}>`}
    <button type="submit" disabled=${action.busy}>Add counter</button>
  </form>`;
}

const EMPTY = {
  system_code: "",
  db_type: "mysql",
  address: "",
  db_name: "",
  username: "",
  password: "",
  tls: "prefer",
  tls_ca: "",
};

/** Registers a database, or edits one (`existing`). */
function DatabaseForm({ existing, onDone, onCancel }) {
  const editing = Boolean(existing);
  const [values, setValues] = useState(() =>
    editing ? { ...EMPTY, ...pick(existing, Object.keys(EMPTY)), password: "" } : EMPTY,
  );
  const [clearPassword, setClearPassword] = useState(false);
  const [tested, setTested] = useState(null);
  const action = useAction();
  const formRef = useRef(null);
  useEffect(() => {
    formRef.current?.querySelector("input, select")?.focus();
  }, []);
  const set = (name) => (value) => {
    setTested(null);
    setValues((v) => ({ ...v, [name]: value }));
  };
  const sqlite = values.db_type === "sqlite";
  const stored = editing && Boolean(existing.password_masked);

  /** The whole form as the API takes it (SQLite takes no host settings). */
  const whole = () => {
    const password = clearPassword ? "" : values.password;
    return sqlite
      ? { system_code: values.system_code.trim(), db_type: "sqlite", db_name: values.db_name.trim() }
      : {
          system_code: values.system_code.trim(),
          db_type: values.db_type,
          address: values.address.trim(),
          db_name: values.db_name.trim(),
          username: values.username.trim(),
          password,
          tls: values.tls,
          tls_ca: values.tls_ca,
        };
  };
  /** What an edit changes: only the fields that differ, and the password
   * only when one was typed (or it is to be removed). */
  const changes = () => {
    const form = whole();
    const change = {};
    for (const key of ["system_code", ...TARGET]) {
      if (key in form && form[key] !== existing[key]) change[key] = form[key];
    }
    if (clearPassword) change.password = "";
    else if (values.password) change.password = values.password;
    return change;
  };

  const submit = (e) => {
    e.preventDefault();
    setTested(null);
    action.run(async () => {
      if (!editing) {
        const db = await api("POST", "/api/database/add", whole());
        onDone(`Database ${label(db)} registered. Scan it to register its tables' counters.`);
        return;
      }
      const change = changes();
      if (Object.keys(change).length === 0) {
        onDone("Nothing changed.");
        return;
      }
      const db = await api("PUT", `/api/database/${existing.guid}`, change);
      onDone(`Database ${label(db)} saved.`);
    });
  };

  const testIt = () => {
    setTested(null);
    action.run(async () => {
      let envelope;
      if (!editing) {
        envelope = await call("POST", "/api/database/test", whole());
      } else {
        const change = changes();
        const moved = TARGET.some((key) => key in change);
        if (!moved && !("password" in change)) {
          envelope = await call("POST", `/api/database/${existing.guid}/test`);
        } else if (moved && stored && !("password" in change)) {
          throw fieldError(
            "password",
            "Enter the password to test the changed settings: the stored one is only sent where it was entered for.",
          );
        } else {
          envelope = await call("POST", "/api/database/test", { ...whole(), db_type: existing.db_type });
        }
      }
      setTested(envelope.msg);
    });
  };

  const fields = sqlite
    ? ["system_code", "db_type", "db_name"]
    : ["system_code", "db_type", "address", "db_name", "username", "password", "tls", "tls_ca"];
  return html`<form class="card db-form" id="db-form" ref=${formRef} onSubmit=${submit} novalidate>
    <h2>${editing ? `Edit ${label(existing)}` : "Add a database"}</h2>
    <${Field} label="System code" name="system_code" value=${values.system_code} onInput=${set("system_code")}
      error=${action.error} autocomplete="off" required
      hint="The system its counters belong to; one database belongs to one system." />
    ${editing
      ? html`<p class="db-fixed"><strong>Type</strong> ${typeName(existing.db_type)}</p>`
      : html`<${Select} label="Type" name="db_type" value=${values.db_type} onInput=${set("db_type")}
          error=${action.error} options=${TYPES} />`}
    ${!sqlite && html`<${Field} label="Address" name="address" value=${values.address} onInput=${set("address")}
      error=${action.error} autocomplete="off" required placeholder="db.internal:3306"
      hint="host or host:port" />`}
    <${Field} label=${sqlite ? "SQLite file" : "Database name"} name="db_name" value=${values.db_name}
      onInput=${set("db_name")} error=${action.error} autocomplete="off" required
      hint=${sqlite ? "A path inside the server's --sqlite-dir." : undefined} />
    ${!sqlite && html`
      <${Field} label="User" name="username" value=${values.username} onInput=${set("username")}
        error=${action.error} autocomplete="off" required />
      <${Field} label="Password" name="password" type="password" value=${values.password}
        onInput=${set("password")} error=${action.error} autocomplete="new-password"
        disabled=${clearPassword}
        hint=${editing
          ? stored
            ? "Leave empty to keep the stored password. Changing the address, database, user or TLS settings needs it again."
            : "No password is stored."
          : "Sealed on the server; never shown again."} />
      ${stored && html`<div class="field db-check">
        <label><input type="checkbox" name="clear_password" checked=${clearPassword}
          onChange=${(e) => { setTested(null); setClearPassword(e.target.checked); }} />
          Remove the stored password</label>
      </div>`}
      <${Select} label="TLS" name="tls" value=${values.tls} onInput=${set("tls")} error=${action.error}
        options=${TLS_MODES} />
      ${(values.tls === "verify" || values.tls_ca) && html`<${TextArea} label="CA certificates (PEM)"
        name="tls_ca" value=${values.tls_ca} onInput=${set("tls_ca")} error=${action.error}
        hint="Empty: the public web roots." />`}`}
    <${FormError} error=${action.error} fields=${fields} />
    ${tested && html`<p class="notice db-test" role="status">${tested}</p>`}
    <div class="actions">
      <button type="submit" disabled=${action.busy}>${editing ? "Save changes" : "Add database"}</button>
      <button type="button" class="secondary" onClick=${testIt} disabled=${action.busy}>Test connection</button>
      <button type="button" class="secondary" onClick=${onCancel}>Cancel</button>
    </div>
  </form>`;
}

function pick(object, keys) {
  return Object.fromEntries(keys.filter((k) => k in object).map((k) => [k, object[k]]));
}
