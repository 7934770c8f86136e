//! Stored credentials over HTTP: confined to their owner, masked, sealed at
//! rest, bound to their record, and readable across a master-key rotation.

use kxy_e2e::deploy::{Deployment, ROOT_PASSWORD, contains};
use kxy_e2e::redis_env::{KeyPrefix, shared_redis};
use kxy_e2e::server::{ServerProcess, run_cli};
use reqwest::Method;
use serde_json::{Value, json};

const K1: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
const K2: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const LONG_KEY: &str = "sk-upstream-0123456789abcdefXYZ";

fn credential(api_key: &str) -> Value {
    json!({"name": "gpt", "model_id": "gpt-4o", "base_url": "https://api.example.com/v1", "api_key": api_key, "config": {"org": "x"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_confined_to_their_owner_masked_and_sealed() {
    for d in Deployment::all(&["--master-key", K1]) {
        d.init().await;
        let admin = d.tokens("root", ROOT_PASSWORD).await.0;
        let alice_id = d
            .create_user(&admin, "alice", "alice password 1", &[])
            .await;
        d.create_user(&admin, "bob", "bob password 12", &[]).await;
        // A trusted service's account that may read plaintext: its own.
        let revealer = d
            .post(
                "/api/roles",
                json!({"name": "revealer", "permissions": ["credentials:reveal"]}),
                Some(&admin),
            )
            .await;
        assert_eq!(revealer.status, 200, "{:?}", revealer.body);
        d.create_user(&admin, "carol", "carol password 1", &["revealer"])
            .await;
        let carol = d.tokens("carol", "carol password 1").await.0;
        let alice = d.tokens("alice", "alice password 1").await.0;
        let bob = d.tokens("bob", "bob password 12").await.0;

        // Every length class of the seed's masking rule.
        let cases = [
            ("", ""),
            ("abc", "***"),
            ("12345678", "********"),
            ("123456789", "1234*6789"),
            (LONG_KEY, "sk-u***********************fXYZ"),
        ];
        let mut ids = Vec::new();
        for (plain, masked) in cases {
            let answer = d
                .post("/api/credentials", credential(plain), Some(&alice))
                .await;
            assert_eq!(answer.status, 200, "{}: {:?}", d.name, answer.body);
            assert_eq!(answer.body["data"]["api_key_masked"], masked, "{}", d.name);
            assert!(answer.body["data"].get("api_key").is_none());
            ids.push(answer.body["data"]["id"].as_str().unwrap().to_owned());
        }
        let long_id = ids[4].clone();
        let listed = d.get("/api/credentials", Some(&alice)).await;
        assert_eq!(listed.body["data"].as_array().unwrap().len(), 5);
        assert!(!listed.body.to_string().contains(LONG_KEY));

        // Bob sees nothing of Alice's: not found, for every operation.
        let path = format!("/api/credentials/{long_id}");
        assert_eq!(
            d.get("/api/credentials", Some(&bob)).await.body["data"],
            json!([])
        );
        for (method, body) in [
            (Method::GET, None),
            (Method::PUT, Some(json!({"name": "mine"}))),
            (Method::DELETE, None),
        ] {
            let answer = d.call(method.clone(), &path, body, Some(&bob)).await;
            assert_eq!(
                (answer.status, answer.code()),
                (404, 40402),
                "{}: bob {method}",
                d.name
            );
        }

        // An update without a key keeps it; with one, replaces it.
        let renamed = d
            .call(
                Method::PUT,
                &path,
                Some(json!({"name": "renamed"})),
                Some(&alice),
            )
            .await;
        assert_eq!(renamed.body["data"]["name"], "renamed");
        let reveal = |token: String| {
            let (d, path) = (&d, format!("{path}/secret"));
            async move { d.get(&path, Some(&token)).await }
        };
        // Reading the plaintext needs credentials:reveal, which Alice lacks
        // yet; and it is confined to the reader's own records, so neither a
        // service holding it nor the admin reads Alice's.
        let refused = reveal(alice.clone()).await;
        assert_eq!(
            (refused.status, refused.msg()),
            (403, "missing permission credentials:reveal")
        );
        for other in [carol.clone(), admin.clone()] {
            let answer = reveal(other).await;
            assert_eq!(
                (answer.status, answer.code()),
                (404, 40402),
                "{}: {:?}",
                d.name,
                answer.body
            );
        }
        let granted = d
            .call(
                Method::PUT,
                &format!("/api/users/{alice_id}"),
                Some(json!({"roles": ["revealer"]})),
                Some(&admin),
            )
            .await;
        assert_eq!(granted.status, 200, "{:?}", granted.body);
        assert_eq!(
            reveal(alice.clone()).await.body["data"]["api_key"],
            LONG_KEY,
            "{}",
            d.name
        );
        let replaced = d
            .call(
                Method::PUT,
                &path,
                Some(json!({"api_key": "new-upstream-key-42"})),
                Some(&alice),
            )
            .await;
        assert_eq!(
            replaced.body["data"]["api_key_masked"],
            "new-***********y-42"
        );
        assert_eq!(
            reveal(alice.clone()).await.body["data"]["api_key"],
            "new-upstream-key-42"
        );

        let raw = d.raw_store();
        for plain in [LONG_KEY, "new-upstream-key-42", "123456789"] {
            assert!(
                !contains(&raw, plain),
                "{}: the store holds {plain:?} in plaintext",
                d.name
            );
        }
        assert!(
            contains(&raw, "new-***********y-42"),
            "{}: the raw read sees the records",
            d.name
        );

        for bad in [
            json!({"api_key": "k"}),
            json!({"model_id": "m", "api_key": "k", "config": [1]}),
            json!({"model_id": "m", "api_key": "k", "base_url": "ftp://x"}),
        ] {
            assert_eq!(
                d.post("/api/credentials", bad, Some(&alice)).await.status,
                400,
                "{}",
                d.name
            );
        }
        assert_eq!(
            d.call(Method::DELETE, &path, None, Some(&alice))
                .await
                .status,
            200
        );
        assert_eq!(d.get(&path, Some(&alice)).await.status, 404);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_master_key_no_secret_is_stored() {
    let d = Deployment::all(&[]).remove(0);
    d.init().await;
    let admin = d.tokens("root", ROOT_PASSWORD).await.0;
    let answer = d
        .post("/api/credentials", credential(LONG_KEY), Some(&admin))
        .await;
    assert_eq!((answer.status, answer.code()), (503, 50302));
    assert!(
        answer.msg().contains("--master-key") && answer.msg().contains("kxy-server keygen"),
        "{}",
        answer.msg()
    );
    assert!(!contains(&d.raw_store(), LONG_KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ciphertext_moved_to_another_record_does_not_decrypt() {
    let Some(url) = shared_redis() else { return };
    let prefix = KeyPrefix::new(&url, "moved");
    let server = ServerProcess::start(
        &[prefix.store_args(), vec!["--master-key", K1]].concat(),
        &[],
    );
    let d = Deployment::new("redis", vec![server], None, None);
    d.init().await;
    let admin = d.tokens("root", ROOT_PASSWORD).await.0;
    let a = d
        .post(
            "/api/credentials",
            credential("secret of record a"),
            Some(&admin),
        )
        .await
        .body["data"]["id"]
        .clone();
    let b = d
        .post(
            "/api/credentials",
            credential("secret of record b"),
            Some(&admin),
        )
        .await
        .body["data"]["id"]
        .clone();
    let (a, b) = (
        a.as_str().unwrap().to_owned(),
        b.as_str().unwrap().to_owned(),
    );

    // Copy A's sealed key into B, straight in the store.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut redis = client.get_connection().unwrap();
    let hash = format!("{}:rec:credentials", prefix.as_str());
    let field = |id: &str, redis: &mut redis::Connection| -> (String, Value) {
        let raw: String = redis::cmd("HGET").arg(&hash).arg(id).query(redis).unwrap();
        let (version, json) = raw.split_once(':').unwrap();
        (version.to_owned(), serde_json::from_str(json).unwrap())
    };
    let (_, record_a) = field(&a, &mut redis);
    let (version_b, mut record_b) = field(&b, &mut redis);
    record_b["api_key"] = record_a["api_key"].clone();
    let _: () = redis::cmd("HSET")
        .arg(&hash)
        .arg(&b)
        .arg(format!("{version_b}:{record_b}"))
        .query(&mut redis)
        .unwrap();

    let moved = d
        .get(&format!("/api/credentials/{b}/secret"), Some(&admin))
        .await;
    assert_eq!(
        (moved.status, moved.code()),
        (500, 50002),
        "{:?}",
        moved.body
    );
    assert!(
        moved.msg().contains("belongs to another record"),
        "{}",
        moved.msg()
    );
    assert!(!moved.body.to_string().contains("secret of record a"));
    let intact = d
        .get(&format!("/api/credentials/{a}/secret"), Some(&admin))
        .await;
    assert_eq!(intact.body["data"]["api_key"], "secret of record a");
}

/// Runs `kxy-server credentials rotate` on the store `store`; returns stdout.
fn rotate(store: &[&str]) -> String {
    let mut args = store.to_vec();
    args.extend([
        "--master-key",
        K2,
        "--previous-master-keys",
        K1,
        "credentials",
        "rotate",
    ]);
    let out = run_cli(&args, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_master_key_keeps_every_record_readable() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_owned();
    let prefix = shared_redis().map(|url| KeyPrefix::new(&url, "rotate"));
    let mut stores: Vec<Vec<String>> = vec![vec!["--data-dir".into(), data_dir]];
    if let Some(prefix) = &prefix {
        stores.push(prefix.store_args().into_iter().map(String::from).collect());
    }
    for store in stores {
        let store: Vec<&str> = store.iter().map(String::as_str).collect();
        let start = |keys: &[&str]| {
            let mut args = store.clone();
            args.extend_from_slice(keys);
            Deployment::new(
                "rotation",
                vec![ServerProcess::start(&args, &[])],
                None,
                None,
            )
        };
        let secrets = [
            "first upstream key",
            "second upstream key",
            "third upstream key",
        ];
        let d = start(&["--master-key", K1]);
        d.init().await;
        let admin = d.tokens("root", ROOT_PASSWORD).await.0;
        let mut ids = Vec::new();
        for secret in secrets {
            let answer = d
                .post("/api/credentials", credential(secret), Some(&admin))
                .await;
            ids.push(answer.body["data"]["id"].as_str().unwrap().to_owned());
        }
        d.servers.into_iter().for_each(ServerProcess::kill);

        // The new key alone cannot read what the old one sealed, and says why.
        let d = start(&["--master-key", K2]);
        let admin = d.tokens("root", ROOT_PASSWORD).await.0;
        let unreadable = d
            .get(&format!("/api/credentials/{}/secret", ids[0]), Some(&admin))
            .await;
        assert_eq!(unreadable.status, 500, "{:?}", unreadable.body);
        assert!(
            unreadable.msg().contains("--previous-master-keys"),
            "{}",
            unreadable.msg()
        );
        d.servers.into_iter().for_each(ServerProcess::kill);

        assert!(
            rotate(&store).starts_with("re-sealed 3 credentials under master key"),
            "{store:?}"
        );
        assert!(
            rotate(&store).contains("re-sealed 0 credentials"),
            "a second run has nothing to do"
        );

        let d = start(&["--master-key", K2]);
        let admin = d.tokens("root", ROOT_PASSWORD).await.0;
        for (id, secret) in ids.iter().zip(secrets) {
            let answer = d
                .get(&format!("/api/credentials/{id}/secret"), Some(&admin))
                .await;
            assert_eq!(answer.body["data"]["api_key"], secret, "{store:?}");
        }
    }
}
