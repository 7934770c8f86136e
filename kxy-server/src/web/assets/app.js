// The admin page: decides between first run, login and the logged-in shell,
// and routes `#/screen` to the screens the user's permissions allow.

import { html, render, useState, useEffect } from "./vendor/htm-preact-3.1.1.js";
import { api, can, logout, onSessionChange, resume } from "./api.js";
import { Account, FirstRun, Login } from "./session.js";
import { screens } from "./screens/index.js";

function allowed(screen) {
  if (screen.needs === null) return true;
  const needs = Array.isArray(screen.needs) ? screen.needs : [screen.needs];
  return needs.some(can);
}

function currentPath() {
  return location.hash.replace(/^#\/?/, "").split("?")[0];
}

function App() {
  // "loading" | "first-run" | "login" | "in"
  const [phase, setPhase] = useState("loading");
  const [setupTokenRequired, setSetupTokenRequired] = useState(false);
  const [notice, setNotice] = useState(null);
  const [failure, setFailure] = useState(null);
  const [me, setMe] = useState(null);

  const start = async () => {
    setFailure(null);
    try {
      const init = await api("GET", "/api/auth/check-init");
      if (!init.initialized) {
        setSetupTokenRequired(init.setup_token_required);
        setPhase("first-run");
        return;
      }
      const resumed = await resume();
      setPhase(resumed ? "in" : "login");
    } catch (error) {
      setFailure(error.message);
    }
  };

  useEffect(() => {
    start();
    return onSessionChange((value) => {
      setMe(value);
      if (value === null) {
        setNotice((n) => n ?? "Your session ended. Log in again.");
        setPhase("login");
      }
    });
  }, []);

  if (failure) {
    return html`<main class="center"><div class="card">
      <p class="error" role="alert">${failure}</p>
      <button type="button" onClick=${start}>Try again</button>
    </div></main>`;
  }
  if (phase === "loading") return html`<main class="center"><p class="muted">Loading…</p></main>`;
  if (phase === "first-run") {
    return html`<${FirstRun} setupTokenRequired=${setupTokenRequired} onDone=${() => setPhase("in")} />`;
  }
  if (phase === "login" || !me) {
    return html`<${Login} notice=${notice} onDone=${() => { setNotice(null); setPhase("in"); }} />`;
  }
  return html`<${Shell} me=${me} onLogout=${async () => {
    const failure = await logout();
    setNotice(failure
      ? `This browser forgot your session, but the server could not end it (${failure.message}); it ends by itself when it expires.`
      : "You are logged out.");
  }} />`;
}

function Shell({ me, onLogout }) {
  const [path, setPath] = useState(currentPath());
  useEffect(() => {
    const follow = () => setPath(currentPath());
    addEventListener("hashchange", follow);
    return () => removeEventListener("hashchange", follow);
  }, []);
  const visible = screens.filter(allowed);
  const screen =
    path === "account" ? null : visible.find((s) => s.path === path) ?? visible[0] ?? null;
  useEffect(() => {
    // Move focus to the new screen's heading, for keyboard and screen readers.
    document.getElementById("screen-title")?.focus();
    document.title = `${screen ? screen.title : "Your account"} · kxy admin`;
  }, [screen]);
  const Body = screen?.component;
  return html`<div class="shell">
    <a class="skip" href="#main">Skip to content</a>
    <header class="top">
      <span class="brand">kxy</span>
      <nav aria-label="Screens">
        <ul>
          ${visible.map((s) => html`<li><a href=${`#/${s.path}`} id=${`nav-${s.path}`}
            aria-current=${s === screen ? "page" : undefined}>${s.title}</a></li>`)}
        </ul>
      </nav>
      <div class="who">
        <a href="#/account" id="nav-account" aria-current=${path === "account" ? "page" : undefined}
          >${me.user.username}</a>
        <button type="button" class="secondary" id="logout" onClick=${onLogout}>Log out</button>
      </div>
    </header>
    <main id="main">
      ${Body ? html`<${Body} me=${me} key=${screen.path} />` : html`<${Account} me=${me} />`}
    </main>
  </div>`;
}

render(html`<${App} />`, document.getElementById("app"));
