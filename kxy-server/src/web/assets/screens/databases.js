// The databases screen (not built yet).

import { html, Screen } from "../ui.js";

export default function Databases() {
  return html`<${Screen} title="Databases"><p class="muted">This screen is not built yet.</p></${Screen}>`;
}
