//! Revocations must take effect everywhere the moment they return, against
//! running servers (embedded store, and two instances on Redis): a deleted
//! role grants nothing (not even to a new role of the same name), a grant
//! ends at its expiry, a disabled or deleted API key is refused by every
//! instance, and parallel key creations cannot beat the per-user quota.
//!
//! Each check after a change asks every instance once, without retrying:
//! "eventually" is what these attacks exploited.

use std::time::Duration;

use kxy_e2e::api::Answer;
use kxy_e2e::deploy::{Deployment, ROOT_PASSWORD, unix_now};
use reqwest::Method;
use serde_json::{Value, json};

/// root's token after init, a role `ops`, user alice in it, and an endpoint
/// `/orders/{id}`; returns (root token, alice's id, endpoint id).
async fn setup(d: &Deployment) -> (String, String, String) {
    d.init().await;
    let (root, _) = d.tokens("root", ROOT_PASSWORD).await;
    let role = d
        .post(
            "/api/roles",
            json!({"name": "ops", "permissions": ["counters:read"]}),
            Some(&root),
        )
        .await;
    assert_eq!(role.status, 200, "{:?}", role.body);
    let alice = d
        .create_user(&root, "alice", "alice password 1", &["ops"])
        .await;
    let endpoint = d
        .post(
            "/api/access/endpoints",
            json!({"method": "*", "path": "/orders/{id}"}),
            Some(&root),
        )
        .await;
    assert_eq!(endpoint.status, 200, "{:?}", endpoint.body);
    let endpoint = endpoint.body["data"]["id"].as_str().unwrap().to_owned();
    (root, alice, endpoint)
}

/// Instance `i`'s decision on alice writing an order.
async fn alice_may_write(d: &Deployment, i: usize, root: &str) -> Value {
    let answer = d
        .call_on(
            i,
            Method::POST,
            "/api/access/check",
            Some(json!({"subject": "alice", "method": "PUT", "path": "/orders/42"})),
            Some(root),
        )
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    answer.body["data"].clone()
}

fn grant(d: &Deployment, root: &str, body: Value) -> impl Future<Output = Answer> {
    d.call(Method::POST, "/api/access/grants", Some(body), Some(root))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_role_stops_granting_on_every_instance_at_once() {
    for d in Deployment::all(&[]) {
        let (root, alice, endpoint) = setup(&d).await;
        let granted = grant(
            &d,
            &root,
            json!({"subject": {"type": "role", "id": "ops"}, "endpoint_id": endpoint, "level": "write"}),
        )
        .await;
        assert_eq!(granted.status, 200, "{:?}", granted.body);
        for i in 0..d.servers.len() {
            let before = alice_may_write(&d, i, &root).await;
            assert_eq!(before["allowed"], true, "{} #{i}: {before}", d.name);
        }

        let deleted = d
            .call_on(0, Method::DELETE, "/api/roles/ops", None, Some(&root))
            .await;
        assert_eq!(deleted.status, 200, "{:?}", deleted.body);
        for i in 0..d.servers.len() {
            let after = alice_may_write(&d, i, &root).await;
            assert_eq!(after["allowed"], false, "{} #{i}: {after}", d.name);
        }

        // A new role under the old name starts empty: no members, no grants.
        let again = d
            .post(
                "/api/roles",
                json!({"name": "ops", "permissions": ["counters:read"]}),
                Some(&root),
            )
            .await;
        assert_eq!(again.status, 200, "{:?}", again.body);
        let user = d.get(&format!("/api/users/{alice}"), Some(&root)).await;
        assert_eq!(user.body["data"]["roles"], json!([]), "{}", d.name);
        for i in 0..d.servers.len() {
            let revived = alice_may_write(&d, i, &root).await;
            assert_eq!(revived["allowed"], false, "{} #{i}: {revived}", d.name);
        }
        let grants = d.get("/api/access/grants", Some(&root)).await;
        assert_eq!(grants.body["data"], json!([]), "{}", d.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_ends_at_its_expiry_on_every_instance() {
    for d in Deployment::all(&[]) {
        let (root, alice, endpoint) = setup(&d).await;
        let expires_at = unix_now() + 2;
        let granted = grant(
            &d,
            &root,
            json!({"subject": {"type": "user", "id": alice}, "endpoint_id": endpoint, "level": "write", "expires_at": expires_at}),
        )
        .await;
        assert_eq!(granted.status, 200, "{:?}", granted.body);
        for i in 0..d.servers.len() {
            assert_eq!(alice_may_write(&d, i, &root).await["allowed"], true);
        }
        while unix_now() <= expires_at {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for i in 0..d.servers.len() {
            let after = alice_may_write(&d, i, &root).await;
            assert_eq!(after["allowed"], false, "{} #{i}: {after}", d.name);
        }
    }
}

/// Whether instance `i` accepts `key`.
async fn accepted(d: &Deployment, i: usize, key: &str) -> bool {
    let answer = d
        .call_on(i, Method::GET, "/api/users/me", None, Some(key))
        .await;
    match answer.status {
        200 => true,
        401 => false,
        other => panic!("unexpected {other}: {:?}", answer.body),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_is_refused_by_every_instance_once_the_revoke_returns() {
    for d in Deployment::all(&[]) {
        d.init().await;
        let (root, _) = d.tokens("root", ROOT_PASSWORD).await;
        let instances = d.servers.len();
        for round in 0..6 {
            let (id, key) = d
                .create_key(&root, json!({"name": format!("round {round}")}))
                .await;
            // Every instance has just verified (and cached) the key.
            for i in 0..instances {
                assert!(accepted(&d, i, &key).await, "{} #{i}", d.name);
            }
            let revoker = round % instances;
            let revoke = if round % 2 == 0 {
                d.call_on(
                    revoker,
                    Method::PATCH,
                    &format!("/api/keys/{id}"),
                    Some(json!({"status": "disabled"})),
                    Some(&root),
                )
                .await
            } else {
                d.call_on(
                    revoker,
                    Method::DELETE,
                    &format!("/api/keys/{id}"),
                    None,
                    Some(&root),
                )
                .await
            };
            assert_eq!(revoke.status, 200, "{:?}", revoke.body);
            for i in 0..instances {
                assert!(
                    !accepted(&d, i, &key).await,
                    "{}: instance #{i} accepted a key revoked on #{revoker} (round {round})",
                    d.name
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deactivated_owners_keys_stop_on_every_instance_at_once() {
    for d in Deployment::all(&[]) {
        d.init().await;
        let (root, _) = d.tokens("root", ROOT_PASSWORD).await;
        let bob_id = d.create_user(&root, "bob", "bob password 1", &[]).await;
        let (bob, _) = d.tokens("bob", "bob password 1").await;
        let (_, key) = d.create_key(&bob, json!({"name": "bob's"})).await;
        for i in 0..d.servers.len() {
            assert!(accepted(&d, i, &key).await, "{} #{i}", d.name);
        }
        let off = d
            .call_on(
                0,
                Method::PUT,
                &format!("/api/users/{bob_id}"),
                Some(json!({"active": false})),
                Some(&root),
            )
            .await;
        assert_eq!(off.status, 200, "{:?}", off.body);
        for i in 0..d.servers.len() {
            assert!(!accepted(&d, i, &key).await, "{} #{i}", d.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_creates_never_make_a_sixth_active_key() {
    for d in Deployment::all(&[]) {
        d.init().await;
        let (root, _) = d.tokens("root", ROOT_PASSWORD).await;
        d.create_user(&root, "carol", "carol password 1", &[]).await;
        let (carol, _) = d.tokens("carol", "carol password 1").await;
        for round in 0..3 {
            let creates = (0..16).map(|n| {
                d.call_on(
                    n % d.servers.len(),
                    Method::POST,
                    "/api/keys",
                    Some(json!({"name": format!("k{round}-{n}")})),
                    Some(&carol),
                )
            });
            let answers = futures::future::join_all(creates).await;
            let made: Vec<&Answer> = answers.iter().filter(|a| a.status == 200).collect();
            for refused in answers.iter().filter(|a| a.status != 200) {
                assert_eq!(refused.status, 409, "{:?}", refused.body);
            }
            let listed = d.get("/api/keys", Some(&carol)).await;
            let active = listed.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|k| k["status"] == "active")
                .count();
            assert_eq!((made.len(), active), (5, 5), "{} round {round}", d.name);
            for key in listed.body["data"].as_array().unwrap() {
                let id = key["id"].as_str().unwrap();
                let gone = d
                    .call(
                        Method::DELETE,
                        &format!("/api/keys/{id}"),
                        None,
                        Some(&carol),
                    )
                    .await;
                assert_eq!(gone.status, 200, "{:?}", gone.body);
            }
        }
    }
}
