// The counters screen (not built yet).

import { html, Screen } from "../ui.js";

export default function Counters() {
  return html`<${Screen} title="Counters"><p class="muted">This screen is not built yet.</p></${Screen}>`;
}
