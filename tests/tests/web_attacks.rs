//! A hostile web page (or a hostile user with a browser's tools) against the
//! admin page's browser session and files, on a running server: other
//! origins must not log in, refresh, change a password or log out through
//! the cookie; the cookie must be unreadable, scoped, rotated and no
//! credential for the API; logging out must end the session even when the
//! page's access token is dead; a page that rebinds its own name to
//! 127.0.0.1 must not take a fresh server's first run; no file outside the
//! page is served and no answer can run script.

use kxy_e2e::api::{Answer, send};
use kxy_e2e::server::ServerProcess;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const USER: &str = "admin";
const PASSWORD: &str = "admin password 1";
const CSRF: (&str, &str) = ("x-kxy-csrf", "1");

fn start() -> (tempfile::TempDir, ServerProcess) {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&["--data-dir", dir.path().to_str().unwrap()], &[]);
    (dir, server)
}

/// A started server with its first administrator.
async fn initialized() -> (tempfile::TempDir, ServerProcess) {
    let (dir, server) = start();
    let init = post(
        &server,
        "/api/auth/init-user",
        &json!({"username": USER, "password": PASSWORD}),
        &[],
    )
    .await;
    assert_eq!(init.status, 200, "{:?}", init.body);
    (dir, server)
}

fn url(server: &ServerProcess, path: &str) -> String {
    format!("{}{path}", server.base_url())
}

async fn post(
    server: &ServerProcess,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> Answer {
    let http = reqwest::Client::new();
    send(&http, Method::POST, &url(server, path), Some(body), headers)
        .await
        .unwrap()
}

/// One raw answer: status, `Set-Cookie` values, body.
struct Raw {
    status: u16,
    cookies: Vec<String>,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Raw {
    fn code(&self) -> i64 {
        self.body["code"].as_i64().unwrap_or(-1)
    }

    /// The refresh token the answer sets, if it sets a live one.
    fn session_cookie(&self) -> Option<String> {
        self.cookies.iter().find_map(|c| {
            let value = c.strip_prefix("kxy_refresh=")?.split(';').next()?;
            (!value.is_empty()).then(|| value.to_owned())
        })
    }

    fn clears_the_cookie(&self) -> bool {
        self.cookies
            .iter()
            .any(|c| c.starts_with("kxy_refresh=;") && c.contains("Max-Age=0"))
    }
}

async fn raw(
    server: &ServerProcess,
    method: Method,
    path: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> Raw {
    let http = reqwest::Client::new();
    let mut request = http.request(method, url(server, path));
    if let Some(body) = body {
        request = request.json(body);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let cookies = headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let body = response.json().await.unwrap_or(Value::Null);
    Raw {
        status,
        cookies,
        headers,
        body,
    }
}

/// What the page keeps in its own storage: the binding of each session it
/// opened (by session id, which stays while the cookie rotates).
static BINDINGS: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

/// The session id of a refresh token (`rt_<session>.<secret>`).
fn session_of(cookie: &str) -> String {
    cookie
        .trim_start_matches("rt_")
        .split('.')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The binding the page holds for the session of `cookie`.
fn binding_of(cookie: &str) -> String {
    let session = session_of(cookie);
    BINDINGS
        .lock()
        .unwrap()
        .iter()
        .find(|(s, _)| *s == session)
        .map(|(_, b)| b.clone())
        .unwrap_or_default()
}

/// Keeps the binding of the session an answer (a login or a password
/// change) opened, as the page does.
fn remember(answer: &Raw) {
    let cookie = answer.session_cookie().expect("a new session's cookie");
    let binding = answer.body["data"]["binding"].as_str().expect("a binding");
    BINDINGS
        .lock()
        .unwrap()
        .push((session_of(&cookie), binding.to_owned()));
}

/// Logs in the way the page does: the access token and the cookie's value
/// (the session's binding is kept, as the page keeps it).
async fn browser_login(server: &ServerProcess) -> (String, String) {
    let answer = raw(
        server,
        Method::POST,
        "/api/auth/session",
        Some(&json!({"username": USER, "password": PASSWORD})),
        &[CSRF],
    )
    .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let cookie = answer.session_cookie().expect("the login sets the cookie");
    let binding = answer.body["data"]["binding"].as_str().unwrap().to_owned();
    BINDINGS
        .lock()
        .unwrap()
        .push((session_of(&cookie), binding));
    let access = answer.body["data"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    (access, cookie)
}

/// Refreshes the way the page does: the cookie, and the binding the page
/// holds for its session.
async fn refresh_with(server: &ServerProcess, cookie: &str) -> Raw {
    refresh_bound(server, cookie, &binding_of(cookie)).await
}

async fn refresh_bound(server: &ServerProcess, cookie: &str, binding: &str) -> Raw {
    let header = format!("kxy_refresh={cookie}");
    raw(
        server,
        Method::POST,
        "/api/auth/session/refresh",
        None,
        &[CSRF, ("cookie", &header), ("x-kxy-binding", binding)],
    )
    .await
}

async fn me(server: &ServerProcess, access: &str) -> u16 {
    let bearer = format!("Bearer {access}");
    raw(
        server,
        Method::GET,
        "/api/users/me",
        None,
        &[("authorization", &bearer)],
    )
    .await
    .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_origin_cannot_use_the_cookie_routes() {
    let (_dir, server) = initialized().await;
    let (access, cookie) = browser_login(&server).await;
    let host = server.address().to_owned();
    let cookie_header = format!("kxy_refresh={cookie}");
    let bearer = format!("Bearer {access}");
    let login = json!({"username": USER, "password": PASSWORD});
    let password = json!({"current_password": PASSWORD, "new_password": "taken over 1"});
    let port = host.rsplit(':').next().unwrap().to_owned();

    // What a foreign page can make a browser send. The CSRF header needs a
    // CORS preflight (never granted: see below), so a form or a no-cors
    // fetch comes without it; a page that got it through would still carry
    // its own Origin, or be marked cross-site by the browser.
    let foreign: Vec<Vec<(String, String)>> = vec![
        vec![],
        vec![("x-kxy-csrf".into(), "0".into())],
        vec![("origin".into(), format!("http://{host}"))],
        vec![("sec-fetch-site".into(), "same-origin".into())],
        vec![
            ("x-kxy-csrf".into(), "1".into()),
            ("origin".into(), "null".into()),
        ],
        vec![
            ("x-kxy-csrf".into(), "1".into()),
            ("origin".into(), "http://127.0.0.1:1".into()),
        ],
        vec![
            ("x-kxy-csrf".into(), "1".into()),
            ("origin".into(), format!("http://localhost:{port}")),
        ],
        vec![
            ("x-kxy-csrf".into(), "1".into()),
            ("origin".into(), format!("http://{host}.evil.example")),
        ],
        vec![
            ("x-kxy-csrf".into(), "1".into()),
            ("origin".into(), format!("http://evil.example@{host}")),
        ],
        vec![
            ("x-kxy-csrf".into(), "1".into()),
            ("origin".into(), format!("http://{host}/")),
        ],
        vec![
            ("x-kxy-csrf".into(), "1".into()),
            ("sec-fetch-site".into(), "same-site".into()),
        ],
        vec![
            ("x-kxy-csrf".into(), "1".into()),
            ("sec-fetch-site".into(), "cross-site".into()),
        ],
        vec![
            ("x-kxy-csrf".into(), "1".into()),
            ("sec-fetch-site".into(), "none".into()),
        ],
    ];
    for headers in &foreign {
        let mut with: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        with.push(("cookie", &cookie_header));
        let calls = [
            (Method::POST, "/api/auth/session", Some(&login)),
            (Method::POST, "/api/auth/session/refresh", None),
            (Method::POST, "/api/auth/session/password", Some(&password)),
            (Method::DELETE, "/api/auth/session", None),
        ];
        for (method, path, body) in calls {
            let mut all = with.clone();
            // The password change also needs the access token: the attack
            // is the cookie, so give the foreign page even that.
            if path.ends_with("/password") {
                all.push(("authorization", &bearer));
            }
            let answer = raw(&server, method.clone(), path, body, &all).await;
            assert_eq!(
                (answer.status, answer.code()),
                (403, 40304),
                "{method} {path} with {headers:?}: {:?}",
                answer.body
            );
            assert!(
                answer.cookies.is_empty(),
                "{method} {path}: {:?}",
                answer.cookies
            );
        }
    }

    // A form posts text/plain or urlencoded bodies and no custom header.
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ] {
        let http = reqwest::Client::new();
        let answer = http
            .post(url(&server, "/api/auth/session"))
            .header("content-type", content_type)
            .body(login.to_string())
            .send()
            .await
            .unwrap();
        assert!(
            answer.status() == 403 || answer.status() == 415,
            "{content_type}: {}",
            answer.status()
        );
        assert!(answer.headers().get("set-cookie").is_none());
    }

    // The preflight a foreign page needs for the header is never granted.
    for path in [
        "/api/auth/session",
        "/api/auth/session/refresh",
        "/api/users/me",
    ] {
        let answer = raw(
            &server,
            Method::OPTIONS,
            path,
            None,
            &[
                ("origin", "http://127.0.0.1:1"),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "x-kxy-csrf, content-type"),
            ],
        )
        .await;
        assert!(answer.status >= 400, "{path}: {}", answer.status);
        for header in answer.headers.keys() {
            assert!(
                !header.as_str().starts_with("access-control-"),
                "{path} answers {header}"
            );
        }
    }

    // Nothing above touched the session: the page's own call still works.
    let own = format!("http://{host}");
    let binding = binding_of(&cookie);
    let fine = raw(
        &server,
        Method::POST,
        "/api/auth/session/refresh",
        None,
        &[
            CSRF,
            ("origin", &own),
            ("sec-fetch-site", "same-origin"),
            ("cookie", &cookie_header),
            ("x-kxy-binding", &binding),
        ],
    )
    .await;
    assert_eq!(fine.status, 200, "{:?}", fine.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cookie_is_unreadable_scoped_and_secure_behind_https() {
    let (_dir, server) = initialized().await;
    let login = json!({"username": USER, "password": PASSWORD});
    let answer = raw(
        &server,
        Method::POST,
        "/api/auth/session",
        Some(&login),
        &[CSRF],
    )
    .await;
    remember(&answer);
    let set = &answer.cookies[0];
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/api/auth/session"] {
        assert!(set.contains(attribute), "{set}");
    }
    assert!(!set.contains("Secure") && !set.contains("Domain"), "{set}");
    // The body holds the access token only.
    let token = answer.session_cookie().unwrap();
    let text = answer.body.to_string();
    assert!(
        !text.contains(&token) && !text.contains("refresh_token"),
        "{text}"
    );
    let refreshed = refresh_with(&server, &token).await;
    let next = refreshed.session_cookie().unwrap();
    let text = refreshed.body.to_string();
    assert!(!text.contains(&next) && !text.contains(&token), "{text}");

    // Behind HTTPS the cookie is Secure, however the proxy spells it.
    for (name, value) in [
        ("x-forwarded-proto", "https"),
        ("x-forwarded-proto", "HTTPS"),
        ("x-forwarded-proto", "https, http"),
    ] {
        let secure = raw(
            &server,
            Method::POST,
            "/api/auth/session",
            Some(&login),
            &[CSRF, (name, value)],
        )
        .await;
        assert!(
            secure.cookies[0].ends_with("; Secure"),
            "{value}: {:?}",
            secure.cookies
        );
    }
    // Nor is the refresh token ever logged.
    assert!(!server.logs().contains(&token) && !server.logs().contains(&next));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refresh_cookie_is_no_credential_for_the_api() {
    let (_dir, server) = initialized().await;
    let (_, cookie) = browser_login(&server).await;
    let cookie_header = format!("kxy_refresh={cookie}");
    let bearer = format!("Bearer {cookie}");
    let attempts: [&[(&str, &str)]; 3] = [
        &[CSRF, ("cookie", &cookie_header)],
        &[("authorization", &bearer)],
        &[("x-api-key", "x"), ("x-api-secret", &cookie)],
    ];
    for headers in attempts {
        for path in ["/api/users/me", "/api/keys", "/api/users"] {
            let answer = raw(&server, Method::GET, path, None, headers).await;
            assert_eq!(
                answer.status, 401,
                "{path} with {headers:?}: {:?}",
                answer.body
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_or_raced_cookie_ends_the_session() {
    let (_dir, server) = initialized().await;

    // Replay: the thief's copy and the owner's both die.
    let (_, first) = browser_login(&server).await;
    let rotated = refresh_with(&server, &first).await;
    let second = rotated.session_cookie().unwrap();
    assert_ne!(first, second);
    let replay = refresh_with(&server, &first).await;
    assert_eq!((replay.status, replay.code()), (401, 40102));
    assert!(replay.clears_the_cookie());
    let access = rotated.body["data"]["access_token"].as_str().unwrap();
    assert_eq!(me(&server, access).await, 401);
    assert_eq!(refresh_with(&server, &second).await.status, 401);

    // A race: eight exchanges of one cookie at once leave at most one
    // winner, and then no live session.
    let (_, cookie) = browser_login(&server).await;
    let exchanges = (0..8).map(|_| refresh_with(&server, &cookie));
    let answers = futures::future::join_all(exchanges).await;
    let winners: Vec<&Raw> = answers.iter().filter(|a| a.status == 200).collect();
    assert!(winners.len() <= 1, "{} exchanges won", winners.len());
    for winner in winners {
        let access = winner.body["data"]["access_token"].as_str().unwrap();
        assert_eq!(me(&server, access).await, 401);
        let next = winner.session_cookie().unwrap();
        assert_eq!(refresh_with(&server, &next).await.status, 401);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cookie_dies_with_logout_a_password_change_and_deactivation() {
    let (_dir, server) = initialized().await;
    let http = reqwest::Client::new();

    // Logout (the page's way: access token and cookie).
    let (access, cookie) = browser_login(&server).await;
    let bearer = format!("Bearer {access}");
    let header = format!("kxy_refresh={cookie}");
    let out = raw(
        &server,
        Method::DELETE,
        "/api/auth/session",
        None,
        &[CSRF, ("authorization", &bearer), ("cookie", &header)],
    )
    .await;
    assert_eq!(out.status, 200, "{:?}", out.body);
    assert!(out.clears_the_cookie());
    assert_eq!(refresh_with(&server, &cookie).await.status, 401);
    assert_eq!(me(&server, &access).await, 401);

    // A password change through another login: this cookie ends.
    let (_, other) = browser_login(&server).await;
    let (access, _) = browser_login(&server).await;
    let bearer = format!("Bearer {access}");
    let changed = raw(
        &server,
        Method::POST,
        "/api/auth/session/password",
        Some(&json!({"current_password": PASSWORD, "new_password": "a new password 2"})),
        &[CSRF, ("authorization", &bearer)],
    )
    .await;
    assert_eq!(changed.status, 200, "{:?}", changed.body);
    assert!(!changed.body.to_string().contains("rt_"));
    remember(&changed);
    let ended = refresh_with(&server, &other).await;
    assert_eq!(ended.status, 401);
    assert!(ended.clears_the_cookie());
    let mine = changed.session_cookie().unwrap();
    assert_eq!(refresh_with(&server, &mine).await.status, 200);

    // Deactivation: a second user's browser session ends with the account.
    let admin = changed.body["data"]["access_token"].as_str().unwrap();
    let created = send(
        &http,
        Method::POST,
        &url(&server, "/api/users"),
        Some(&json!({"username": "eve", "password": "eve password 1"})),
        &[("authorization", &format!("Bearer {admin}"))],
    )
    .await
    .unwrap();
    assert_eq!(created.status, 200, "{:?}", created.body);
    let eve_id = created.body["data"]["id"].as_str().unwrap().to_owned();
    let eve = raw(
        &server,
        Method::POST,
        "/api/auth/session",
        Some(&json!({"username": "eve", "password": "eve password 1"})),
        &[CSRF],
    )
    .await;
    let eve_cookie = eve.session_cookie().unwrap();
    let admin_auth = format!("Bearer {admin}");
    let off = raw(
        &server,
        Method::PUT,
        &format!("/api/users/{eve_id}"),
        Some(&json!({"active": false})),
        &[("authorization", &admin_auth)],
    )
    .await;
    assert_eq!(off.status, 200, "{:?}", off.body);
    assert_eq!(refresh_with(&server, &eve_cookie).await.status, 401);
}

/// The page's logout used to need a live access token: one that had run
/// out (15 minutes; a laptop that slept) got 401, the page said "logged
/// out", and the cookie's session lived on for the refresh token's week,
/// for the next person at that browser to resume with a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_out_with_a_dead_access_token_still_ends_the_session() {
    let (_dir, server) = initialized().await;
    for dead in [None, Some("Bearer eyJhbGciOiJIUzI1NiJ9.e30.c2ln")] {
        let (access, cookie) = browser_login(&server).await;
        let header = format!("kxy_refresh={cookie}");
        let mut headers = vec![CSRF, ("cookie", header.as_str())];
        if let Some(dead) = dead {
            headers.push(("authorization", dead));
        }
        let out = raw(&server, Method::DELETE, "/api/auth/session", None, &headers).await;
        assert_eq!(out.status, 200, "{dead:?}: {:?}", out.body);
        assert!(out.clears_the_cookie());
        assert_eq!(refresh_with(&server, &cookie).await.status, 401);
        assert_eq!(me(&server, &access).await, 401, "the access token ends too");
    }

    // Without the page's header the cookie ends nothing (no logout CSRF).
    let (access, cookie) = browser_login(&server).await;
    let header = format!("kxy_refresh={cookie}");
    let forged = raw(
        &server,
        Method::DELETE,
        "/api/auth/session",
        None,
        &[("cookie", &header)],
    )
    .await;
    assert_eq!((forged.status, forged.code()), (403, 40304));
    assert_eq!(me(&server, &access).await, 200);
    // Nor does a made-up secret for a real session (the session id is in
    // every access token, so it is no secret).
    let session = cookie.split('.').next().unwrap();
    let guessed = format!("kxy_refresh={session}.{}", "0".repeat(64));
    let out = raw(
        &server,
        Method::DELETE,
        "/api/auth/session",
        None,
        &[CSRF, ("cookie", &guessed)],
    )
    .await;
    assert_eq!(out.status, 200);
    assert_eq!(me(&server, &access).await, 200);
    assert_eq!(refresh_with(&server, &cookie).await.status, 200);
}

/// A page on evil.example whose name it re-points at 127.0.0.1 (DNS
/// rebinding) is same-origin with itself, so its browser sends it the
/// answers; its requests carry `Host: evil.example:<port>`. On a loopback
/// bind the first-run init needs no token, so it used to make the page's
/// owner the administrator of a fresh server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebound_name_cannot_take_the_first_run() {
    let (_dir, server) = start();
    let port = server.address().rsplit(':').next().unwrap().to_owned();
    let body = json!({"username": "mallory", "password": "mallory password 1"});
    for host in [
        format!("evil.example:{port}"),
        format!("127.0.0.1.evil.example:{port}"),
        format!("localhost.evil.example:{port}"),
        format!("0.0.0.0:{port}"),
    ] {
        let origin = format!("http://{host}");
        let answer = raw(
            &server,
            Method::POST,
            "/api/auth/init-user",
            Some(&body),
            &[("host", &host), ("origin", &origin)],
        )
        .await;
        assert_eq!(
            (answer.status, answer.code()),
            (403, 40304),
            "{host}: {:?}",
            answer.body
        );
    }
    let check = raw(&server, Method::GET, "/api/auth/check-init", None, &[]).await;
    assert_eq!(check.body["data"]["initialized"], false);

    // The operator's own browser, under any loopback name, still can.
    let localhost = format!("localhost:{port}");
    let answer = raw(
        &server,
        Method::POST,
        "/api/auth/init-user",
        Some(&json!({"username": USER, "password": PASSWORD})),
        &[("host", &localhost)],
    )
    .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
}

/// With a setup token the token is the proof, whatever the name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_setup_token_any_name_may_run_the_first_run() {
    let dir = tempfile::tempdir().unwrap();
    let token = "a setup token of some length";
    let server = ServerProcess::start(
        &[
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--setup-token",
            token,
        ],
        &[],
    );
    let host = "kxy.example.com";
    let without = raw(
        &server,
        Method::POST,
        "/api/auth/init-user",
        Some(&json!({"username": USER, "password": PASSWORD})),
        &[("host", host)],
    )
    .await;
    assert_eq!((without.status, without.code()), (403, 40303));
    let with = raw(
        &server,
        Method::POST,
        "/api/auth/init-user",
        Some(&json!({"username": USER, "password": PASSWORD, "setup_token": token})),
        &[("host", host)],
    )
    .await;
    assert_eq!(with.status, 200, "{:?}", with.body);
}

/// `GET <path>` exactly as written (no client normalizes it): status line
/// and headers, lower-cased.
async fn get_raw(server: &ServerProcess, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(server.address())
        .await
        .unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        server.address()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer).to_lowercase();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_file_outside_the_page_is_served_and_no_answer_runs_script() {
    let (_dir, server) = start();
    for path in [
        "/assets/../Cargo.toml",
        "/assets/..%2f..%2fCargo.toml",
        "/assets/%2e%2e/%2e%2e/etc/passwd",
        "/assets/..%5c..%5cCargo.toml",
        "/assets/..\\..\\Cargo.toml",
        "/assets/screens/../app.js",
        "/assets//app.js",
        "/assets/app.js%00.css",
        "/assets/APP.JS",
        "/assets/vendor/",
        "/assets/",
        "/assets/index.html",
        "/assets/mod.rs",
        "/assets/%2fetc%2fpasswd",
    ] {
        let (status, text) = get_raw(&server, path).await;
        assert!(status == 404 || status == 400, "{path}: {status}\n{text}");
        assert!(
            !text.contains("[package]") && !text.contains("root:"),
            "{path}"
        );
        if status == 404 {
            assert!(text.contains("content-type: application/json"), "{path}");
        }
    }

    // An answer that echoes input is JSON that nothing may run in.
    for path in [
        "/%3Cscript%3Ealert(1)%3C/script%3E",
        "/assets/%3Cimg%20src=x%20onerror=alert(1)%3E.html",
        "/api/users/%3Cscript%3E",
    ] {
        let (_, text) = get_raw(&server, path).await;
        assert!(
            text.contains("content-type: application/json"),
            "{path}\n{text}"
        );
        assert!(text.contains("x-content-type-options: nosniff"), "{path}");
        assert!(
            text.contains("content-security-policy: default-src 'none'; frame-ancestors 'none'"),
            "{path}\n{text}"
        );
        assert!(text.contains("cache-control: no-store"), "{path}");
    }
    // The page's own files: typed, revalidated, under the page's policy.
    for (path, kind) in [
        ("/", "text/html"),
        ("/assets/app.js", "text/javascript"),
        ("/assets/style.css", "text/css"),
        ("/assets/favicon.svg", "image/svg+xml"),
    ] {
        let (status, text) = get_raw(&server, path).await;
        assert_eq!(status, 200, "{path}");
        assert!(text.contains(&format!("content-type: {kind}")), "{path}");
        assert!(text.contains("cache-control: no-cache"), "{path}");
        assert!(text.contains("script-src 'self'"), "{path}");
        assert!(!text.contains("unsafe-inline"), "{path}");
        assert!(text.contains("x-frame-options: deny"), "{path}");
    }
}

/// Cookies ignore ports: a page on another port of this host can plant its
/// own session's cookie for the admin page (login CSRF by cookie tossing),
/// so the admin's page would resume as the attacker and store secrets in
/// the attacker's account. The planted cookie comes without the binding the
/// admin's page holds, and is refused; the admin's own pair still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_cookie_planted_by_another_page_is_refused() {
    let (_dir, server) = initialized().await;
    let (_, attackers) = browser_login(&server).await;
    let (_, admins) = browser_login(&server).await;
    // The page holds its own binding; the cookie jar holds the attacker's.
    let planted = refresh_bound(&server, &attackers, &binding_of(&admins)).await;
    assert_eq!(
        (planted.status, planted.code()),
        (401, 40102),
        "{:?}",
        planted.body
    );
    assert!(planted.session_cookie().is_none());
    // Without any binding (a page that never logged in here) too.
    let unbound = refresh_bound(&server, &attackers, "").await;
    assert_eq!(unbound.status, 401, "{:?}", unbound.body);
    // A session opened by plain /api/auth/login has no binding at all.
    let plain = raw(
        &server,
        Method::POST,
        "/api/auth/login",
        Some(&json!({"username": USER, "password": PASSWORD})),
        &[],
    )
    .await;
    let plain_refresh = plain.body["data"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(refresh_bound(&server, &plain_refresh, "").await.status, 401);
    // The admin's own cookie with its binding refreshes, and the binding
    // outlives the rotation.
    let fresh = refresh_with(&server, &admins).await;
    assert_eq!(fresh.status, 200, "{:?}", fresh.body);
    assert!(fresh.body["data"]["binding"].is_null());
    let rotated = fresh.session_cookie().unwrap();
    assert_eq!(refresh_with(&server, &rotated).await.status, 200);
}

/// Cookies ignore ports for reading too, and `SameSite` ignores them: a
/// page on another port of this host that the admin opens can have the
/// browser send it (its own server, a path under `/api/auth/session`) the
/// admin's refresh cookie. The binding stays in this origin's storage, so
/// the page's refresh route refuses the stolen cookie; but the programs'
/// `/api/auth/refresh` took it without any binding and answered the
/// admin's tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stolen_page_cookie_is_no_refresh_token_for_programs() {
    let (_dir, server) = initialized().await;
    let (_, cookie) = browser_login(&server).await;
    let stolen = raw(
        &server,
        Method::POST,
        "/api/auth/refresh",
        Some(&json!({"refresh_token": cookie})),
        &[],
    )
    .await;
    assert_eq!(
        (stolen.status, stolen.code()),
        (401, 40102),
        "{:?}",
        stolen.body
    );
    assert!(!stolen.body.to_string().contains("rt_"));
    // Nor with any binding a thief could make up, at the page's route.
    for guess in ["", "x", &cookie] {
        assert_eq!(refresh_bound(&server, &cookie, guess).await.status, 401);
    }
    // Refusing it ends nothing: the page's own cookie and binding go on.
    let fresh = refresh_with(&server, &cookie).await;
    assert_eq!(fresh.status, 200, "{:?}", fresh.body);
    // A program's own session still refreshes there.
    let plain = raw(
        &server,
        Method::POST,
        "/api/auth/login",
        Some(&json!({"username": USER, "password": PASSWORD})),
        &[],
    )
    .await;
    let token = plain.body["data"]["refresh_token"].as_str().unwrap();
    let again = raw(
        &server,
        Method::POST,
        "/api/auth/refresh",
        Some(&json!({"refresh_token": token})),
        &[],
    )
    .await;
    assert_eq!(again.status, 200, "{:?}", again.body);
}

/// A page on another port may also plant its own cookie on a longer path
/// (`/api/auth/session/refresh`): the browser then sends it first, beside
/// the admin's. Taking only the first cookie refused the admin's page at
/// every reload (and cleared its real cookie), however often the admin
/// logged in again; and a logout by cookie ended the planted session
/// instead of the admin's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadowing_cookie_neither_locks_the_page_out_nor_survives_its_logout() {
    let (_dir, server) = initialized().await;
    let (_, attackers) = browser_login(&server).await;
    let (_, admins) = browser_login(&server).await;
    let jar = format!("kxy_refresh={attackers}; kxy_refresh={admins}");
    let binding = binding_of(&admins);
    let resumed = raw(
        &server,
        Method::POST,
        "/api/auth/session/refresh",
        None,
        &[CSRF, ("cookie", &jar), ("x-kxy-binding", &binding)],
    )
    .await;
    assert_eq!(resumed.status, 200, "{:?}", resumed.body);
    let rotated = resumed.session_cookie().unwrap();
    assert_eq!(
        session_of(&rotated),
        session_of(&admins),
        "resumed as the admin"
    );
    // The attacker's binding with the same jar resumes the attacker only.
    let theirs = raw(
        &server,
        Method::POST,
        "/api/auth/session/refresh",
        None,
        &[
            CSRF,
            ("cookie", &jar),
            ("x-kxy-binding", &binding_of(&attackers)),
        ],
    )
    .await;
    assert_eq!(theirs.status, 200, "{:?}", theirs.body);
    assert_eq!(
        session_of(&theirs.session_cookie().unwrap()),
        session_of(&attackers)
    );

    // Logging out by cookie alone (the access token ran out) ends the
    // admin's session, not only the planted one.
    let attackers_now = theirs.session_cookie().unwrap();
    let jar = format!("kxy_refresh={attackers_now}; kxy_refresh={rotated}");
    let out = raw(
        &server,
        Method::DELETE,
        "/api/auth/session",
        None,
        &[CSRF, ("cookie", &jar)],
    )
    .await;
    assert_eq!(out.status, 200, "{:?}", out.body);
    assert_eq!(refresh_with(&server, &rotated).await.status, 401);
}
