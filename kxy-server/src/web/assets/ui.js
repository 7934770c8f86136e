// Small building blocks every screen shares: fields (inputs, textareas,
// selects, checkboxes) that show the server's message next to the input it
// is about, tables, notices, a copy button, confirmations, and the hooks
// that load a screen's data and run its actions.

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

/** A labelled textarea; shows the form's error when it names `name`. */
export function TextArea({ label, name, error, hint, value, onInput, rows = 4, ...rest }) {
  const id = useId(`f-${name}`);
  const mine = error && error.field === name;
  return html`<div class="field">
    <label for=${id}>${label}</label>
    <textarea id=${id} name=${name} rows=${rows} value=${value} onInput=${(e) => onInput(e.target.value)}
      aria-invalid=${mine ? "true" : "false"} aria-describedby=${mine ? `${id}-error` : undefined}
      ...${rest}></textarea>
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

/** `error` as shown next to input `field`; other errors pass unchanged. */
export function onField(error, field) {
  return new ApiError(error.status, error.code, error.message, field);
}

/** Runs `fn`; a failure for which `place(error)` names a field is shown
 * next to that field. */
export async function placing(fn, place) {
  try {
    return await fn();
  } catch (error) {
    const field = error instanceof ApiError ? place(error) : undefined;
    throw field ? onField(error, field) : error;
  }
}

/** Asks before something that cannot be undone. */
export function confirmed(question) {
  return window.confirm(question);
}

/** One labelled checkbox. */
export function Check({ label, checked, onInput, name, ...rest }) {
  const id = useId(`c-${name}`);
  return html`<div class="check">
    <input type="checkbox" id=${id} name=${name} checked=${checked}
      onChange=${(e) => onInput(e.target.checked)} ...${rest} />
    <label for=${id}>${label}</label>
  </div>`;
}

/** A group of checkboxes picking some of `options`; the form's error shows
 * here when it names `name`. */
export function Checks({ legend, name, options, value, onInput, error, empty = "None to choose from." }) {
  const mine = error && error.field === name;
  const toggle = (option, on) =>
    onInput(on ? [...value.filter((v) => v !== option), option] : value.filter((v) => v !== option));
  return html`<fieldset class="checks">
    <legend>${legend}</legend>
    ${options.length === 0 && html`<p class="muted">${empty}</p>`}
    <div class="check-list">
      ${options.map((option) => html`<${Check} name=${name} label=${option} value=${option}
        checked=${value.includes(option)} onInput=${(on) => toggle(option, on)} />`)}
    </div>
    ${mine && html`<p class="error" role="alert" data-field=${name}>${error.message}</p>`}
  </fieldset>`;
}

/** A notice the screen shows after an action: `[notice, say]`. */
export function useNotice() {
  const [notice, setNotice] = useState(null);
  return [notice, setNotice];
}

/** A panel heading that takes focus when the panel opens. */
export function FocusHeading({ children, id }) {
  const ref = useRef(null);
  useEffect(() => ref.current?.focus(), []);
  return html`<h2 id=${id} tabindex="-1" ref=${ref}>${children}</h2>`;
}

/** Comma- or space-separated words. */
export function words(text) {
  return text.split(/[\s,]+/).filter(Boolean);
}
