// The users screen (not built yet).

import { html, Screen } from "../ui.js";

export default function Users() {
  return html`<${Screen} title="Users"><p class="muted">This screen is not built yet.</p></${Screen}>`;
}
