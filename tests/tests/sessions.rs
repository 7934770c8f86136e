//! Attacks on login sessions, against running servers (embedded store, and
//! two instances on Redis): a session must die with the password or the
//! account behind it, a guessed refresh secret must not log anyone out, and
//! an access token must name its session's own user.

use jsonwebtoken::{EncodingKey, Header};
use kxy_e2e::api::Answer;
use kxy_e2e::deploy::{Deployment, ROOT_PASSWORD, pair, unix_now};
use kxy_e2e::server::{TEST_JWT_SECRET, start_refused};
use reqwest::Method;
use serde_json::json;

const BOB: &str = "bob password 1";

/// root's token, and bob's id (a user with no roles).
async fn with_bob(d: &Deployment) -> (String, String) {
    d.init().await;
    let (root, _) = d.tokens("root", ROOT_PASSWORD).await;
    let bob = d.create_user(&root, "bob", BOB, &[]).await;
    (root, bob)
}

/// The status every instance answers `token` with on `/api/users/me`.
async fn statuses(d: &Deployment, token: &str) -> Vec<u16> {
    let mut all = Vec::new();
    for i in 0..d.servers.len() {
        let answer = d
            .call_on(i, Method::GET, "/api/users/me", None, Some(token))
            .await;
        all.push(answer.status);
    }
    all
}

async fn refresh(d: &Deployment, refresh_token: &str) -> Answer {
    d.post(
        "/api/auth/refresh",
        json!({"refresh_token": refresh_token}),
        None,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_reset_ends_every_login_and_key_of_the_user() {
    for d in Deployment::all(&[]) {
        let (root, bob_id) = with_bob(&d).await;
        let (access, refresh_token) = d.tokens("bob", BOB).await;
        let (_, key) = d.create_key(&access, json!({"name": "bob's"})).await;
        assert!(statuses(&d, &key).await.iter().all(|s| *s == 200));

        let reset = d
            .post(
                &format!("/api/users/{bob_id}/reset-password"),
                json!({"password": "a new password 2"}),
                Some(&root),
            )
            .await;
        assert_eq!(reset.status, 200, "{:?}", reset.body);
        for token in [&access, &key] {
            let after = statuses(&d, token).await;
            assert!(after.iter().all(|s| *s == 401), "{}: {after:?}", d.name);
        }
        let refreshed = refresh(&d, &refresh_token).await;
        assert_eq!(refreshed.status, 401, "{}: {:?}", d.name, refreshed.body);
        // The new password works; the key stays off until its owner acts.
        let (fresh, _) = d.tokens("bob", "a new password 2").await;
        let keys = d.get("/api/keys", Some(&fresh)).await;
        assert_eq!(keys.body["data"][0]["status"], "disabled", "{}", d.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deactivated_account_does_not_get_its_sessions_back() {
    for d in Deployment::all(&[]) {
        let (root, bob_id) = with_bob(&d).await;
        let (access, refresh_token) = d.tokens("bob", BOB).await;
        for active in [false, true] {
            let answer = d
                .call(
                    Method::PUT,
                    &format!("/api/users/{bob_id}"),
                    Some(json!({"active": active})),
                    Some(&root),
                )
                .await;
            assert_eq!(answer.status, 200, "{:?}", answer.body);
        }
        let after = statuses(&d, &access).await;
        assert!(after.iter().all(|s| *s == 401), "{}: {after:?}", d.name);
        assert_eq!(refresh(&d, &refresh_token).await.status, 401, "{}", d.name);
        d.tokens("bob", BOB).await;
    }
}

/// The caller of `token` changes their password from `current`.
async fn change(d: &Deployment, token: &str, current: &str) -> Answer {
    let body = json!({"current_password": current, "new_password": "bob's new password 3"});
    d.call(Method::POST, "/api/auth/password", Some(body), Some(token))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_needs_the_current_one_and_ends_the_other_logins() {
    for d in Deployment::all(&[]) {
        let (_, _) = with_bob(&d).await;
        let (here, _) = d.tokens("bob", BOB).await;
        let (elsewhere, elsewhere_refresh) = d.tokens("bob", BOB).await;
        let (_, key) = d.create_key(&here, json!({"name": "bob's"})).await;

        let guessed = change(&d, &here, "not bob's password 1").await;
        assert_eq!(guessed.status, 401, "{:?}", guessed.body);
        let by_key = change(&d, &key, BOB).await;
        assert_eq!(by_key.status, 400, "{:?}", by_key.body);
        assert!(statuses(&d, &elsewhere).await.iter().all(|s| *s == 200));

        let changed = change(&d, &here, BOB).await;
        assert_eq!(changed.status, 200, "{:?}", changed.body);
        let (new_access, _) = pair(&changed);
        assert!(statuses(&d, &new_access).await.iter().all(|s| *s == 200));
        for token in [&here, &elsewhere, &key] {
            let after = statuses(&d, token).await;
            assert!(after.iter().all(|s| *s == 401), "{}: {after:?}", d.name);
        }
        assert_eq!(refresh(&d, &elsewhere_refresh).await.status, 401);
        assert_eq!(d.login("bob", BOB).await.status, 401);
        d.tokens("bob", "bob's new password 3").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guessed_refresh_secret_does_not_log_the_owner_out() {
    for d in Deployment::all(&[]) {
        with_bob(&d).await;
        let (_, refresh_token) = d.tokens("bob", BOB).await;
        // The session id is the visible half of the token; the attacker
        // pairs it with a secret of his own.
        let session = refresh_token.split_once('.').unwrap().0;
        let guess = format!("{session}.{}", "ab".repeat(32));
        let refused = refresh(&d, &guess).await;
        assert_eq!(refused.status, 401, "{:?}", refused.body);

        let owner = refresh(&d, &refresh_token).await;
        assert_eq!(owner.status, 200, "{}: {:?}", d.name, owner.body);
        // A real reuse (the secret just replaced) still ends the session.
        let (_, next) = pair(&owner);
        assert_eq!(refresh(&d, &refresh_token).await.status, 401);
        assert_eq!(refresh(&d, &next).await.status, 401, "{}", d.name);
    }
}

/// A token signed with the deployment's key (known to the attacker, as in
/// a leaked configuration) but naming another user than its session's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_another_users_session_is_refused() {
    for d in Deployment::all(&[])
        .into_iter()
        .filter(|d| d.prefix.is_some())
    {
        let (root, _) = with_bob(&d).await;
        let root_id = d.get("/api/users/me", Some(&root)).await.body["data"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (bob, _) = d.tokens("bob", BOB).await;
        let claims = token_claims(&bob);
        assert_eq!(
            (claims["iss"].clone(), claims["aud"].clone()),
            (json!("kxy"), json!("kxy-api"))
        );

        let key = EncodingKey::from_secret(TEST_JWT_SECRET.as_bytes());
        let now = unix_now();
        let forge = |claims: serde_json::Value| {
            jsonwebtoken::encode(&Header::default(), &claims, &key).unwrap()
        };
        // bob's session, root's id.
        let as_root = forge(json!({"iss": "kxy", "aud": "kxy-api", "sub": root_id,
            "sid": claims["sid"], "jti": "0123456789abcdef0123456789abcdef", "iat": now, "exp": now + 60}));
        assert!(statuses(&d, &as_root).await.iter().all(|s| *s == 401));
        // bob's own claims without issuer and audience, or for another audience.
        for (iss, aud) in [
            (None, None),
            (Some("kxy"), Some("elsewhere")),
            (Some("other"), Some("kxy-api")),
        ] {
            let mut forged = json!({"sub": claims["sub"], "sid": claims["sid"],
                "jti": "0123456789abcdef0123456789abcdee", "iat": now, "exp": now + 60});
            if let Some(iss) = iss {
                forged["iss"] = json!(iss);
            }
            if let Some(aud) = aud {
                forged["aud"] = json!(aud);
            }
            let token = forge(forged);
            assert!(
                statuses(&d, &token).await.iter().all(|s| *s == 401),
                "{iss:?} {aud:?}"
            );
        }
    }
}

fn token_claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64_url_decode(payload);
    serde_json::from_slice(&bytes).unwrap()
}

/// Unpadded base64url, as JWTs use.
fn base64_url_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        b'_' => 63,
        _ => panic!("not base64url: {c}"),
    } as u32;
    let mut out = Vec::new();
    let (mut bits, mut acc) = (0, 0u32);
    for c in text.bytes() {
        acc = (acc << 6) | value(c);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signing_key_is_not_in_the_store() {
    for d in Deployment::all(&[]) {
        with_bob(&d).await;
        let store = d.raw_store();
        if let Some(dir) = &d.dir {
            let key = std::fs::read_to_string(dir.path().join("jwt-secret")).unwrap();
            assert!(!kxy_e2e::deploy::contains(&store, key.trim()));
        } else {
            assert!(!kxy_e2e::deploy::contains(&store, TEST_JWT_SECRET));
            assert!(!kxy_e2e::deploy::contains(&store, "jwt_secret"));
        }
    }
    // A shared store with no key that every instance knows is refused.
    if let Some(url) = kxy_e2e::redis_env::shared_redis() {
        let prefix = kxy_e2e::redis_env::KeyPrefix::new(&url, "nokey");
        let args: Vec<&str> = prefix
            .store_args()
            .into_iter()
            .take_while(|a| *a != "--jwt-secret")
            .collect();
        let refused = start_refused(&args);
        assert!(refused.contains("--master-key"), "{refused}");
    }
}

/// The review's race: a thief with a stolen session creates keys without
/// pause while the owner changes the password; no key made by the old
/// session may work once the change returned, however the two interleaved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_made_during_a_password_change_does_not_outlive_it() {
    for d in Deployment::all(&["--max-api-keys", "1000"]) {
        with_bob(&d).await;
        let mut password = BOB.to_owned();
        for round in 0..4 {
            let (stolen, _) = d.tokens("bob", &password).await;
            let (owner, _) = d.tokens("bob", &password).await;
            let next = format!("bob password round {round}");
            let changing = std::sync::atomic::AtomicBool::new(true);
            // Six loops at once, as a thief would run them.
            let thief_loop = || async {
                let mut made = Vec::new();
                while changing.load(std::sync::atomic::Ordering::SeqCst) && made.len() < 150 {
                    let answer = d
                        .call(
                            Method::POST,
                            "/api/keys",
                            Some(json!({"name": "thief"})),
                            Some(&stolen),
                        )
                        .await;
                    if answer.status != 200 {
                        break;
                    }
                    made.push(answer.body["data"]["secret"].as_str().unwrap().to_owned());
                }
                made
            };
            let thief = async {
                futures::future::join_all((0..6).map(|_| thief_loop()))
                    .await
                    .concat()
            };
            let change = async {
                let answer = d
                    .call(
                        Method::POST,
                        "/api/auth/password",
                        Some(json!({"current_password": password, "new_password": next})),
                        Some(&owner),
                    )
                    .await;
                changing.store(false, std::sync::atomic::Ordering::SeqCst);
                answer
            };
            let (made, changed) = tokio::join!(thief, change);
            assert_eq!(changed.status, 200, "{:?}", changed.body);
            password = next;
            for secret in &made {
                let after = statuses(&d, secret).await;
                assert!(
                    after.iter().all(|s| *s == 401),
                    "{} round {round}: {after:?}",
                    d.name
                );
            }
        }
    }
}
