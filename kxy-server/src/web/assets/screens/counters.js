// Counters: what each hands out (current value, last allocation, IDs per
// minute over the last hour, runway), registering a new one and raising one.

import {
  html, useState, Field, FormError, Notice, Table, Loading, Screen, useAction, useLoad,
  formatTime,
} from "../ui.js";
import { api, call, can } from "../api.js";

const KEY_FIELDS = ["system_code", "db_name", "table_name", "field_name"];

function keyOf(c) {
  return `${c.system_code}/${c.db_name}/${c.table_name}/${c.field_name}`;
}

/** "12 s ago", "5 min ago", "3 h ago", or the date. */
function ago(seconds) {
  if (!seconds) return "never";
  const delta = Math.max(0, Math.floor(Date.now() / 1000) - seconds);
  if (delta < 60) return `${delta} s ago`;
  if (delta < 3600) return `${Math.floor(delta / 60)} min ago`;
  if (delta < 86400) return `${Math.floor(delta / 3600)} h ago`;
  return formatTime(seconds);
}

/** How long the counter lasts at its pace, in the largest fitting unit. */
function runway(seconds) {
  if (seconds === null || seconds === undefined) return "— (idle)";
  const year = 365 * 86400;
  if (seconds >= 1000 * year) return "over 1,000 years";
  if (seconds >= year) return `${Math.floor(seconds / year)} years`;
  if (seconds >= 86400) return `${Math.floor(seconds / 86400)} days`;
  if (seconds >= 3600) return `${Math.floor(seconds / 3600)} hours`;
  return `${Math.max(1, Math.floor(seconds / 60))} minutes`;
}

/** IDs per minute over the last hour as a line, newest on the right. */
function Sparkline({ values }) {
  const max = Math.max(1, ...values);
  const width = 120;
  const height = 28;
  const step = width / Math.max(1, values.length - 1);
  const points = values
    .map((v, i) => `${(i * step).toFixed(1)},${(height - 2 - (v / max) * (height - 4)).toFixed(1)}`)
    .join(" ");
  const total = values.reduce((a, b) => a + b, 0);
  const label = `IDs per minute over the last hour: ${total.toLocaleString()} in all, at most ${max.toLocaleString()} in a minute`;
  return html`<svg class="sparkline" viewBox=${`0 0 ${width} ${height}`} role="img" aria-label=${label}>
    <title>${label}</title>
    <polyline points=${points} />
  </svg>`;
}

function RegisterForm({ onDone }) {
  const empty = { system_code: "", db_name: "", table_name: "", field_name: "id", start: "0" };
  const [form, setForm] = useState(empty);
  const [done, setDone] = useState(null);
  const action = useAction();
  const set = (name) => (value) => setForm({ ...form, [name]: value });
  const submit = (e) => {
    e.preventDefault();
    setDone(null);
    action.run(async () => {
      const start = form.start.trim() === "" ? NaN : Number(form.start);
      if (!Number.isSafeInteger(start) || start < 0) {
        throw Object.assign(new Error("start: a whole number, 0 or more (the highest ID already in use)"), {
          field: "start",
        });
      }
      const envelope = await call("POST", "/api/counters", { ...form, start, only_new: true });
      setDone(`${envelope.msg}; the next ID is ${envelope.data.next_id}.`);
      setForm(empty);
      onDone();
    });
  };
  return html`<form class="card" id="register-counter" onSubmit=${submit} novalidate>
    <h2>Register a counter</h2>
    <${Field} label="System code" name="system_code" value=${form.system_code} onInput=${set("system_code")} error=${action.error} required />
    <${Field} label="Database" name="db_name" value=${form.db_name} onInput=${set("db_name")} error=${action.error} required />
    <${Field} label="Table" name="table_name" value=${form.table_name} onInput=${set("table_name")} error=${action.error} required />
    <${Field} label="Field" name="field_name" value=${form.field_name} onInput=${set("field_name")} error=${action.error} required />
    <${Field} label="Start (highest ID in use)" name="start" value=${form.start} onInput=${set("start")}
      error=${action.error} inputmode="numeric" hint="The first ID handed out is start + 1." />
    <${FormError} error=${action.error} fields=${[...KEY_FIELDS, "start"]} />
    ${done && html`<${Notice}>${done}</${Notice}>`}
    <button type="submit" disabled=${action.busy}>Register</button>
  </form>`;
}

function RaiseForm({ counter, onDone, onCancel }) {
  const [to, setTo] = useState(String(counter.current));
  const action = useAction();
  const submit = (e) => {
    e.preventDefault();
    action.run(async () => {
      const value = to.trim() === "" ? NaN : Number(to);
      if (!Number.isSafeInteger(value) || value < 0) {
        throw Object.assign(new Error("to: a whole number, 0 or more"), { field: "to" });
      }
      const body = Object.fromEntries(KEY_FIELDS.map((k) => [k, counter[k]]));
      const envelope = await call("POST", "/api/counters/raise", { ...body, to: value });
      onDone(envelope.msg);
    });
  };
  return html`<form class="raise" onSubmit=${submit} novalidate>
    <${Field} label=${`Raise ${counter.table_name}.${counter.field_name} to`} name="to" value=${to}
      onInput=${setTo} error=${action.error} inputmode="numeric" autofocus
      hint="The next ID handed out is this + 1. Counters never move backwards." />
    <${FormError} error=${action.error} fields=${["to"]} />
    <div class="actions">
      <button type="submit" disabled=${action.busy}>Raise</button>
      <button type="button" class="secondary" onClick=${onCancel}>Cancel</button>
    </div>
  </form>`;
}

export default function Counters() {
  const state = useLoad(() => api("GET", "/api/counters"));
  const [raising, setRaising] = useState(null);
  const [notice, setNotice] = useState(null);
  const writable = can("counters:write");
  const columns = [
    ["Counter", (c) => html`<span class="mono">${keyOf(c)}</span>`],
    ["Current", (c) => html`<span class="num">${c.current.toLocaleString()}</span>`],
    ["Status", (c) => (c.fenced
      ? html`<span class="badge badge-bad" title="The store went backwards: raise it to at least the current value">fenced</span>`
      : html`<span class="badge badge-ok">allocating</span>`)],
    ["Last allocation", (c) => html`<span title=${formatTime(c.last_allocated_at)}>${ago(c.last_allocated_at)}</span>`],
    ["IDs / minute (1 h)", (c) => html`<${Sparkline} values=${c.ids_per_minute} />
      <small class="muted">${Math.round(c.pace_per_minute).toLocaleString()}/min</small>`],
    ["Runway", (c) => runway(c.runway_seconds)],
  ];
  if (writable) {
    columns.push(["", (c) => html`<button type="button" class="secondary" aria-label=${`Raise ${keyOf(c)}`}
      onClick=${() => { setNotice(null); setRaising(keyOf(c)); }}>Raise</button>`]);
  }
  const counter = state.data?.find((c) => keyOf(c) === raising);
  return html`<${Screen} title="Counters">
    <p class="muted">Activity is this server's since it started (in memory); the value is the store's.</p>
    ${notice && html`<${Notice}>${notice}</${Notice}>`}
    <${Loading} state=${state}>
      <${Table} label="Counters" columns=${columns} rows=${state.data}
        empty="No counters yet. Register one below, or with kxy-server counters add." />
    </${Loading}>
    ${counter && html`<div class="card"><${RaiseForm} counter=${counter}
      onCancel=${() => setRaising(null)}
      onDone=${(msg) => { setRaising(null); setNotice(msg); state.reload(); }} /></div>`}
    ${writable && html`<${RegisterForm} onDone=${state.reload} />`}
  </${Screen}>`;
}
