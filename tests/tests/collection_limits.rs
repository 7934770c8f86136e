//! Unbounded collections, against running servers (embedded store, and two
//! instances on Redis): one user filling the store with stored credentials,
//! or one user or role piling up endpoint grants. Each is refused past its
//! limit with a 409 naming it, also when the creates race each other across
//! instances, and a deleted entry frees its place.

use kxy_e2e::api::{Answer, request};
use kxy_e2e::deploy::{Deployment, ROOT_PASSWORD};
use kxy_e2e::server::start_refused;
use reqwest::Method;
use serde_json::{Value, json};

const K1: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";

fn credential(n: usize) -> Value {
    json!({"name": format!("c{n}"), "model_id": "m", "api_key": format!("sk-{n:08}")})
}

fn count(answer: &Answer) -> usize {
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    answer.body["data"].as_array().unwrap().len()
}

/// Sends `bodies` to `path` all at once, spread over every instance; returns
/// the answers.
async fn race(d: &Deployment, token: &str, path: &str, bodies: Vec<Value>) -> Vec<Answer> {
    let urls: Vec<String> = d.servers.iter().map(|s| s.base_url().to_owned()).collect();
    let tasks: Vec<_> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| {
            let (url, token) = (format!("{}{path}", urls[i % urls.len()]), token.to_owned());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                request(&http, Method::POST, &url, Some(&body), Some(&token))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

fn assert_limit(answer: &Answer, limit: &str, flag: &str) {
    answer.assert_refused(409, 40902);
    assert!(
        answer.msg().contains(limit) && answer.msg().contains(flag),
        "the refusal names the limit: {}",
        answer.msg()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_credentials_per_user_are_bounded() {
    for d in Deployment::all(&["--master-key", K1, "--max-credentials", "3"]) {
        d.init().await;
        let (root, _) = d.tokens("root", ROOT_PASSWORD).await;
        d.create_user(&root, "alice", "alice password 1", &[]).await;
        let alice = d.tokens("alice", "alice password 1").await.0;
        let mut ids = Vec::new();
        for n in 0..3 {
            let made = d
                .post("/api/credentials", credential(n), Some(&alice))
                .await;
            assert_eq!(made.status, 200, "{}: {:?}", d.name, made.body);
            ids.push(made.body["data"]["id"].as_str().unwrap().to_owned());
        }
        let over = d
            .post("/api/credentials", credential(3), Some(&alice))
            .await;
        assert_limit(&over, "3", "--max-credentials");
        assert_eq!(count(&d.get("/api/credentials", Some(&alice)).await), 3);

        // The limit is per user: root still has room.
        let root_own = d.post("/api/credentials", credential(9), Some(&root)).await;
        assert_eq!(root_own.status, 200, "{:?}", root_own.body);

        // Deleting one frees its place, for one more.
        let deleted = d
            .call(
                Method::DELETE,
                &format!("/api/credentials/{}", ids[0]),
                None,
                Some(&alice),
            )
            .await;
        assert_eq!(deleted.status, 200, "{:?}", deleted.body);
        let again = d
            .post("/api/credentials", credential(4), Some(&alice))
            .await;
        assert_eq!(again.status, 200, "{}: {:?}", d.name, again.body);
        let over = d
            .post("/api/credentials", credential(5), Some(&alice))
            .await;
        assert_limit(&over, "3", "--max-credentials");

        // Racing creates across instances: still no more than the limit.
        d.create_user(&root, "bob", "bob password 12", &[]).await;
        let bob = d.tokens("bob", "bob password 12").await.0;
        let answers = race(
            &d,
            &bob,
            "/api/credentials",
            (0..12).map(credential).collect(),
        )
        .await;
        let made = answers.iter().filter(|a| a.status == 200).count();
        for refused in answers.iter().filter(|a| a.status != 200) {
            assert_limit(refused, "3", "--max-credentials");
        }
        assert_eq!(made, 3, "{}: {answers:?}", d.name);
        assert_eq!(count(&d.get("/api/credentials", Some(&bob)).await), 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_credential_limit_is_one_hundred() {
    let d = Deployment::all(&["--master-key", K1]).remove(0);
    d.init().await;
    let (root, _) = d.tokens("root", ROOT_PASSWORD).await;
    for n in 0..100 {
        let made = d.post("/api/credentials", credential(n), Some(&root)).await;
        assert_eq!(made.status, 200, "{n}: {:?}", made.body);
    }
    let over = d
        .post("/api/credentials", credential(100), Some(&root))
        .await;
    assert_limit(&over, "100", "--max-credentials");
    assert_eq!(count(&d.get("/api/credentials", Some(&root)).await), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_grants_per_subject_are_bounded() {
    for d in Deployment::all(&["--max-grants-per-subject", "3"]) {
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
        let pat = d.create_user(&root, "pat", "pat password 1", &[]).await;
        let endpoint = d
            .post(
                "/api/access/endpoints",
                json!({"method": "*", "path": "/orders/{id}"}),
                Some(&root),
            )
            .await;
        assert_eq!(endpoint.status, 200, "{:?}", endpoint.body);
        let endpoint = endpoint.body["data"]["id"].as_str().unwrap().to_owned();
        let grant =
            |subject: Value| json!({"subject": subject, "endpoint_id": endpoint, "level": "read"});
        let user = json!({"type": "user", "id": pat});
        let ops = json!({"type": "role", "id": "ops"});

        let mut first = None;
        for _ in 0..3 {
            let made = d
                .post("/api/access/grants", grant(user.clone()), Some(&root))
                .await;
            assert_eq!(made.status, 200, "{}: {:?}", d.name, made.body);
            first.get_or_insert(made.body["data"]["id"].as_str().unwrap().to_owned());
        }
        let over = d
            .post("/api/access/grants", grant(user.clone()), Some(&root))
            .await;
        assert_limit(&over, "3", "--max-grants-per-subject");

        // A deleted grant frees its place.
        let path = format!("/api/access/grants/{}", first.unwrap());
        let deleted = d.call(Method::DELETE, &path, None, Some(&root)).await;
        assert_eq!(deleted.status, 200, "{:?}", deleted.body);
        let again = d
            .post("/api/access/grants", grant(user.clone()), Some(&root))
            .await;
        assert_eq!(again.status, 200, "{}: {:?}", d.name, again.body);

        // A role, granted by racing requests across instances.
        let answers = race(
            &d,
            &root,
            "/api/access/grants",
            vec![grant(ops.clone()); 10],
        )
        .await;
        let made = answers.iter().filter(|a| a.status == 200).count();
        for refused in answers.iter().filter(|a| a.status != 200) {
            assert_limit(refused, "3", "--max-grants-per-subject");
        }
        assert_eq!(made, 3, "{}: {answers:?}", d.name);
        assert_eq!(count(&d.get("/api/access/grants", Some(&root)).await), 6);
    }
}

#[test]
fn a_zero_limit_is_refused_at_start() {
    for flag in ["--max-credentials", "--max-grants-per-subject"] {
        let dir = tempfile::tempdir().unwrap();
        let stderr = start_refused(&["--data-dir", dir.path().to_str().unwrap(), flag, "0"]);
        assert!(
            stderr.contains(&format!("{flag} must be at least 1")),
            "{flag}: {stderr}"
        );
    }
}
