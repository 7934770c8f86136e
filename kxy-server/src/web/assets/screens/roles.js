// The roles screen (not built yet).

import { html, Screen } from "../ui.js";

export default function Roles() {
  return html`<${Screen} title="Roles"><p class="muted">This screen is not built yet.</p></${Screen}>`;
}
