// Small building blocks every screen shares: fields that show the server's
// message next to the input it is about, tables, notices, a copy button,
// and the hook that loads a screen's data.

import { html, useState, useEffect, useCallback, useRef } from "./vendor/htm-preact-3.1.1.js";
import { ApiError } from "./api.js";

export { html, useState, useEffect, useCallback, useRef };

let nextId = 0;
/** A stable id for labels and error links. */
export function useId(prefix) {
  const ref = useRef(null);
  if (ref.current === null) ref.current = `${prefix}-${++nextId}`;
  return ref.current;
}

/** Loads data for a screen: `{data, error, loading, reload}`. */
export function useLoad(load, deps = []) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const reload = useCallback(async () => {
    setState((s) => ({ ...s, loading: true }));
    try {
      setState({ data: await load(), error: null, loading: false });
    } catch (error) {
      setState({ data: null, error, loading: false });
    }
  }, deps);
  useEffect(() => {
    reload();
  }, [reload]);
  return { ...state, reload };
}

/** Runs a form's action: `{busy, error, run}`; `run(fn)` keeps the error
 * (an ApiError, with `.field` when the server named one) for display. */
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const run = useCallback(async (action) => {
    setBusy(true);
    setError(null);
    try {
      return await action();
    } catch (e) {
      setError(e instanceof ApiError ? e : new ApiError(0, 0, String(e.message || e), e.field));
      return undefined;
    } finally {
      setBusy(false);
    }
  }, []);
  return { busy, error, run, setError };
}

/** A labelled input. `error` is the form's last error: it is shown here when
 * it names this field (`name`). */
export function Field({ label, name, error, hint, type = "text", value, onInput, ...rest }) {
  const id = useId(`f-${name}`);
  const mine = error && error.field === name;
  return html`<div class="field">
    <label for=${id}>${label}</label>
    <input id=${id} name=${name} type=${type} value=${value}
      onInput=${(e) => onInput(type === "checkbox" ? e.target.checked : e.target.value)}
      aria-invalid=${mine ? "true" : "false"} aria-describedby=${mine ? `${id}-error` : undefined}
      ...${rest} />
    ${hint && html`<small class="hint">${hint}</small>`}
    ${mine && html`<p class="error" id=${`${id}-error`} role="alert" data-field=${name}>${error.message}</p>`}
  </div>`;
}

/** A labelled select over `options` ([value, text] pairs or strings). */
export function Select({ label, name, error, value, onInput, options, ...rest }) {
  const id = useId(`f-${name}`);
  const mine = error && error.field === name;
  return html`<div class="field">
    <label for=${id}>${label}</label>
    <select id=${id} name=${name} value=${value} onChange=${(e) => onInput(e.target.value)} ...${rest}>
      ${options.map((o) => {
        const [v, t] = Array.isArray(o) ? o : [o, o];
        return html`<option value=${v} selected=${v === value}>${t}</option>`;
      })}
    </select>
    ${mine && html`<p class="error" role="alert" data-field=${name}>${error.message}</p>`}
  </div>`;
}

/** The form's error when no field shows it. `fields` are the names the
 * form has inputs for. */
export function FormError({ error, fields = [] }) {
  if (!error || fields.includes(error.field)) return null;
  return html`<p class="error" role="alert">${error.message}</p>`;
}

/** A success or warning message. */
export function Notice({ kind = "ok", children }) {
  return html`<p class=${`notice notice-${kind}`} role="status">${children}</p>`;
}

/** A table; `columns` are [heading, row => cell] pairs. */
export function Table({ columns, rows, empty = "Nothing here yet.", label }) {
  if (!rows || rows.length === 0) return html`<p class="empty">${empty}</p>`;
  return html`<div class="table-wrap" role="region" aria-label=${label} tabindex="0">
    <table>
      <thead><tr>${columns.map(([h]) => html`<th scope="col">${h}</th>`)}</tr></thead>
      <tbody>${rows.map((row) => html`<tr>${columns.map(([, cell]) => html`<td>${cell(row)}</td>`)}</tr>`)}</tbody>
    </table>
  </div>`;
}

/** A screen's load state: a spinner line, or the error with a retry. */
export function Loading({ state, children }) {
  if (state.error) {
    return html`<div><p class="error" role="alert">${state.error.message}</p>
      <button type="button" onClick=${state.reload}>Try again</button></div>`;
  }
  if (state.data === null) return html`<p class="muted">Loading…</p>`;
  return children;
}

/** Copies `text` to the clipboard, saying so. */
export function CopyButton({ text, label = "Copy" }) {
  const [done, setDone] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setDone(true);
    } catch {
      setDone(false);
    }
  };
  return html`<button type="button" class="secondary" onClick=${copy}>${done ? "Copied" : label}</button>`;
}

/** A Unix time (seconds) as a local date and time; "—" when absent. */
export function formatTime(seconds) {
  if (seconds === null || seconds === undefined || seconds === 0) return "—";
  return new Date(seconds * 1000).toLocaleString();
}

/** A screen's heading and body. */
export function Screen({ title, children }) {
  return html`<section class="screen" aria-labelledby="screen-title">
    <h1 id="screen-title" tabindex="-1">${title}</h1>
    ${children}
  </section>`;
}
