// The access screen (not built yet).

import { html, Screen } from "../ui.js";

export default function Access() {
  return html`<${Screen} title="Access"><p class="muted">This screen is not built yet.</p></${Screen}>`;
}
