//! Every route the router serves, walked from `routes::inventory`: none but
//! an explicit public list answers without authentication, and each
//! permission-guarded route refuses a logged-in user without it, naming the
//! permission.

use std::time::Duration;

use axum::http::Method;
use kxy_core::AllocationLimits;
use kxy_server::app::{router, serve};
use kxy_server::identity::{AuthSettings, LockoutPolicy};
use kxy_server::routes::{Access, inventory};
use kxy_server::state::{AppState, Settings};
use kxy_server::store::{self, MissingCounter, StoreConfig};
use serde_json::{Value, json};

/// The only routes that may answer without credentials (allocation only
/// while the server does not require API keys for it, the default here).
/// The browser session's routes are public to the guard: they prove the
/// caller by the refresh cookie (plus the page's CSRF header) instead.
const PUBLIC: [(&str, &str); 9] = [
    ("GET", "/health"),
    ("GET", "/api/auth/check-init"),
    ("POST", "/api/auth/init-user"),
    ("POST", "/api/auth/login"),
    ("POST", "/api/auth/refresh"),
    ("POST", "/api/segment/allocate"),
    ("POST", "/api/auth/session"),
    ("POST", "/api/auth/session/refresh"),
    ("DELETE", "/api/auth/session"),
];

fn settings() -> AuthSettings {
    AuthSettings {
        access_ttl: Duration::from_secs(300),
        refresh_ttl: Duration::from_secs(3600),
        lockout: LockoutPolicy {
            threshold: 5,
            window: Duration::from_secs(60),
            duration: Duration::from_secs(60),
        },
    }
}

async fn start(dir: &std::path::Path) -> String {
    let store = store::open(&StoreConfig::Embedded {
        data_dir: dir.to_owned(),
    })
    .await
    .unwrap();
    let settings = Settings {
        limits: AllocationLimits::default(),
        missing: MissingCounter::Refuse,
        auth: settings(),
        jwt_secret: None,
        max_api_keys: 5,
        allocation_requires_key: false,
        vault: Default::default(),
        scan_interval: None,
        databases: Default::default(),
    };
    let state = AppState::new(store, settings).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(listener, router(state), std::future::pending()));
    url
}

/// The route's path with every `{param}` filled in.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|s| {
            if s.starts_with('{') {
                "0123456789abcdef0123456789abcdef"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn call(
    http: &reqwest::Client,
    url: &str,
    method: &Method,
    path: &str,
    token: Option<&str>,
) -> (u16, Value) {
    let mut request = http
        .request(method.clone(), format!("{url}{}", concrete(path)))
        .json(&json!({}));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn token(http: &reqwest::Client, url: &str, username: &str, password: &str) -> String {
    let answer: Value = http
        .post(format!("{url}/api/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["data"]["access_token"]
        .as_str()
        .expect("logged in")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_outside_the_public_list_answers_without_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let url = start(dir.path()).await;
    let http = reqwest::Client::new();
    let routes = inventory();
    assert!(
        routes.len() > 30,
        "the inventory lists every route ({})",
        routes.len()
    );

    let open = |a: Access| a == Access::Public || a == Access::Allocation;
    let public: Vec<(String, &str)> = routes
        .iter()
        .filter(|r| open(r.access))
        .map(|r| (r.method.to_string(), r.path))
        .collect();
    let expected: Vec<(String, &str)> = PUBLIC.iter().map(|(m, p)| (m.to_string(), *p)).collect();
    assert_eq!(
        public, expected,
        "the public routes are exactly the documented list"
    );

    for route in routes.iter().filter(|r| !open(r.access)) {
        let (status, body) = call(&http, &url, &route.method, route.path, None).await;
        assert_eq!(
            status, 401,
            "{} {} answered without authentication: {body}",
            route.method, route.path
        );
        assert_eq!(body["code"], 40100, "{} {}", route.method, route.path);
        // A forged token is no better than none.
        let (status, _) = call(
            &http,
            &url,
            &route.method,
            route.path,
            Some("eyJhbGciOiJub25lIn0.e30."),
        )
        .await;
        assert_eq!(
            status, 401,
            "{} {} accepted a forged token",
            route.method, route.path
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_without_a_permission_is_refused_on_every_admin_route() {
    let dir = tempfile::tempdir().unwrap();
    let url = start(dir.path()).await;
    let http = reqwest::Client::new();
    let init = http
        .post(format!("{url}/api/auth/init-user"))
        .json(&json!({"username": "root", "password": "root password 1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(init.status(), 200);
    let admin = token(&http, &url, "root", "root password 1").await;
    let created = http
        .post(format!("{url}/api/users"))
        .bearer_auth(&admin)
        .json(&json!({"username": "plain", "password": "plain password 1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    let mut plain = token(&http, &url, "plain", "plain password 1").await;

    let mut guarded = 0;
    // The logouts last: each revokes the token this walk uses, so each
    // gets a fresh one.
    let logout = |r: &kxy_server::routes::RouteSpec| {
        matches!(
            (r.method.as_str(), r.path),
            ("POST", "/api/auth/logout") | ("DELETE", "/api/auth/session")
        )
    };
    let mut routes = inventory();
    routes.sort_by_key(logout);
    for route in routes {
        if logout(&route) {
            plain = token(&http, &url, "plain", "plain password 1").await;
        }
        let (status, body) = call(&http, &url, &route.method, route.path, Some(&plain)).await;
        match route.access {
            Access::Permission(permission) => {
                guarded += 1;
                assert_eq!(status, 403, "{} {}: {body}", route.method, route.path);
                assert_eq!(body["code"], 40301);
                assert_eq!(body["msg"], format!("missing permission {permission}"));
            }
            // A login token is enough for a user's own records.
            Access::LoggedIn | Access::Own(_) => {
                assert!(
                    status != 401 && status != 403,
                    "{} {}: {status} {body}",
                    route.method,
                    route.path
                );
            }
            Access::Public | Access::Allocation => {}
        }
    }
    assert!(guarded >= 20, "{guarded} permission-guarded routes");
}
