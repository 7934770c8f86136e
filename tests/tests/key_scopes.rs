//! Attacks with scoped API keys, against running servers (embedded store,
//! and two instances on Redis): a key confined to some permissions must not
//! reach its owner's other records, nor mint a key with more rights than it
//! holds, nor switch on a broader key.

use kxy_e2e::api::Answer;
use kxy_e2e::deploy::{Deployment, ROOT_PASSWORD};
use reqwest::Method;
use serde_json::{Value, json};

async fn with_key(
    d: &Deployment,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Answer {
    d.call(method, path, body, Some(key)).await
}

fn assert_refused(answer: &Answer, status: u16, what: &str) {
    assert_eq!(answer.status, status, "{what}: {:?}", answer.body);
}

/// The ids of root's keys, seen through root's login token.
async fn key_ids(d: &Deployment, token: &str) -> Vec<String> {
    let listed = d.get("/api/keys", Some(token)).await;
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_limited_to_allocation_reaches_nothing_else_of_its_owner() {
    for d in Deployment::all(&[]) {
        d.init().await;
        let (root, _) = d.tokens("root", ROOT_PASSWORD).await;
        let (allocator_id, allocator) = d
            .create_key(
                &root,
                json!({"name": "allocator", "permissions": ["segments:allocate"]}),
            )
            .await;
        let before = key_ids(&d, &root).await;

        // The attack of the review: a scoped key asks for an unscoped one.
        let minted = with_key(
            &d,
            &allocator,
            Method::POST,
            "/api/keys",
            Some(json!({"name": "escalate"})),
        )
        .await;
        assert_refused(&minted, 403, "create a key");
        assert!(minted.msg().contains("keys:write"), "{}", minted.msg());
        let minted = with_key(
            &d,
            &allocator,
            Method::POST,
            "/api/keys",
            Some(json!({"name": "escalate", "permissions": ["users:read"]})),
        )
        .await;
        assert_refused(&minted, 403, "create a key naming more rights");
        assert_eq!(
            key_ids(&d, &root).await,
            before,
            "{}: no key was made",
            d.name
        );

        // Its owner's self-service routes are closed to it too.
        let path = format!("/api/keys/{allocator_id}");
        for (method, path, body) in [
            (Method::GET, "/api/keys", None),
            (
                Method::PATCH,
                path.as_str(),
                Some(json!({"name": "renamed"})),
            ),
            (Method::DELETE, path.as_str(), None),
            (Method::GET, "/api/credentials", None),
            (
                Method::POST,
                "/api/credentials",
                Some(
                    json!({"name": "n", "model_id": "m", "base_url": "https://x", "api_key": "k"}),
                ),
            ),
            (Method::GET, "/api/users", None),
        ] {
            let answer = with_key(&d, &allocator, method.clone(), path, body).await;
            assert_refused(&answer, 403, &format!("{}: {method} {path}", d.name));
            assert_eq!(answer.code(), 40301, "{:?}", answer.body);
        }
        assert_eq!(
            key_ids(&d, &root).await,
            before,
            "{}: nothing renamed or deleted",
            d.name
        );

        // An unscoped key acts as its owner, self-service included.
        let (_, full) = d.create_key(&root, json!({"name": "full"})).await;
        let listed = with_key(&d, &full, Method::GET, "/api/keys", None).await;
        assert_eq!(listed.status, 200, "{}: {:?}", d.name, listed.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_may_manage_keys_mints_only_within_its_scope() {
    for d in Deployment::all(&[]) {
        d.init().await;
        let (root, _) = d.tokens("root", ROOT_PASSWORD).await;
        let (_, manager) = d
            .create_key(
                &root,
                json!({"name": "manager", "permissions": ["keys:read", "keys:write", "segments:allocate"]}),
            )
            .await;
        let before = key_ids(&d, &root).await;

        // Not an unscoped key (it would hold all of root's rights)...
        let wide = with_key(
            &d,
            &manager,
            Method::POST,
            "/api/keys",
            Some(json!({"name": "wide"})),
        )
        .await;
        assert_refused(&wide, 400, "an unscoped key from a scoped one");
        assert!(wide.msg().contains("permissions"), "{}", wide.msg());
        // ...nor one naming a right the manager lacks...
        let admin_key = with_key(
            &d,
            &manager,
            Method::POST,
            "/api/keys",
            Some(json!({"name": "admin", "permissions": ["users:write"]})),
        )
        .await;
        assert_refused(&admin_key, 400, "a key with users:write");
        assert_eq!(
            key_ids(&d, &root).await,
            before,
            "{}: no key was made",
            d.name
        );

        // ...but a narrower one, which then holds only that.
        let narrow = with_key(
            &d,
            &manager,
            Method::POST,
            "/api/keys",
            Some(json!({"name": "narrow", "permissions": ["segments:allocate"]})),
        )
        .await;
        assert_eq!(narrow.status, 200, "{}: {:?}", d.name, narrow.body);
        let narrow = narrow.body["data"]["secret"].as_str().unwrap().to_owned();
        let users = with_key(&d, &narrow, Method::GET, "/api/users", None).await;
        assert_refused(&users, 403, "the narrow key lists users");

        // A broader key that root disabled cannot be switched on by it.
        let (full_id, _) = d.create_key(&root, json!({"name": "full"})).await;
        let path = format!("/api/keys/{full_id}");
        let off = d
            .call(
                Method::PATCH,
                &path,
                Some(json!({"status": "disabled"})),
                Some(&root),
            )
            .await;
        assert_eq!(off.status, 200, "{:?}", off.body);
        let on = with_key(
            &d,
            &manager,
            Method::PATCH,
            &path,
            Some(json!({"status": "active"})),
        )
        .await;
        assert_refused(&on, 403, "re-enable a broader key");
        let listed = d.get("/api/keys", Some(&root)).await;
        let full = listed.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == full_id.as_str())
            .unwrap()
            .clone();
        assert_eq!(full["status"], "disabled", "{}: {full}", d.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_without_roles_can_scope_a_key_to_self_service() {
    for d in Deployment::all(&[]) {
        d.init().await;
        let (root, _) = d.tokens("root", ROOT_PASSWORD).await;
        d.create_user(&root, "bob", "bob password 1", &[]).await;
        let (bob, _) = d.tokens("bob", "bob password 1").await;
        let (_, reader) = d
            .create_key(
                &bob,
                json!({"name": "reader", "permissions": ["keys:read"]}),
            )
            .await;
        let listed = with_key(&d, &reader, Method::GET, "/api/keys", None).await;
        assert_eq!(listed.status, 200, "{}: {:?}", d.name, listed.body);
        let minted = with_key(
            &d,
            &reader,
            Method::POST,
            "/api/keys",
            Some(json!({"name": "x", "permissions": ["keys:read"]})),
        )
        .await;
        assert_refused(&minted, 403, "mint with keys:read only");
        // Roles still bound what a key can be given.
        let refused = d
            .post(
                "/api/keys",
                json!({"name": "y", "permissions": ["users:read"]}),
                Some(&bob),
            )
            .await;
        assert_refused(&refused, 400, "bob names a right he lacks");
    }
}
