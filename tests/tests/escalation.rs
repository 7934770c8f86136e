//! Attacks by users who administer users or roles but are not admins,
//! against running servers (embedded store, and two instances on Redis):
//! `users:write` or `roles:write` must not be a way to become admin, nor to
//! take over an account that holds more.

use kxy_e2e::api::Answer;
use kxy_e2e::deploy::{Deployment, ROOT_PASSWORD};
use reqwest::Method;
use serde_json::json;

fn assert_forbidden(answer: &Answer, what: &str) {
    assert_eq!(
        (answer.status, answer.code()),
        (403, 40301),
        "{what}: {:?}",
        answer.body
    );
}

/// root's token, and the id of root.
async fn root(d: &Deployment) -> (String, String) {
    d.init().await;
    let (token, _) = d.tokens("root", ROOT_PASSWORD).await;
    let me = d.get("/api/users/me", Some(&token)).await;
    (token, me.body["data"]["id"].as_str().unwrap().to_owned())
}

async fn make_role(d: &Deployment, root: &str, name: &str, permissions: &[&str]) {
    let answer = d
        .post(
            "/api/roles",
            json!({"name": name, "permissions": permissions}),
            Some(root),
        )
        .await;
    assert_eq!(answer.status, 200, "{}: {:?}", d.name, answer.body);
}

async fn permissions_of(d: &Deployment, token: &str) -> String {
    d.get("/api/users/me", Some(token)).await.body["data"]["permissions"].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_write_does_not_make_an_admin() {
    for d in Deployment::all(&[]) {
        let (root, root_id) = root(&d).await;
        make_role(&d, &root, "user-admin", &["users:read", "users:write"]).await;
        let mallory_id = d
            .create_user(&root, "mallory", "mallory password 1", &["user-admin"])
            .await;
        let (mallory, _) = d.tokens("mallory", "mallory password 1").await;

        // An admin of her own making, or herself promoted: refused.
        let made = d
            .post(
                "/api/users",
                json!({"username": "mallory2", "password": "mallory2 password 1", "roles": ["admin"]}),
                Some(&mallory),
            )
            .await;
        assert_forbidden(&made, "create an admin");
        assert!(d.login("mallory2", "mallory2 password 1").await.status != 200);
        let promoted = d
            .call(
                Method::PUT,
                &format!("/api/users/{mallory_id}"),
                Some(json!({"roles": ["admin"]})),
                Some(&mallory),
            )
            .await;
        assert_forbidden(&promoted, "promote herself");
        assert!(!permissions_of(&d, &mallory).await.contains("*:*"));

        // The admin's account is out of her reach.
        let root_path = format!("/api/users/{root_id}");
        let reset = d
            .post(
                &format!("{root_path}/reset-password"),
                json!({"password": "taken over 123"}),
                Some(&mallory),
            )
            .await;
        assert_forbidden(&reset, "reset the admin's password");
        let off = d
            .call(
                Method::PUT,
                &root_path,
                Some(json!({"active": false})),
                Some(&mallory),
            )
            .await;
        assert_forbidden(&off, "deactivate the admin");
        let demote = d
            .call(
                Method::PUT,
                &root_path,
                Some(json!({"roles": []})),
                Some(&mallory),
            )
            .await;
        assert_forbidden(&demote, "demote the admin");
        let gone = d
            .call(Method::DELETE, &root_path, None, Some(&mallory))
            .await;
        assert_forbidden(&gone, "delete the admin");
        assert_eq!(
            d.login("root", ROOT_PASSWORD).await.status,
            200,
            "{}",
            d.name
        );
        assert!(permissions_of(&d, &root).await.contains("*:*"));

        // Within her own rights she still administers users.
        let peer = d
            .post(
                "/api/users",
                json!({"username": "peer", "password": "peer password 1", "roles": ["user-admin"]}),
                Some(&mallory),
            )
            .await;
        assert_eq!(peer.status, 200, "{}: {:?}", d.name, peer.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_write_does_not_make_an_admin() {
    for d in Deployment::all(&[]) {
        let (root, _) = root(&d).await;
        make_role(&d, &root, "role-admin", &["roles:read", "roles:write"]).await;
        make_role(&d, &root, "user-admin", &["users:read", "users:write"]).await;
        d.create_user(&root, "rolf", "rolf password 1", &["role-admin"])
            .await;
        let (rolf, _) = d.tokens("rolf", "rolf password 1").await;

        // `*:*` added to his own role, or a new all-powerful role: refused.
        let widened = d
            .call(
                Method::PUT,
                "/api/roles/role-admin",
                Some(json!({"permissions": ["roles:read", "roles:write", "*:*"]})),
                Some(&rolf),
            )
            .await;
        assert_forbidden(&widened, "add *:* to his role");
        assert!(!permissions_of(&d, &rolf).await.contains("*:*"));
        let created = d
            .post(
                "/api/roles",
                json!({"name": "super", "permissions": ["*:*"]}),
                Some(&rolf),
            )
            .await;
        assert_forbidden(&created, "create a role with *:*");
        // Roles carrying rights he lacks are not his to edit or delete.
        let edited = d
            .call(
                Method::PUT,
                "/api/roles/user-admin",
                Some(json!({"permissions": ["users:read"]})),
                Some(&rolf),
            )
            .await;
        assert_forbidden(&edited, "edit a role with users:write");
        let deleted = d
            .call(Method::DELETE, "/api/roles/user-admin", None, Some(&rolf))
            .await;
        assert_forbidden(&deleted, "delete a role with users:write");
        let role = d.get("/api/roles/user-admin", Some(&root)).await;
        assert!(
            role.body["data"]["permissions"]
                .to_string()
                .contains("users:write"),
            "{}: {:?}",
            d.name,
            role.body
        );

        // A role within his rights he may create.
        let reader = d
            .post(
                "/api/roles",
                json!({"name": "reader", "permissions": ["roles:read"]}),
                Some(&rolf),
            )
            .await;
        assert_eq!(reader.status, 200, "{}: {:?}", d.name, reader.body);
    }
}

/// Two administrators demoting each other at the same moment, on two
/// instances: at most one demotion may succeed, or nobody is left to
/// administer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_last_two_admins_cannot_demote_each_other_at_once() {
    for d in Deployment::all(&[]) {
        let (root, root_id) = root(&d).await;
        let other_id = d
            .create_user(&root, "admin2", "admin2 password 1", &["admin"])
            .await;
        let (other, _) = d.tokens("admin2", "admin2 password 1").await;
        let (root_path, other_path) = (
            format!("/api/users/{root_id}"),
            format!("/api/users/{other_id}"),
        );
        for round in 0..10 {
            let (a, b) = tokio::join!(
                d.call(
                    Method::PUT,
                    &other_path,
                    Some(json!({"roles": []})),
                    Some(&root)
                ),
                d.call(
                    Method::PUT,
                    &root_path,
                    Some(json!({"roles": []})),
                    Some(&other)
                ),
            );
            let succeeded = [&a, &b].iter().filter(|x| x.status == 200).count();
            assert!(
                succeeded <= 1,
                "{} round {round}: both demotions succeeded: {:?} / {:?}",
                d.name,
                a.body,
                b.body
            );
            // Whoever is still an admin restores the other.
            let (admin_token, demoted_id) = if a.status == 200 {
                (&root, &other_id)
            } else if b.status == 200 {
                (&other, &root_id)
            } else {
                continue;
            };
            let restored = d
                .call(
                    Method::PUT,
                    &format!("/api/users/{demoted_id}"),
                    Some(json!({"roles": ["admin"]})),
                    Some(admin_token),
                )
                .await;
            assert_eq!(restored.status, 200, "{}: {:?}", d.name, restored.body);
        }
    }
}

/// `access:write` hands on what its holder has, not more: a level on an
/// endpoint above the granter's own is refused, to anyone, themselves too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_write_cannot_grant_above_ones_own_level() {
    for d in Deployment::all(&[]) {
        let (root, _) = root(&d).await;
        make_role(&d, &root, "granter", &["access:read", "access:write"]).await;
        let gina_id = d
            .create_user(&root, "gina", "gina password 1", &["granter"])
            .await;
        let bob_id = d.create_user(&root, "bob", "bob password 12", &[]).await;
        let (gina, _) = d.tokens("gina", "gina password 1").await;
        let endpoint = d
            .post(
                "/api/access/endpoints",
                json!({"method": "GET", "path": "/orders/{id}", "require_auth": true}),
                Some(&root),
            )
            .await;
        assert_eq!(endpoint.status, 200, "{}: {:?}", d.name, endpoint.body);
        let endpoint_id = endpoint.body["data"]["id"].as_str().unwrap().to_owned();
        let grant = |to: &str, level: &str| json!({"subject": {"type": "user", "id": to}, "endpoint_id": endpoint_id, "level": level});
        let granted = d
            .post("/api/access/grants", grant(&gina_id, "read"), Some(&root))
            .await;
        assert_eq!(granted.status, 200, "{}: {:?}", d.name, granted.body);

        for (to, level, what) in [
            (&gina_id, "admin", "herself admin"),
            (&gina_id, "write", "herself write"),
            (&bob_id, "write", "bob write"),
        ] {
            let answer = d
                .post("/api/access/grants", grant(to, level), Some(&gina))
                .await;
            assert_forbidden(&answer, &format!("{}: grant {what}", d.name));
        }
        let listed = d.get("/api/access/grants", Some(&root)).await;
        assert_eq!(
            listed.body["data"].as_array().unwrap().len(),
            1,
            "{}: only root's grant exists: {:?}",
            d.name,
            listed.body
        );
        // Her own level she may hand on; an admin may grant any.
        let same = d
            .post("/api/access/grants", grant(&bob_id, "read"), Some(&gina))
            .await;
        assert_eq!(same.status, 200, "{}: {:?}", d.name, same.body);
        let any = d
            .post("/api/access/grants", grant(&bob_id, "admin"), Some(&root))
            .await;
        assert_eq!(any.status, 200, "{}: {:?}", d.name, any.body);
    }
}

/// What the hostile review found `access:write` could still do: open or
/// delete endpoints, and lift its own narrowing grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_write_cannot_open_endpoints_or_lift_its_own_grants() {
    for d in Deployment::all(&[]) {
        let (root, _) = root(&d).await;
        make_role(&d, &root, "staff", &["access:read", "access:write"]).await;
        let sam_id = d
            .create_user(&root, "sam", "sam password 1", &["staff"])
            .await;
        let (sam, _) = d.tokens("sam", "sam password 1").await;
        let endpoint = |method: &str, path: &str| {
            d.post(
                "/api/access/endpoints",
                json!({"method": method, "path": path}),
                Some(&root),
            )
        };
        let orders = endpoint("*", "/orders/*").await.body["data"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let admin = endpoint("*", "/admin/*").await.body["data"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let grant = |subject: serde_json::Value, level: &str| json!({"subject": subject, "endpoint_id": orders, "level": level});
        let role_grant = d
            .post(
                "/api/access/grants",
                grant(json!({"type": "role", "id": "staff"}), "write"),
                Some(&root),
            )
            .await;
        assert_eq!(role_grant.status, 200, "{:?}", role_grant.body);
        let narrowing = d
            .post(
                "/api/access/grants",
                grant(json!({"type": "user", "id": sam_id}), "read"),
                Some(&root),
            )
            .await;
        let narrowing = narrowing.body["data"]["id"].as_str().unwrap().to_owned();

        let opened = d
            .post(
                "/api/access/endpoints",
                json!({"method": "DELETE", "path": "/admin/x", "require_auth": false}),
                Some(&sam),
            )
            .await;
        assert_forbidden(&opened, &format!("{}: open a new endpoint", d.name));
        for (method, path, body) in [
            (
                Method::PUT,
                format!("/api/access/endpoints/{admin}"),
                Some(json!({"require_auth": false})),
            ),
            (
                Method::DELETE,
                format!("/api/access/endpoints/{admin}"),
                None,
            ),
            (
                Method::DELETE,
                format!("/api/access/grants/{narrowing}"),
                None,
            ),
        ] {
            let answer = d.call(method, &path, body, Some(&sam)).await;
            assert_forbidden(&answer, &format!("{}: {path}", d.name));
        }
        // Nor a new grant to her own role (which she could then lean on).
        let to_role = d
            .post(
                "/api/access/grants",
                grant(json!({"type": "role", "id": "staff"}), "read"),
                Some(&sam),
            )
            .await;
        assert_forbidden(&to_role, &format!("{}: grant to her own role", d.name));
        let grants = d.get("/api/access/grants", Some(&root)).await;
        assert_eq!(
            grants.body["data"].as_array().unwrap().len(),
            2,
            "{}",
            d.name
        );
        let endpoints = d.get("/api/access/endpoints", Some(&root)).await;
        assert_eq!(
            endpoints.body["data"].as_array().unwrap().len(),
            2,
            "{}",
            d.name
        );
    }
}

/// A key administrator, a user administrator and a scoped key each tried
/// to get back in where a password change, a lockout or a scope said no.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_way_around_a_password_change_a_lockout_or_a_scope() {
    for d in Deployment::all(&["--lockout-threshold", "3"]) {
        let (root, root_id) = root(&d).await;
        make_role(&d, &root, "key-admin", &["keys:admin"]).await;
        make_role(&d, &root, "user-admin", &["users:read", "users:write"]).await;
        d.create_user(&root, "kenny", "kenny password 1", &["key-admin"])
            .await;
        let mallory_id = d
            .create_user(&root, "mallory", "mallory password 1", &["user-admin"])
            .await;
        let (kenny, _) = d.tokens("kenny", "kenny password 1").await;
        let (mallory, _) = d.tokens("mallory", "mallory password 1").await;

        // keys:admin turning root's key back on after root's password change.
        let (root_key_id, root_key) = d.create_key(&root, json!({"name": "root's"})).await;
        let changed = d
            .post(
                "/api/auth/password",
                json!({"current_password": ROOT_PASSWORD, "new_password": "root password 2"}),
                Some(&root),
            )
            .await;
        assert_eq!(changed.status, 200, "{:?}", changed.body);
        let root = changed.body["data"]["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let revived = d
            .call(
                Method::PATCH,
                &format!("/api/keys/{root_key_id}"),
                Some(json!({"status": "active"})),
                Some(&kenny),
            )
            .await;
        assert_forbidden(&revived, &format!("{}: revive root's key", d.name));
        assert_eq!(d.get("/api/users/me", Some(&root_key)).await.status, 401);

        // users:write lifting root's lockout to keep guessing.
        for n in 0..3 {
            d.login("root", &format!("guess {n}")).await;
        }
        let unlocked = d
            .post(
                &format!("/api/users/{root_id}/unlock"),
                json!({}),
                Some(&mallory),
            )
            .await;
        assert_forbidden(&unlocked, &format!("{}: unlock root", d.name));
        assert_eq!(d.login("root", "root password 2").await.status, 429);

        // A key scoped to user administration resetting its owner's password
        // to get a full session.
        let (_, scoped) = d
            .create_key(
                &mallory,
                json!({"name": "users", "permissions": ["users:read", "users:write"]}),
            )
            .await;
        let reset = d
            .post(
                &format!("/api/users/{mallory_id}/reset-password"),
                json!({"password": "mallory password 7"}),
                Some(&scoped),
            )
            .await;
        assert_eq!(reset.status, 409, "{}: {:?}", d.name, reset.body);
        assert_eq!(d.login("mallory", "mallory password 7").await.status, 401);
        // Nor another user's: his keys and credentials are beyond its scope.
        let bob_id = d.create_user(&root, "bob", "bob password 12", &[]).await;
        let over_bob = d
            .post(
                &format!("/api/users/{bob_id}/reset-password"),
                json!({"password": "bob password 13"}),
                Some(&scoped),
            )
            .await;
        assert_forbidden(&over_bob, &format!("{}: scoped key resets bob", d.name));
    }
}
