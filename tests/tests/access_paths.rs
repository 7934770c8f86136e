//! Attacks on the access check with path tricks, against running servers
//! (embedded store, and two instances on Redis): a user granted
//! `/public/*` asks whether they may call `/admin/secret` spelled with
//! `..`, percent-encoding, `;` parameters, doubled slashes, other case or
//! a trailing slash. Each spelling is judged as `/admin/secret` (denied,
//! then allowed once a grant covers it), or refused as ambiguous (400); no
//! spelling reaches `/public/*`'s grant. Endpoint paths are normalised the
//! same way when registered.

use std::time::{Duration, Instant};

use kxy_e2e::api::Answer;
use kxy_e2e::deploy::{Deployment, ROOT_PASSWORD};
use serde_json::{Value, json};

/// Spellings a web server routes to `/admin/secret`.
const SAME_AS_ADMIN_SECRET: &[&str] = &[
    "/public/../admin/secret",
    "/public/./../admin/secret",
    "/public/x/../../admin/secret",
    "/public/%2e%2e/admin/secret",
    "/public/%2E%2E/admin/secret",
    "/public/.%2e/admin/secret",
    "/public/..;/admin/secret",
    "/public/%2e%2e;x=1/%41DMIN/secret",
    "/admin;x=1/secret",
    "/admin/secret;jsessionid=1",
    "//admin//secret",
    "/ADMIN/SECRET",
    "/Admin/secret",
    "/admin/secret/",
    "/admin/./secret",
    "/%61dmin/secre%74",
    "/admin/secret?next=/public/a",
    "/admin/secret#/public/a",
];

/// Spellings whose meaning differs between servers: refused, never judged.
const AMBIGUOUS: &[&str] = &[
    "/public/..%2fadmin/secret",
    "/public/..%2Fadmin/secret",
    "/public%2f..%2fadmin/secret",
    "/public/%252e%252e/admin/secret",
    "/public/..%5cadmin/secret",
    "/public/..\\admin/secret",
    "/public//../admin/secret",
    "/public/../../admin/secret",
    "/public/a%00/../../admin/secret",
    "/public/%zz/../admin/secret",
    "public/../admin/secret",
];

async fn check(d: &Deployment, token: &str, path: &str) -> Answer {
    d.post(
        "/api/access/check",
        json!({"subject": "pat", "method": "GET", "path": path}),
        Some(token),
    )
    .await
}

/// Waits until `path` is allowed twice in a row (so on both instances).
async fn settle_allowed(d: &Deployment, token: &str, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut streak = 0;
    while streak < 2 {
        let answer = check(d, token, path).await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        streak = if answer.body["data"]["allowed"] == true {
            streak + 1
        } else {
            0
        };
        assert!(
            Instant::now() < deadline,
            "{}: {path} never allowed",
            d.name
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn endpoint(d: &Deployment, token: &str, method: &str, path: &str) -> Answer {
    d.post(
        "/api/access/endpoints",
        json!({"method": method, "path": path}),
        Some(token),
    )
    .await
}

async fn grant(d: &Deployment, token: &str, user: &str, endpoint: &str) {
    let answer = d
        .post(
            "/api/access/grants",
            json!({"subject": {"type": "user", "id": user}, "endpoint_id": endpoint, "level": "read"}),
            Some(token),
        )
        .await;
    assert_eq!(answer.status, 200, "{}: {:?}", d.name, answer.body);
}

fn id(answer: &Answer) -> String {
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    answer.body["data"]["id"].as_str().unwrap().to_owned()
}

/// Asserts every spelling of `/admin/secret` is judged by that endpoint.
async fn assert_judged_as_admin_secret(d: &Deployment, root: &str, admin: &str, allowed: bool) {
    for path in SAME_AS_ADMIN_SECRET {
        let answer = check(d, root, path).await;
        assert_eq!(answer.status, 200, "{}: {path}: {:?}", d.name, answer.body);
        let data: &Value = &answer.body["data"];
        assert_eq!(
            (data["allowed"].as_bool(), data["endpoint_id"].as_str()),
            (Some(allowed), Some(admin)),
            "{}: {path} is judged as /admin/secret: {data}",
            d.name
        );
    }
}

fn assert_ambiguous_refused(answer: &Answer, path: &str) {
    answer.assert_refused(400, 40002);
    assert!(
        answer.msg().starts_with("path:"),
        "{path}: the message names the field: {}",
        answer.msg()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_spelling_of_a_path_reaches_another_endpoints_grant() {
    for d in Deployment::all(&["--policy-refresh-ms", "100"]) {
        d.init().await;
        let (root, _) = d.tokens("root", ROOT_PASSWORD).await;
        let pat = d.create_user(&root, "pat", "pat password 1", &[]).await;
        let public = id(&endpoint(&d, &root, "*", "/public/*").await);
        let admin = id(&endpoint(&d, &root, "*", "/admin/secret").await);
        // A parameter endpoint pat holds: a case trick must not land here.
        let team = id(&endpoint(&d, &root, "*", "/{team}/secret").await);
        grant(&d, &root, &pat, &public).await;
        grant(&d, &root, &pat, &team).await;
        settle_allowed(&d, &root, "/public/page").await;
        settle_allowed(&d, &root, "/sales/secret").await;

        assert_judged_as_admin_secret(&d, &root, &admin, false).await;
        for path in AMBIGUOUS {
            assert_ambiguous_refused(&check(&d, &root, path).await, path);
        }

        // Once pat holds /admin/secret, each spelling of it is allowed.
        grant(&d, &root, &pat, &admin).await;
        settle_allowed(&d, &root, "/admin/secret").await;
        assert_judged_as_admin_secret(&d, &root, &admin, true).await;
        for path in AMBIGUOUS {
            assert_ambiguous_refused(&check(&d, &root, path).await, path);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_paths_are_normalised_when_registered() {
    let d = Deployment::all(&[]).remove(0);
    d.init().await;
    let (root, _) = d.tokens("root", ROOT_PASSWORD).await;
    let first = endpoint(&d, &root, "*", "/Admin/Secret").await;
    assert_eq!(
        first.body["data"]["path"], "/admin/secret",
        "{:?}",
        first.body
    );
    for same in [
        "/admin/secret/",
        "//admin//secret",
        "/ADMIN/secret",
        "/admin;v=2/secret",
        "/x/../admin/%73ecret",
    ] {
        let again = endpoint(&d, &root, "*", same).await;
        again.assert_refused(409, 40902);
    }
    let param = endpoint(&d, &root, "GET", "/Orders/{id}/").await;
    assert_eq!(
        param.body["data"]["path"], "/orders/{id}",
        "{:?}",
        param.body
    );
    for bad in ["/a%2fb", "/a/../../b", "/a/%2e%2e%2f", "/a\\b"] {
        let answer = endpoint(&d, &root, "*", bad).await;
        answer.assert_refused(400, 40002);
        assert!(answer.msg().contains("path"), "{bad}: {}", answer.msg());
    }
    let listed = d.get("/api/access/endpoints", Some(&root)).await;
    assert_eq!(
        listed.body["data"].as_array().unwrap().len(),
        2,
        "nothing else registered: {:?}",
        listed.body
    );
}
