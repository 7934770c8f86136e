// The screens around a login: first run (create the first administrator),
// log in, and change one's own password.

import { html, useState, Field, FormError, Notice, useAction, Screen } from "./ui.js";
import { api, login, changePassword } from "./api.js";

/** Creates the first administrator, then logs in as them. */
export function FirstRun({ setupTokenRequired, onDone }) {
  const [username, setUsername] = useState("admin");
  const [password, setPassword] = useState("");
  const [confirm, setConfirm] = useState("");
  const [setupToken, setSetupToken] = useState("");
  const action = useAction();
  const submit = (e) => {
    e.preventDefault();
    action.run(async () => {
      if (password !== confirm) {
        throw Object.assign(new Error("The two passwords differ."), { field: "confirm" });
      }
      const body = { username, password };
      if (setupTokenRequired) body.setup_token = setupToken;
      await api("POST", "/api/auth/init-user", body);
      await login(username, password);
      onDone();
    });
  };
  const fields = ["username", "password", "confirm", "setup_token"];
  return html`<main class="center"><form class="card" id="first-run" onSubmit=${submit} novalidate>
    <h1>Welcome to kxy</h1>
    <p>Create the first administrator. This account can create every other user.</p>
    <${Field} label="Username" name="username" value=${username} onInput=${setUsername}
      error=${action.error} autocomplete="username" required />
    <${Field} label="Password" name="password" type="password" value=${password} onInput=${setPassword}
      error=${action.error} autocomplete="new-password" required
      hint="At least 10 characters, with a letter and a digit; not the username." />
    <${Field} label="Repeat the password" name="confirm" type="password" value=${confirm} onInput=${setConfirm}
      error=${action.error} autocomplete="new-password" required />
    ${setupTokenRequired && html`<${Field} label="Setup token" name="setup_token" value=${setupToken}
      onInput=${setSetupToken} error=${action.error} autocomplete="off"
      hint="Printed in kxy-server's console when it started." required />`}
    <${FormError} error=${action.error} fields=${fields} />
    <button type="submit" disabled=${action.busy}>Create administrator</button>
  </form></main>`;
}

/** The login form. */
export function Login({ notice, onDone }) {
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const action = useAction();
  const submit = (e) => {
    e.preventDefault();
    action.run(async () => {
      await login(username, password);
      onDone();
    });
  };
  return html`<main class="center"><form class="card" id="login" onSubmit=${submit} novalidate>
    <h1>Log in to kxy</h1>
    ${notice && html`<${Notice}>${notice}</${Notice}>`}
    <${Field} label="Username" name="username" value=${username} onInput=${setUsername}
      error=${action.error} autocomplete="username" autofocus required />
    <${Field} label="Password" name="password" type="password" value=${password} onInput=${setPassword}
      error=${action.error} autocomplete="current-password" required />
    <${FormError} error=${action.error} fields=${["username", "password"]} />
    <button type="submit" disabled=${action.busy}>Log in</button>
  </form></main>`;
}

/** The caller's own account: who they are, and a new password. */
export function Account({ me }) {
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [confirm, setConfirm] = useState("");
  const [done, setDone] = useState(null);
  const action = useAction();
  const submit = (e) => {
    e.preventDefault();
    setDone(null);
    action.run(async () => {
      if (next !== confirm) {
        throw Object.assign(new Error("The two new passwords differ."), { field: "confirm" });
      }
      const msg = await changePassword(current, next);
      setCurrent("");
      setNext("");
      setConfirm("");
      setDone(msg);
    });
  };
  const fields = ["current_password", "new_password", "confirm"];
  return html`<${Screen} title="Your account">
    <dl class="facts">
      <dt>Username</dt><dd id="account-username">${me.user.username}</dd>
      <dt>Roles</dt><dd>${me.user.roles.join(", ") || "none"}</dd>
      <dt>Permissions</dt><dd>${me.permissions.join(", ") || "none"}</dd>
    </dl>
    <form id="change-password" class="card" onSubmit=${submit} novalidate>
      <h2>Change your password</h2>
      <p class="muted">Your other logins end and your API keys are disabled.</p>
      <${Field} label="Current password" name="current_password" type="password" value=${current}
        onInput=${setCurrent} error=${action.error} autocomplete="current-password" required />
      <${Field} label="New password" name="new_password" type="password" value=${next}
        onInput=${setNext} error=${action.error} autocomplete="new-password" required />
      <${Field} label="Repeat the new password" name="confirm" type="password" value=${confirm}
        onInput=${setConfirm} error=${action.error} autocomplete="new-password" required />
      <${FormError} error=${action.error} fields=${fields} />
      ${done && html`<${Notice}>${done}</${Notice}>`}
      <button type="submit" disabled=${action.busy}>Change password</button>
    </form>
  </${Screen}>`;
}
