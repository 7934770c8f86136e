//! Unit tests of endpoint matching and grant decisions.

use super::*;

fn endpoint(id: &str, method: &str, path: &str) -> Endpoint {
    Endpoint {
        id: id.into(),
        method: method.into(),
        path: path.into(),
        require_auth: true,
    }
}

fn grant(subject: Subject, endpoint: &str, level: Level, expires_at: Option<u64>) -> Grant {
    Grant {
        id: format!("{subject:?}{endpoint}{level}"),
        subject,
        endpoint_id: endpoint.into(),
        level,
        expires_at,
        granted_by: "root".into(),
    }
}

fn user(id: &str) -> Subject {
    Subject::User(id.into())
}

fn role(name: &str) -> Subject {
    Subject::Role(name.into())
}

#[test]
fn patterns_are_validated() {
    assert!(
        endpoint("a", "GET", "/orders/{id}/items")
            .validate()
            .is_ok()
    );
    assert!(endpoint("a", "*", "/reports/*").validate().is_ok());
    assert!(endpoint("a", "FETCH", "/x").validate().is_err());
    for bad in ["orders", "/a/*/b", "/a/{", "/a/b?c", "/a/{}"] {
        assert!(endpoint("a", "GET", bad).validate().is_err(), "{bad}");
    }
}

#[test]
fn the_most_specific_endpoint_matches() {
    let policy = Policy::compile(
        vec![
            endpoint("param", "GET", "/orders/{id}"),
            endpoint("literal", "GET", "/orders/latest"),
            endpoint("rest", "*", "/orders/*"),
            endpoint("any-method", "*", "/orders/{id}"),
        ],
        vec![],
    );
    let id = |m, p| policy.endpoint_for(m, p).map(|e| e.id.as_str());
    assert_eq!(id("GET", "/orders/latest"), Some("literal"));
    assert_eq!(id("GET", "/orders/42"), Some("param"));
    assert_eq!(id("DELETE", "/orders/42"), Some("any-method"));
    assert_eq!(id("GET", "/orders/42/items/7"), Some("rest"));
    assert_eq!(id("GET", "/orders/42?x=1"), Some("param"));
    assert_eq!(id("GET", "/users/1"), None);
}

#[test]
fn a_direct_grant_decides_before_roles() {
    let policy = Policy::compile(
        vec![endpoint("orders", "*", "/orders/{id}")],
        vec![
            grant(role("ops"), "orders", Level::Admin, None),
            grant(user("alice"), "orders", Level::Read, None),
        ],
    );
    let roles = vec!["ops".to_string()];
    let read = policy.decide("alice", &roles, "GET", "/orders/1", Level::Read, 100);
    assert!(read.allowed);
    assert_eq!(read.reason, Reason::DirectGrant { granted_by: "root" });
    // Her own read grant narrows her below the role's admin.
    let write = policy.decide("alice", &roles, "DELETE", "/orders/1", Level::Write, 100);
    assert!(!write.allowed);
    assert_eq!(write.level, Some(Level::Read));
    // Bob has only the role.
    let bob = policy.decide("bob", &roles, "DELETE", "/orders/1", Level::Write, 100);
    assert!(bob.allowed);
    assert_eq!(bob.reason, Reason::RoleGrant { role: "ops" });
    assert_eq!(
        bob.to_string(),
        "allowed: role ops gives admin, write needed"
    );
}

#[test]
fn expired_grants_never_count() {
    let policy = Policy::compile(
        vec![endpoint("orders", "GET", "/orders")],
        vec![
            grant(user("alice"), "orders", Level::Admin, Some(50)),
            grant(role("ops"), "orders", Level::Read, Some(200)),
        ],
    );
    let roles = vec!["ops".to_string()];
    let before = policy.decide("alice", &roles, "GET", "/orders", Level::Read, 10);
    assert_eq!((before.allowed, before.level), (true, Some(Level::Admin)));
    // Her direct grant expired: the role decides.
    let after = policy.decide("alice", &roles, "GET", "/orders", Level::Read, 100);
    assert_eq!(after.reason, Reason::RoleGrant { role: "ops" });
    let later = policy.decide("alice", &roles, "GET", "/orders", Level::Read, 300);
    assert!(!later.allowed);
    assert_eq!(later.reason, Reason::Expired);
    assert_eq!(
        later.to_string(),
        "denied: every grant on this endpoint has expired"
    );
}

#[test]
fn unauthenticated_endpoints_and_missing_ones() {
    let mut open = endpoint("health", "GET", "/health");
    open.require_auth = false;
    let policy = Policy::compile(vec![open], vec![]);
    assert!(
        policy
            .decide("", &[], "GET", "/health", Level::Read, 0)
            .allowed
    );
    let none = policy.decide("alice", &[], "GET", "/nothing", Level::Read, 0);
    assert_eq!((none.allowed, none.reason), (false, Reason::NoEndpoint));
    assert_eq!(Level::required_for("GET"), Level::Read);
    assert_eq!(Level::required_for("PATCH"), Level::Write);
}

fn public_and_admin() -> Policy {
    Policy::compile(
        vec![
            endpoint("public", "*", "/public/*"),
            endpoint("admin", "*", "/admin/secret"),
            // Registered before paths were normalised: matched all the same.
            endpoint("old", "GET", "/Old//Path/"),
        ],
        vec![
            grant(user("pat"), "public", Level::Admin, None),
            grant(user("pat"), "old", Level::Read, None),
        ],
    )
}

#[test]
fn a_path_is_judged_by_the_endpoint_of_its_normal_form() {
    let policy = public_and_admin();
    for path in [
        "/public/../admin/secret",
        "/public/%2e%2e/admin/secret",
        "/admin;x=1/secret",
        "//ADMIN/secret/",
    ] {
        let d = policy.decide("pat", &[], "GET", path, Level::Read, 0);
        assert_eq!((d.allowed, d.endpoint), (false, Some("admin")), "{path}");
    }
    for path in ["/public/..%2fadmin/secret", "/public/../../admin/secret"] {
        let d = policy.decide("pat", &[], "GET", path, Level::Read, 0);
        assert_eq!(
            (d.allowed, d.reason),
            (false, Reason::InvalidPath),
            "{path}"
        );
        assert_eq!(d.to_string(), "denied: the path is ambiguous or malformed");
    }
    assert!(
        policy
            .decide("pat", &[], "GET", "/old/path", Level::Read, 0)
            .allowed
    );
    assert_eq!(
        policy.endpoint_for("GET", "/OLD/path").unwrap().path,
        "/old/path"
    );
}

#[test]
fn endpoints_are_normalised_and_validated() {
    let mut e = endpoint("a", "GET", "/Orders//{ID}/");
    assert!(e.validate().is_err(), "not in normal form yet");
    e.normalize().unwrap();
    assert_eq!(e.path, "/orders/{id}");
    assert!(e.validate().is_ok());
    for bad in ["/a%2fb", "/..", "/a?b"] {
        assert!(endpoint("a", "GET", bad).normalize().is_err(), "{bad}");
    }
}

proptest::proptest! {
    /// Whatever detours, escapes, parameters and case a path takes, it
    /// reaches `/admin/secret`'s endpoint or none, never `/public/*`'s.
    #[test]
    fn no_spelling_of_admin_reaches_public(
        detour in proptest::sample::select(vec![
            "/public/..", "/public/%2e%2e", "/public/.%2E", "/public/..;x",
            "/public/a/../..", "", "/", "/.",
        ]),
        admin in proptest::sample::select(vec!["admin", "ADMIN", "%61dmin", "admin;v=1", "Admin/"]),
        tail in proptest::sample::select(vec!["/secret", "/secret/", "//secret", "/SECRET;x"]),
    ) {
        let policy = public_and_admin();
        let path = format!("{detour}/{admin}{tail}");
        let d = policy.decide("pat", &[], "GET", &path, Level::Read, 0);
        proptest::prop_assert!(!d.allowed, "{path}: {d}");
        proptest::prop_assert_ne!(d.endpoint, Some("public"), "{}", path);
    }
}
