// The keys screen (not built yet).

import { html, Screen } from "../ui.js";

export default function Keys() {
  return html`<${Screen} title="Keys"><p class="muted">This screen is not built yet.</p></${Screen}>`;
}
