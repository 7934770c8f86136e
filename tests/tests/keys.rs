//! API keys over HTTP, on the embedded store and on two Redis-backed
//! instances.

use std::time::{Duration, Instant};

use kxy_core::apikey::ApiKeySecret;
use kxy_e2e::api::{Answer, send};
use kxy_e2e::deploy::{Deployment, ROOT_PASSWORD, contains, unix_now};
use kxy_e2e::server::ServerProcess;
use reqwest::Method;
use serde_json::json;

async fn admin(d: &Deployment) -> String {
    d.init().await;
    d.tokens("root", ROOT_PASSWORD).await.0
}

/// GET /api/users/me with custom headers.
async fn me_with(d: &Deployment, headers: &[(&str, &str)]) -> Answer {
    let url = format!("{}/api/users/me", d.url());
    send(&reqwest::Client::new(), Method::GET, &url, None, headers)
        .await
        .unwrap()
}

async fn me_by_key(d: &Deployment, key: &str) -> Answer {
    me_with(d, &[("authorization", &format!("Bearer {key}"))]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_shown_once_and_stored_only_as_a_hash() {
    for d in Deployment::all(&[]) {
        let admin = admin(&d).await;
        let (id, secret) = d
            .create_key(&admin, json!({"name": "ci", "key_type": "local"}))
            .await;
        let parsed = ApiKeySecret::parse(&secret).expect("a well-formed key");
        assert_eq!(
            parsed.display_prefix(),
            format!(
                "sk-kxy-{}...{}",
                &secret[7..11],
                &secret[secret.len() - 4..]
            )
        );

        let listed = d.get("/api/keys", Some(&admin)).await;
        let text = listed.body.to_string();
        assert!(
            !text.contains(&secret) && !text.contains(&secret[7..40]),
            "{}: {text}",
            d.name
        );
        let key = &listed.body["data"][0];
        assert_eq!(
            (
                key["id"].as_str(),
                key["key_type"].as_str(),
                key["status"].as_str()
            ),
            (Some(id.as_str()), Some("local"), Some("active"))
        );
        assert_eq!(key["display_prefix"], parsed.display_prefix());
        assert!(key.get("secret").is_none() && key.get("hash").is_none());

        let me = me_by_key(&d, &secret).await;
        assert_eq!(
            (me.status, me.body["data"]["username"].as_str()),
            (200, Some("root")),
            "{}",
            d.name
        );

        let raw = d.raw_store();
        assert!(
            contains(&raw, &parsed.hash()),
            "{}: the store holds the key's hash",
            d.name
        );
        assert!(
            !contains(&raw, &secret[7..]),
            "{}: the store holds the key itself",
            d.name
        );
        assert!(
            !contains(&raw, &secret[7..31]),
            "{}: the store holds part of the key",
            d.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_five_active_keys_per_user() {
    for d in Deployment::all(&[]) {
        let admin = admin(&d).await;
        let mut ids = Vec::new();
        for n in 0..5 {
            ids.push(
                d.create_key(&admin, json!({"name": format!("key {n}")}))
                    .await
                    .0,
            );
        }
        let sixth = d
            .post("/api/keys", json!({"name": "sixth"}), Some(&admin))
            .await;
        assert_eq!((sixth.status, sixth.code()), (409, 40902), "{}", d.name);
        assert!(
            sixth.msg().contains("at most 5 active API keys"),
            "{}",
            sixth.msg()
        );

        let disabled = d
            .call(
                Method::PATCH,
                &format!("/api/keys/{}", ids[0]),
                Some(json!({"status": "disabled"})),
                Some(&admin),
            )
            .await;
        assert_eq!(disabled.body["data"]["status"], "disabled");
        d.create_key(&admin, json!({"name": "replacement"})).await;
        let again = d
            .call(
                Method::PATCH,
                &format!("/api/keys/{}", ids[0]),
                Some(json!({"status": "active"})),
                Some(&admin),
            )
            .await;
        assert_eq!(
            again.status, 409,
            "{}: re-enabling counts against the limit",
            d.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_expired_deleted_and_unknown_keys_are_refused_alike() {
    for d in Deployment::all(&["--policy-refresh-ms", "100"]) {
        let admin = admin(&d).await;
        let (disabled_id, disabled) = d.create_key(&admin, json!({"name": "to disable"})).await;
        let (_, expiring) = d
            .create_key(
                &admin,
                json!({"name": "short", "expires_at": unix_now() + 2}),
            )
            .await;
        let (deleted_id, deleted) = d.create_key(&admin, json!({"name": "to delete"})).await;
        for key in [&disabled, &expiring, &deleted] {
            assert_eq!(me_by_key(&d, key).await.status, 200, "{}", d.name);
        }
        d.call(
            Method::PATCH,
            &format!("/api/keys/{disabled_id}"),
            Some(json!({"status": "disabled"})),
            Some(&admin),
        )
        .await;
        let gone = d
            .call(
                Method::DELETE,
                &format!("/api/keys/{deleted_id}"),
                None,
                Some(&admin),
            )
            .await;
        assert_eq!(gone.status, 200);
        let unknown = ApiKeySecret::generate().expose().to_owned();
        let mut typo = disabled.clone().into_bytes();
        typo[30] = if typo[30] == b'a' { b'b' } else { b'a' };
        let typo = String::from_utf8(typo).unwrap();

        // Every instance refuses within the refresh bound, and the expired
        // key once its time has passed.
        let deadline = Instant::now() + Duration::from_secs(10);
        for key in [&disabled, &deleted, &unknown, &typo, &expiring] {
            loop {
                let answer = me_by_key(&d, key).await;
                if answer.status == 401 {
                    assert_eq!(answer.body["code"], 40102);
                    assert_eq!(
                        answer.msg(),
                        "invalid token: invalid API key",
                        "{}: the same answer",
                        d.name
                    );
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{}: key still accepted: {:?}",
                    d.name,
                    answer.body
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_work_as_a_bearer_token_or_as_an_id_and_secret_pair() {
    for d in Deployment::all(&[]) {
        let admin = admin(&d).await;
        let (id, secret) = d.create_key(&admin, json!({"name": "pair"})).await;
        let (other_id, _) = d.create_key(&admin, json!({"name": "other"})).await;
        assert_eq!(
            me_with(&d, &[("x-api-key", &id), ("x-api-secret", &secret)])
                .await
                .status,
            200,
            "{}",
            d.name
        );
        assert_eq!(
            me_with(&d, &[("x-api-key", &other_id), ("x-api-secret", &secret)])
                .await
                .status,
            401
        );
        assert_eq!(me_with(&d, &[("x-api-secret", &secret)]).await.status, 401);
        assert_eq!(me_by_key(&d, &secret).await.status, 200);
        // A key cannot log out; it is disabled or deleted instead.
        let logout = d.post("/api/auth/logout", json!({}), Some(&secret)).await;
        assert_eq!(logout.status, 400);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_cannot_see_or_touch_each_others_keys() {
    for d in Deployment::all(&[]) {
        let admin = admin(&d).await;
        d.create_user(&admin, "alice", "alice password 1", &[])
            .await;
        d.create_user(&admin, "bob", "bob password 12", &[]).await;
        let alice = d.tokens("alice", "alice password 1").await.0;
        let bob = d.tokens("bob", "bob password 12").await.0;
        let (alice_key, alice_secret) = d.create_key(&alice, json!({"name": "alice's"})).await;

        let path = format!("/api/keys/{alice_key}");
        let change = d
            .call(
                Method::PATCH,
                &path,
                Some(json!({"status": "disabled"})),
                Some(&bob),
            )
            .await;
        assert_eq!((change.status, change.code()), (404, 40402), "{}", d.name);
        assert_eq!(
            d.call(Method::DELETE, &path, None, Some(&bob)).await.status,
            404
        );
        assert_eq!(d.get("/api/keys", Some(&bob)).await.body["data"], json!([]));
        assert_eq!(d.get("/api/keys?all=true", Some(&bob)).await.status, 403);
        assert_eq!(
            me_by_key(&d, &alice_secret).await.body["data"]["username"],
            "alice"
        );

        // A key cannot hold more than its owner: bob holds nothing.
        let wider = d
            .post(
                "/api/keys",
                json!({"name": "x", "permissions": ["users:read"]}),
                Some(&bob),
            )
            .await;
        assert_eq!(wider.status, 400, "{:?}", wider.body);

        // keys:admin (the admin role) sees and disables everyone's.
        let all = d.get("/api/keys?all=true", Some(&admin)).await;
        assert!(
            all.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["id"] == alice_key.as_str())
        );
        let disable = d
            .call(
                Method::PATCH,
                &path,
                Some(json!({"status": "disabled"})),
                Some(&admin),
            )
            .await;
        assert_eq!(disable.status, 200);
    }
}

async fn allocate(url: &str, headers: &[(&str, &str)]) -> Answer {
    let body = json!({
        "system_code": "sys", "db_name": "db", "table_name": "orders", "field_name": "id", "segment_count": 10
    });
    let url = format!("{url}/api/segment/allocate");
    send(
        &reqwest::Client::new(),
        Method::POST,
        &url,
        Some(&body),
        headers,
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocation_with_and_without_keys_under_each_setting() {
    for setting in [false, true] {
        let args: &[&str] = if setting {
            &["--allocation-requires-key"]
        } else {
            &[]
        };
        for d in Deployment::all(args) {
            let admin = admin(&d).await;
            let counter = json!({"system_code": "sys", "db_name": "db", "table_name": "orders", "field_name": "id", "start": 0});
            assert_eq!(
                d.post("/api/counters", counter, Some(&admin)).await.status,
                200
            );
            let (_, key) = d.create_key(&admin, json!({"name": "allocator"})).await;
            let (_, narrow) = d
                .create_key(
                    &admin,
                    json!({"name": "read only", "permissions": ["counters:read"]}),
                )
                .await;
            d.create_user(&admin, "svc", "service password 1", &[])
                .await;
            let svc = d.tokens("svc", "service password 1").await.0;
            let (_, svc_key) = d.create_key(&svc, json!({"name": "svc"})).await;
            let bearer = |k: &str| format!("Bearer {k}");

            let anonymous = allocate(&d.url(), &[]).await;
            let with_key = allocate(&d.url(), &[("authorization", &bearer(&key))]).await;
            assert_eq!(
                with_key.status, 200,
                "{} requires={setting}: {:?}",
                d.name, with_key.body
            );
            if !setting {
                assert_eq!(anonymous.status, 200, "{}: open by default", d.name);
                continue;
            }
            assert_eq!(
                (anonymous.status, anonymous.code()),
                (401, 40100),
                "{}",
                d.name
            );
            let token = allocate(&d.url(), &[("authorization", &bearer(&admin))]).await;
            assert_eq!(
                token.status, 400,
                "a login token is not an API key: {:?}",
                token.body
            );
            for weak in [&narrow, &svc_key] {
                let refused = allocate(&d.url(), &[("authorization", &bearer(weak))]).await;
                assert_eq!(refused.status, 403, "{}", d.name);
                assert_eq!(refused.msg(), "missing permission segments:allocate");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_client_sends_its_api_key() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let server = ServerProcess::start(
        &[
            "--data-dir",
            data_dir,
            "--allocation-requires-key",
            "--auto-create",
        ],
        &[],
    );
    let d = Deployment::new("embedded", vec![server], None, None);
    let admin = admin(&d).await;
    let (_, key) = d.create_key(&admin, json!({"name": "client"})).await;
    let url = d.url();
    // A thread of its own: blocking calls are refused on runtime threads.
    std::thread::spawn(move || {
        use kxy_client::{BlockingSegmentClient, ClientConfig, ClientError};
        let with_key = ClientConfig::new([url.as_str()])
            .unwrap()
            .api_key(&key)
            .unwrap();
        let segment = BlockingSegmentClient::new(with_key)
            .unwrap()
            .allocate_segment("s", "d", "t", "id", 5)
            .unwrap();
        assert_eq!((segment.start, segment.end), (1, 5));
        let without =
            BlockingSegmentClient::new(ClientConfig::new([url.as_str()]).unwrap()).unwrap();
        let err = without
            .allocate_segment("s", "d", "t", "id", 5)
            .unwrap_err();
        assert!(
            matches!(
                err,
                ClientError::Api {
                    status: 401,
                    code: 40100,
                    ..
                }
            ),
            "{err:?}"
        );
    })
    .join()
    .unwrap();
}

/// A client's mark (`store_id` + `high_water`) that shows the store behind
/// fences the counter for every caller only when it comes with an API key
/// whose rights include `counters:write` (a fence moves a counter); from a
/// key that holds only `segments:allocate`, or from an anonymous caller, it
/// refuses only that caller (it could claim any mark, and a fence at 2^63
/// would end the counter). (On c5f4999 no mark fenced.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mark_fences_only_from_a_key_that_may_move_counters() {
    // (requires a key, the key's scope, whether the mark fences)
    let cases: [(bool, Option<&[&str]>, bool); 3] = [
        (true, None, true),
        (true, Some(&["segments:allocate"]), false),
        (false, None, false),
    ];
    for (requires_key, scope, fences) in cases {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_str().unwrap();
        let mut args = vec!["--data-dir", data_dir];
        if requires_key {
            args.push("--allocation-requires-key");
        }
        let d = Deployment::new(
            "embedded",
            vec![ServerProcess::start(&args, &[])],
            None,
            None,
        );
        let admin = admin(&d).await;
        let counter = json!({"system_code": "sys", "db_name": "db", "table_name": "orders", "field_name": "id", "start": 0});
        assert_eq!(
            d.post("/api/counters", counter, Some(&admin)).await.status,
            200
        );
        let key_body = match scope {
            Some(scope) => json!({"name": "allocator", "permissions": scope}),
            None => json!({"name": "allocator"}),
        };
        let (_, key) = d.create_key(&admin, key_body).await;
        let bearer = format!("Bearer {key}");
        let headers: &[(&str, &str)] = if requires_key {
            &[("authorization", &bearer)]
        } else {
            &[]
        };
        let first = allocate(&d.url(), headers).await;
        assert_eq!(first.status, 200, "{:?}", first.body);
        let store_id = first.body["data"]["store_id"].as_str().unwrap().to_owned();

        // The client says it already received IDs up to 500 from this store.
        let marked = json!({
            "system_code": "sys", "db_name": "db", "table_name": "orders", "field_name": "id",
            "segment_count": 10, "store_id": store_id, "high_water": 500
        });
        let url = format!("{}/api/segment/allocate", d.url());
        let http = reqwest::Client::new();
        let refused = send(&http, Method::POST, &url, Some(&marked), headers)
            .await
            .unwrap();
        assert_eq!(
            (refused.status, refused.code()),
            (503, 50303),
            "{:?}",
            refused.body
        );

        let next = allocate(&d.url(), headers).await;
        if fences {
            assert_eq!(
                (next.status, next.code()),
                (503, 50303),
                "the mark fenced the counter: {:?}",
                next.body
            );
            assert!(next.msg().contains("500"), "{}", next.msg());
        } else {
            assert_eq!(
                next.status, 200,
                "scope {scope:?}, key required {requires_key}: the mark fences nothing: {:?}",
                next.body
            );
        }
    }
}
