//! The operator's way back in, and the first-run guard, against running
//! servers: every administrator locked out (or a forgotten password) is
//! undone from the command line on the store; on a public bind, being the
//! first caller is not enough to become the administrator.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use kxy_e2e::deploy::{Deployment, ROOT_PASSWORD, pair};
use kxy_e2e::redis_env::{KeyPrefix, shared_redis};
use kxy_e2e::server::{ServerProcess, binary};
use serde_json::json;

/// `kxy-server <args>` with `input` on standard input.
fn cli_with_input(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(binary())
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kxy-server");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn assert_success(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Locks root out with wrong passwords (threshold 3).
async fn lock_root(d: &Deployment) {
    for n in 0..3 {
        d.login("root", &format!("wrong password {n}")).await;
    }
    assert_eq!(
        d.login("root", ROOT_PASSWORD).await.status,
        429,
        "{}",
        d.name
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_unlocks_a_stopped_embedded_server_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let args = ["--data-dir", data_dir, "--lockout-threshold", "3"];
    let d = Deployment::new(
        "embedded",
        vec![ServerProcess::start(&args, &[])],
        None,
        None,
    );
    d.init().await;
    let (old_token, _) = d.tokens("root", ROOT_PASSWORD).await;
    lock_root(&d).await;
    assert!(d.servers.into_iter().next().unwrap().terminate());

    let unknown = cli_with_input(&["--data-dir", data_dir, "users", "unlock", "nobody"], "");
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("nobody"));
    let unlocked = cli_with_input(&["--data-dir", data_dir, "users", "unlock", "root"], "");
    assert!(assert_success(&unlocked).contains("unlocked root"));
    let weak = cli_with_input(
        &["--data-dir", data_dir, "users", "reset-password", "root"],
        "short\n",
    );
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("password"));
    let reset = cli_with_input(
        &["--data-dir", data_dir, "users", "reset-password", "root"],
        "a forgotten one 2\n",
    );
    assert_success(&reset);

    let d = Deployment::new(
        "embedded",
        vec![ServerProcess::start(&args, &[])],
        None,
        None,
    );
    assert_eq!(d.login("root", ROOT_PASSWORD).await.status, 401);
    d.tokens("root", "a forgotten one 2").await;
    let old = d.get("/api/users/me", Some(&old_token)).await;
    assert_eq!(old.status, 401, "{:?}", old.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_unlocks_and_resets_while_redis_servers_run() {
    let Some(url) = shared_redis() else { return };
    let prefix = KeyPrefix::new(&url, "recovery");
    let mut args = prefix.store_args();
    args.extend(["--lockout-threshold", "3"]);
    let servers = vec![
        ServerProcess::start(&args, &[]),
        ServerProcess::start(&args, &[]),
    ];
    let d = Deployment::new("redis x2", servers, None, None);
    d.init().await;
    let (root, _) = d.tokens("root", ROOT_PASSWORD).await;
    let (_, key) = d.create_key(&root, json!({"name": "root's"})).await;
    lock_root(&d).await;

    let store = prefix.store_args();
    let unlocked = cli_with_input(&[&store[..], &["users", "unlock", "root"]].concat(), "");
    assert_success(&unlocked);
    for _ in 0..d.servers.len() {
        assert_eq!(d.login("root", ROOT_PASSWORD).await.status, 200);
    }

    let reset = cli_with_input(
        &[&store[..], &["users", "reset-password", "root"]].concat(),
        "a forgotten one 2\n",
    );
    assert!(assert_success(&reset).contains("1 API key(s) disabled"));
    for token in [&root, &key] {
        for i in 0..d.servers.len() {
            let me = d
                .call_on(i, reqwest::Method::GET, "/api/users/me", None, Some(token))
                .await;
            assert_eq!(me.status, 401, "{:?}", me.body);
        }
    }
    d.tokens("root", "a forgotten one 2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_public_bind_the_first_caller_needs_the_setup_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_on(
        "0.0.0.0:0",
        &["--data-dir", dir.path().to_str().unwrap()],
        &[],
    );
    let logs = server.logs();
    let token = logs
        .lines()
        .find_map(|l| l.trim().strip_prefix("setup_token: "))
        .unwrap_or_else(|| panic!("no setup token shown:\n{logs}"))
        .to_owned();
    let d = Deployment::new("public bind", vec![server], None, None);
    let check = d.get("/api/auth/check-init", None).await;
    assert_eq!(check.body["data"]["setup_token_required"], true);

    let init = |setup_token: Option<&str>| {
        let mut body = json!({"username": "root", "password": ROOT_PASSWORD});
        if let Some(t) = setup_token {
            body["setup_token"] = json!(t);
        }
        d.post("/api/auth/init-user", body, None)
    };
    // The attack: be first.
    let first = init(None).await;
    first.assert_refused(403, 40303);
    init(Some("0123456789abcdef0123456789abcdef"))
        .await
        .assert_refused(403, 40303);
    assert_eq!(d.login("root", ROOT_PASSWORD).await.status, 401);

    let made = init(Some(&token)).await;
    assert_eq!(made.status, 200, "{:?}", made.body);
    init(Some(&token)).await.assert_refused(409, 40903);
    pair(&d.login("root", ROOT_PASSWORD).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_setup_token_holds_on_loopback_too() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(
        &["--data-dir", dir.path().to_str().unwrap()],
        &[("KXY_SETUP_TOKEN", "operator's own setup token")],
    );
    assert!(!server.logs().contains("operator's own setup token"));
    let d = Deployment::new("loopback", vec![server], None, None);
    let body = json!({"username": "root", "password": ROOT_PASSWORD});
    d.post("/api/auth/init-user", body.clone(), None)
        .await
        .assert_refused(403, 40303);
    let mut with = body;
    with["setup_token"] = json!("operator's own setup token");
    assert_eq!(d.post("/api/auth/init-user", with, None).await.status, 200);
}
