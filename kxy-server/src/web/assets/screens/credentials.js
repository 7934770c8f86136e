// The credentials screen (not built yet).

import { html, Screen } from "../ui.js";

export default function Credentials() {
  return html`<${Screen} title="Credentials"><p class="muted">This screen is not built yet.</p></${Screen}>`;
}
