//! Identity over HTTP against the server binary, on the embedded store and
//! on Redis with two instances (requests alternate between them, so what
//! one instance does must hold on the other).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use kxy_e2e::api::Answer;
use kxy_e2e::deploy::{Deployment, ROOT_PASSWORD, pair, unix_now};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_login_refresh_logout() {
    for d in Deployment::all(&[]) {
        assert_eq!(
            d.get("/api/auth/check-init", None).await.body["data"]["initialized"],
            false
        );
        d.init().await;
        assert_eq!(
            d.get("/api/auth/check-init", None).await.body["data"]["initialized"],
            true
        );
        let again = d
            .post(
                "/api/auth/init-user",
                json!({"username": "x", "password": "other password 2"}),
                None,
            )
            .await;
        assert_eq!((again.status, again.code()), (409, 40903), "{}", d.name);

        let login = d.login("root", ROOT_PASSWORD).await;
        assert_eq!(login.body["data"]["token_type"], "Bearer");
        assert_eq!(login.body["data"]["expires_in"], 900);
        let (access, refresh) = pair(&login);
        let me = d.get("/api/users/me", Some(&access)).await;
        assert_eq!(
            (me.status, me.body["data"]["username"].as_str()),
            (200, Some("root")),
            "{}",
            d.name
        );
        assert_eq!(me.body["data"]["permissions"], json!(["*:*"]));

        let refreshed = d
            .post("/api/auth/refresh", json!({"refresh_token": refresh}), None)
            .await;
        assert_eq!(refreshed.status, 200, "{}: {:?}", d.name, refreshed.body);
        let (access2, refresh2) = pair(&refreshed);
        assert_ne!(refresh2, refresh);
        assert_eq!(d.get("/api/users/me", Some(&access2)).await.status, 200);

        let logout = d.post("/api/auth/logout", json!({}), Some(&access2)).await;
        assert_eq!(logout.status, 200, "{}", d.name);
        // Refused on every instance: the token, the older one of the same
        // login, and the session's refresh token.
        for token in [&access2, &access2, &access] {
            let answer = d.get("/api/users/me", Some(token)).await;
            assert_eq!(
                (answer.status, answer.code()),
                (401, 40102),
                "{}: {:?}",
                d.name,
                answer.body
            );
        }
        let answer = d
            .post(
                "/api/auth/refresh",
                json!({"refresh_token": refresh2}),
                None,
            )
            .await;
        assert_eq!(answer.status, 401, "{}", d.name);
        // A fresh login works.
        d.tokens("root", ROOT_PASSWORD).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reusing_a_refresh_token_revokes_the_whole_session() {
    for d in Deployment::all(&[]) {
        d.init().await;
        let (_, first) = d.tokens("root", ROOT_PASSWORD).await;
        let (access, second) = pair(
            &d.post("/api/auth/refresh", json!({"refresh_token": first}), None)
                .await,
        );
        // Someone replays the first refresh token.
        let replay = d
            .post("/api/auth/refresh", json!({"refresh_token": first}), None)
            .await;
        assert_eq!((replay.status, replay.code()), (401, 40102), "{}", d.name);
        assert!(replay.msg().contains("already used"), "{}", replay.msg());
        // Now nothing of that session works, including the legitimate copy.
        let answer = d
            .post("/api/auth/refresh", json!({"refresh_token": second}), None)
            .await;
        assert_eq!(answer.status, 401, "{}", d.name);
        assert_eq!(
            d.get("/api/users/me", Some(&access)).await.status,
            401,
            "{}",
            d.name
        );
        // Other logins are untouched.
        let (other, _) = d.tokens("root", ROOT_PASSWORD).await;
        assert_eq!(d.get("/api/users/me", Some(&other)).await.status, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_lock_the_account_until_unlocked() {
    for d in Deployment::all(&["--lockout-threshold", "3"]) {
        d.init().await;
        let (admin, _) = d.tokens("root", ROOT_PASSWORD).await;
        let bob = d
            .post(
                "/api/users",
                json!({"username": "bob", "password": "bobs password 1"}),
                Some(&admin),
            )
            .await;
        let bob_id = bob.body["data"]["id"].as_str().unwrap().to_owned();

        for _ in 0..2 {
            let answer = d.login("bob", "wrong password 1").await;
            assert_eq!((answer.status, answer.code()), (401, 40101), "{}", d.name);
        }
        let third = d.login("bob", "wrong password 1").await;
        assert_eq!(
            (third.status, third.code()),
            (429, 42901),
            "{}: {:?}",
            d.name,
            third.body
        );
        // Locked: even the right password is refused, on every instance.
        for _ in 0..2 {
            assert_eq!(
                d.login("bob", "bobs password 1").await.status,
                429,
                "{}",
                d.name
            );
        }
        let detail = d.get(&format!("/api/users/{bob_id}"), Some(&admin)).await;
        assert!(detail.body["data"]["locked_for"].as_u64().unwrap() > 0);

        let unlock = d
            .post(
                &format!("/api/users/{bob_id}/unlock"),
                json!({}),
                Some(&admin),
            )
            .await;
        assert_eq!(unlock.status, 200);
        d.tokens("bob", "bobs password 1").await;

        // A password reset unlocks too.
        for _ in 0..3 {
            d.login("bob", "wrong password 1").await;
        }
        assert_eq!(d.login("bob", "bobs password 1").await.status, 429);
        let reset = d
            .post(
                &format!("/api/users/{bob_id}/reset-password"),
                json!({"password": "new bob password 2"}),
                Some(&admin),
            )
            .await;
        assert_eq!(reset.status, 200, "{:?}", reset.body);
        assert_eq!(
            d.login("bob", "bobs password 1").await.status,
            401,
            "the old password is gone"
        );
        d.tokens("bob", "new bob password 2").await;

        // Unknown usernames answer exactly like wrong passwords.
        let unknown = d.login("nobody", "wrong password 1").await;
        assert_eq!(
            (unknown.status, unknown.msg()),
            (401, "invalid username or password")
        );
    }
}

/// Sets up an endpoint, a role `ops` holding admin on it, and user `alice`
/// in that role; returns (admin token, alice's id, endpoint id).
async fn grants_setup(d: &Deployment) -> (String, String, String) {
    d.init().await;
    let (admin, _) = d.tokens("root", ROOT_PASSWORD).await;
    let role = d
        .post(
            "/api/roles",
            json!({"name": "ops", "permissions": ["counters:read"]}),
            Some(&admin),
        )
        .await;
    assert_eq!(role.status, 200, "{:?}", role.body);
    let alice = d
        .post(
            "/api/users",
            json!({"username": "alice", "password": "alice password 1", "roles": ["ops"]}),
            Some(&admin),
        )
        .await;
    let endpoint = d
        .post(
            "/api/access/endpoints",
            json!({"method": "*", "path": "/orders/{id}"}),
            Some(&admin),
        )
        .await;
    assert_eq!(endpoint.status, 200, "{:?}", endpoint.body);
    (
        admin,
        alice.body["data"]["id"].as_str().unwrap().to_owned(),
        endpoint.body["data"]["id"].as_str().unwrap().to_owned(),
    )
}

/// Asks for a decision on the registered endpoint until it matches
/// `allowed` (another instance picks up a policy change within
/// --policy-refresh-ms) and returns it.
async fn decision(
    d: &Deployment,
    admin: &str,
    method: &str,
    allowed: bool,
    level: Option<&str>,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = d
            .post(
                "/api/access/check",
                json!({"subject": "alice", "method": method, "path": "/orders/42"}),
                Some(admin),
            )
            .await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        let data = answer.body["data"].clone();
        let settled = data["allowed"] == allowed
            && !data["endpoint_id"].is_null()
            && level.is_none_or(|level| data["level"] == level);
        if settled || Instant::now() > deadline {
            return data;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_grant_decides_before_role_grants() {
    for d in Deployment::all(&["--policy-refresh-ms", "100"]) {
        let (admin, alice, endpoint) = grants_setup(&d).await;
        let denied = decision(&d, &admin, "DELETE", false, None).await;
        assert_eq!(
            denied["reason"],
            "denied: no grant on this endpoint for the user or their roles"
        );

        let grant = |subject: Value, level: &str| json!({"subject": subject, "endpoint_id": endpoint, "level": level});
        let role_grant = d
            .post(
                "/api/access/grants",
                grant(json!({"type": "role", "id": "ops"}), "admin"),
                Some(&admin),
            )
            .await;
        assert_eq!(role_grant.status, 200, "{:?}", role_grant.body);
        let allowed = decision(&d, &admin, "DELETE", true, Some("admin")).await;
        assert_eq!(
            allowed["reason"], "allowed: role ops gives admin, write needed",
            "{}",
            d.name
        );

        // Her own read grant narrows her below the role.
        let own = d
            .post(
                "/api/access/grants",
                grant(json!({"type": "user", "id": alice}), "read"),
                Some(&admin),
            )
            .await;
        assert_eq!(own.status, 200);
        assert_eq!(
            own.body["data"]["granted_by"].as_str().unwrap().len(),
            32,
            "the granting admin is recorded"
        );
        let narrowed = decision(&d, &admin, "DELETE", false, Some("read")).await;
        assert_eq!(narrowed["level"], "read", "{}: {narrowed}", d.name);
        assert!(
            narrowed["reason"]
                .as_str()
                .unwrap()
                .contains("the user's own grant gives read")
        );
        assert_eq!(
            decision(&d, &admin, "GET", true, Some("read")).await["level"],
            "read"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_grant_is_refused_and_an_unexpired_one_allowed() {
    for d in Deployment::all(&["--policy-refresh-ms", "100"]) {
        let (admin, alice, endpoint) = grants_setup(&d).await;
        let expires_at = unix_now() + 2;
        let grant = json!({"subject": {"type": "user", "id": alice}, "endpoint_id": endpoint, "level": "write", "expires_at": expires_at});
        assert_eq!(
            d.post("/api/access/grants", grant, Some(&admin))
                .await
                .status,
            200
        );
        let unexpired = decision(&d, &admin, "PUT", true, Some("write")).await;
        assert_eq!(unexpired["level"], "write", "{}", d.name);

        tokio::time::sleep(Duration::from_secs(unix_now().abs_diff(expires_at) + 1)).await;
        let expired = decision(&d, &admin, "PUT", false, None).await;
        assert_eq!(
            expired["reason"], "denied: every grant on this endpoint has expired",
            "{}",
            d.name
        );

        let past = json!({"subject": {"type": "user", "id": alice}, "endpoint_id": endpoint, "level": "read", "expires_at": 1});
        assert_eq!(
            d.post("/api/access/grants", past, Some(&admin))
                .await
                .status,
            400
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_tokens_and_hashes_never_leak() {
    let d = Deployment::all(&[]).remove(0); // embedded, logging at debug
    let passwords = [
        ROOT_PASSWORD,
        "carol password 1",
        "carol password 2",
        "wrong password 9",
    ];
    let mut bodies: Vec<(String, String)> = Vec::new();
    let mut record =
        |what: &str, answer: &Answer| bodies.push((what.to_owned(), answer.body.to_string()));

    let init = d
        .post(
            "/api/auth/init-user",
            json!({"username": "root", "password": ROOT_PASSWORD}),
            None,
        )
        .await;
    record("init", &init);
    let login = d.login("root", ROOT_PASSWORD).await;
    let (admin, admin_refresh) = pair(&login);
    let carol = d
        .post(
            "/api/users",
            json!({"username": "carol", "password": passwords[1]}),
            Some(&admin),
        )
        .await;
    record("create user", &carol);
    let carol_id = carol.body["data"]["id"].as_str().unwrap().to_owned();
    record("wrong login", &d.login("carol", passwords[3]).await);
    let carol_login = d.login("carol", passwords[1]).await;
    let (carol_access, carol_refresh) = pair(&carol_login);
    let refreshed = d
        .post(
            "/api/auth/refresh",
            json!({"refresh_token": carol_refresh}),
            None,
        )
        .await;
    let (carol_access2, carol_refresh2) = pair(&refreshed);
    for path in [
        "/api/users",
        &format!("/api/users/{carol_id}"),
        "/api/users/me",
    ] {
        record(path, &d.get(path, Some(&admin)).await);
    }
    record("me", &d.get("/api/users/me", Some(&carol_access2)).await);
    let reset = d
        .post(
            &format!("/api/users/{carol_id}/reset-password"),
            json!({"password": passwords[2]}),
            Some(&admin),
        )
        .await;
    record("reset", &reset);
    record(
        "replay",
        &d.post(
            "/api/auth/refresh",
            json!({"refresh_token": carol_refresh}),
            None,
        )
        .await,
    );
    record(
        "logout",
        &d.post("/api/auth/logout", json!({}), Some(&carol_access2))
            .await,
    );
    record(
        "after logout",
        &d.get("/api/users/me", Some(&carol_access2)).await,
    );

    let secrets: Vec<&str> = passwords
        .iter()
        .copied()
        .chain([
            admin.as_str(),
            admin_refresh.as_str(),
            carol_access.as_str(),
            carol_access2.as_str(),
        ])
        .chain([carol_refresh.as_str(), carol_refresh2.as_str()])
        .collect();
    for (what, body) in &bodies {
        for secret in &secrets {
            assert!(
                !body.contains(secret),
                "{what} answer contains a secret: {body}"
            );
        }
        assert!(
            !body.contains("argon2") && !body.contains("password_hash"),
            "{what}: {body}"
        );
    }
    // The issuing answers carry their own tokens, and only those.
    assert!(refreshed.body.to_string().contains(&carol_refresh2));

    let logs = d.servers[0].logs();
    assert!(
        logs.contains("refresh token reused"),
        "the log is captured at debug level"
    );
    for secret in &secrets {
        assert!(!logs.contains(secret), "the server log contains a secret");
    }
    assert!(
        !logs.contains("argon2"),
        "the server log contains a password hash"
    );
    let distinct: HashSet<&str> = secrets.iter().copied().collect();
    assert_eq!(distinct.len(), secrets.len());
}
