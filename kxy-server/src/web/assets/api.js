// The page's one way to the server: JSON in, the envelope out, and the login
// session (an access token held in memory only; the refresh token is an
// HttpOnly cookie this script never sees, exchanged at
// /api/auth/session/refresh before the access token runs out).

/** A failed call: the server's message (for people), its code and, when the
 * message names one, the field it is about. */
export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

/** The field a server message is about, if it names one: `name: rule`
 * (a broken rule), "missing/unknown field `name`" (a malformed body), or a
 * message opening with a field's snake_case name ("system_code contains
 * ..."). A form shows the message next to its input of that name, or under
 * the form if it has none. */
export function fieldOf(message) {
  const quoted = /field `([A-Za-z_][A-Za-z0-9_]*)`/.exec(message);
  if (quoted) return quoted[1];
  const prefix = /^([a-z_][a-z0-9_]*): /.exec(message) ?? /^([a-z]+(?:_[a-z0-9]+)+) /.exec(message);
  return prefix ? prefix[1] : undefined;
}

let accessToken = null;
let refreshTimer = null;
let refreshing = null;
const listeners = new Set();

/** The logged-in user ({user, permissions}) or null; screens re-render when
 * it changes. */
export const session = { current: null };

export function onSessionChange(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function setSession(value) {
  session.current = value;
  for (const listener of listeners) listener(value);
}

/** Whether the user holds `permission` (`resource:action`), honouring the
 * `resource:*` and `*:*` wildcards the server honours. Hiding a control is
 * a courtesy; the server refuses the call anyway. */
export function can(permission) {
  const held = session.current?.permissions ?? [];
  const [resource, action] = permission.split(":");
  return held.some((p) => {
    const [r, a] = p.split(":");
    return (r === "*" || r === resource) && (a === "*" || a === action);
  });
}

async function send(method, path, body, extraHeaders) {
  const headers = { Accept: "application/json", ...extraHeaders };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (accessToken) headers.Authorization = `Bearer ${accessToken}`;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, 0, "The server cannot be reached. Check that kxy-server is running, then try again.");
  }
  let envelope = null;
  try {
    envelope = await response.json();
  } catch {
    throw new ApiError(response.status, 0, `The server answered ${response.status} without a readable body.`);
  }
  if (!response.ok || envelope.code !== 0) {
    const message = envelope.msg || `The server answered ${response.status}.`;
    throw new ApiError(response.status, envelope.code, message, fieldOf(message));
  }
  return envelope;
}

/** Calls the API; answers the envelope's `data`. An expired access token is
 * refreshed once, quietly; if the session has ended the user is logged out. */
export async function api(method, path, body) {
  return (await call(method, path, body)).data;
}

/** Like `api`, but answers the whole envelope (`msg` too). */
export async function call(method, path, body) {
  try {
    return await send(method, path, body);
  } catch (error) {
    if (!(error instanceof ApiError) || error.code !== 40102 || !accessToken) throw error;
    if (!(await refresh())) throw error;
    return await send(method, path, body);
  }
}

const COOKIE_ROUTE = { "X-KXY-CSRF": "1" };

// The page's binding to its session (the server's `binding`): kept in this
// origin's storage, which pages on other ports of this host cannot touch,
// so a session cookie they plant is refused. Not a token: worthless alone.
const BINDING = "kxy.session-binding";

function adopt(grant) {
  accessToken = grant.access_token;
  if (grant.binding) localStorage.setItem(BINDING, grant.binding);
  clearTimeout(refreshTimer);
  // Refresh at 80% of the token's life: well before a call could fail.
  const seconds = Math.max(5, Math.floor(grant.expires_in * 0.8));
  refreshTimer = setTimeout(() => refresh(), seconds * 1000);
}

async function loadMe() {
  const data = await api("GET", "/api/users/me");
  const me = { user: data, permissions: data.permissions };
  setSession(me);
  return me;
}

/** Logs in; the refresh cookie is set by the server. */
export async function login(username, password) {
  const envelope = await send("POST", "/api/auth/session", { username, password }, COOKIE_ROUTE);
  adopt(envelope.data);
  return loadMe();
}

/** On page load: resumes the browser's session if its cookie is still good. */
export async function resume() {
  if (!(await refresh())) return null;
  try {
    return await loadMe();
  } catch {
    return null;
  }
}

/** Exchanges the refresh cookie for a new access token. One exchange at a
 * time, across tabs too (the server revokes a session whose refresh token
 * is presented twice). Answers whether the session lives on. */
export function refresh() {
  if (!refreshing) {
    const exchange = async () => {
      try {
        const binding = localStorage.getItem(BINDING);
        if (!binding) {
          end();
          return false;
        }
        const envelope = await send("POST", "/api/auth/session/refresh", undefined, {
          ...COOKIE_ROUTE,
          "X-KXY-Binding": binding,
        });
        adopt(envelope.data);
        return true;
      } catch (error) {
        if (error instanceof ApiError && error.status === 0) return accessToken !== null;
        end();
        return false;
      }
    };
    const locks = navigator.locks;
    refreshing = (locks ? locks.request("kxy-session-refresh", exchange) : exchange()).finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

function end() {
  accessToken = null;
  localStorage.removeItem(BINDING);
  clearTimeout(refreshTimer);
  if (session.current) setSession(null);
}

/** Ends the session on the server and forgets it here; answers the error
 * if the server could not end it (null when it did). */
export async function logout() {
  let failure = null;
  try {
    await send("DELETE", "/api/auth/session", undefined, COOKIE_ROUTE);
  } catch (error) {
    failure = error;
  }
  end();
  return failure;
}

/** Changes the caller's password; the server starts a new session (cookie). */
export async function changePassword(currentPassword, newPassword) {
  const envelope = await send(
    "POST",
    "/api/auth/session/password",
    { current_password: currentPassword, new_password: newPassword },
    COOKIE_ROUTE,
  );
  adopt(envelope.data);
  return envelope.msg;
}
