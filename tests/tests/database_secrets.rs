//! Attacks on registered databases' stored passwords and on what a
//! registration may reach, against running servers (issue 11, points 12, 13
//! and parts of 14 and 15):
//!
//! - a user with `databases:write` points a registered database at a host
//!   of his own and asks the server to connect: the stored password must
//!   never reach that host;
//! - a record moved to another host directly in the store must not decrypt;
//! - a master-key rotation must re-seal database passwords too;
//! - masks show at most 4 characters of a password;
//! - SQLite registration cannot read files outside `--sqlite-dir`, and
//!   `--database-hosts` limits where the server connects.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kxy_e2e::api::Answer;
use kxy_e2e::deploy::{Deployment, ROOT_PASSWORD};
use kxy_e2e::redis_env::KeyPrefix;
use kxy_e2e::server::{ServerProcess, run_cli};
use kxy_e2e::sql_env::{MariaDb, Postgres};
use reqwest::Method;
use serde_json::{Value, json};

const K1: &str = "0101010101010101010101010101010101010101010101010101010101010101";
const K2: &str = "0202020202020202020202020202020202020202020202020202020202020202";
/// The stored password the attacker is after.
const SECRET: &str = "kxy-db-secret-7f3a9c2e";

/// A fake PostgreSQL server on a port of the test's own: it declines TLS,
/// asks every client for its password in clear text (as a real server
/// configured with `password` authentication may) and keeps every byte it
/// receives.
struct FakePostgres {
    port: u16,
    received: Arc<Mutex<Vec<u8>>>,
    connections: Arc<Mutex<usize>>,
}

impl FakePostgres {
    fn start() -> FakePostgres {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(0));
        let (r, c) = (Arc::clone(&received), Arc::clone(&connections));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                *c.lock().unwrap() += 1;
                let r = Arc::clone(&r);
                std::thread::spawn(move || {
                    let _ = Self::serve(stream, &r);
                });
            }
        });
        FakePostgres {
            port,
            received,
            connections,
        }
    }

    fn serve(mut stream: TcpStream, received: &Mutex<Vec<u8>>) -> std::io::Result<()> {
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let read_message = |stream: &mut TcpStream| -> std::io::Result<Vec<u8>> {
            let mut len = [0u8; 4];
            stream.read_exact(&mut len)?;
            let mut body = vec![0u8; (u32::from_be_bytes(len) as usize).saturating_sub(4)];
            stream.read_exact(&mut body)?;
            received.lock().unwrap().extend(&body);
            Ok(body)
        };
        let mut startup = read_message(&mut stream)?;
        if startup == 80_877_103u32.to_be_bytes() {
            stream.write_all(b"N")?; // no TLS here
            startup = read_message(&mut stream)?;
        }
        let _ = startup;
        // AuthenticationCleartextPassword.
        stream.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3])?;
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
        received.lock().unwrap().extend(&rest);
        Ok(())
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn saw_the_secret(&self) -> bool {
        let received = self.received.lock().unwrap();
        received
            .windows(SECRET.len())
            .any(|w| w == SECRET.as_bytes())
    }

    fn connections(&self) -> usize {
        *self.connections.lock().unwrap()
    }
}

async fn initialize(d: &Deployment, token: &str, guid: &str) -> Answer {
    d.post(
        &format!("/api/database/initialize/{guid}"),
        json!({}),
        Some(token),
    )
    .await
}

async fn update(d: &Deployment, token: &str, guid: &str, body: Value) -> Answer {
    d.call(
        Method::PUT,
        &format!("/api/database/{guid}"),
        Some(body),
        Some(token),
    )
    .await
}

async fn register(d: &Deployment, token: &str, body: Value) -> String {
    let answer = d.post("/api/database/add", body, Some(token)).await;
    assert_eq!(answer.status, 200, "{}: {:?}", d.name, answer.body);
    answer.body["data"]["guid"].as_str().unwrap().to_owned()
}

/// The PostgreSQL database of `pg` (trust authentication: the password is
/// stored and sealed, and sent only to a server that asks for it).
fn pg_form(pg: &Postgres) -> Value {
    json!({"system_code": "erp", "db_type": "postgresql", "address": "127.0.0.1:5432",
           "db_name": pg.name, "username": "postgres", "password": SECRET})
}

fn shown_characters(masked: &str) -> usize {
    masked.chars().filter(|c| *c != '*').count()
}

/// An embedded-store server in `data` with the master key K1 and `extra`
/// flags, initialized; returns it and root's token.
async fn embedded_with_root(data: &tempfile::TempDir, extra: &[&str]) -> (Deployment, String) {
    let mut args = vec![
        "--data-dir",
        data.path().to_str().unwrap(),
        "--master-key",
        K1,
    ];
    args.extend_from_slice(extra);
    let d = Deployment::new(
        "embedded",
        vec![ServerProcess::start(&args, &[])],
        None,
        None,
    );
    d.init().await;
    let root = d.tokens("root", ROOT_PASSWORD).await.0;
    (d, root)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_databases_writer_cannot_send_the_stored_password_to_his_own_host() {
    if !Postgres::available() {
        return;
    }
    let pg = Postgres::create();
    pg.exec("CREATE TABLE orders (id BIGINT PRIMARY KEY); INSERT INTO orders VALUES (7);");
    for d in Deployment::all(&["--master-key", K1, "--scan-interval", "0"]) {
        d.init().await;
        let root = d.tokens("root", ROOT_PASSWORD).await.0;
        let role = d
            .post(
                "/api/roles",
                json!({"name": "db-admin", "permissions": ["databases:read", "databases:write"]}),
                Some(&root),
            )
            .await;
        assert_eq!(role.status, 200, "{:?}", role.body);
        d.create_user(&root, "mallory", "mallory password 1", &["db-admin"])
            .await;
        let mallory = d.tokens("mallory", "mallory password 1").await.0;
        let guid = register(&d, &root, pg_form(&pg)).await;
        let fake = FakePostgres::start();

        // The attack: the target moved to her listener, the password kept,
        // then a connection asked for.
        let mut answers = Vec::new();
        for change in [
            json!({"address": fake.address()}),
            json!({"address": fake.address(), "username": "mallory"}),
            json!({"address": fake.address(), "db_name": "other"}),
            // Her own CA, for a man in the middle under `verify`.
            json!({"tls_ca": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}),
        ] {
            answers.push(update(&d, &mallory, &guid, change).await);
            initialize(&d, &mallory, &guid).await;
        }
        assert!(
            !fake.saw_the_secret(),
            "{}: the listener received the stored password",
            d.name
        );
        for answer in &answers {
            answer.assert_refused(400, 40002);
            assert!(answer.msg().starts_with("password:"), "{}", answer.msg());
            assert!(
                !answer.body.to_string().contains(SECRET),
                "{:?}",
                answer.body
            );
        }
        let record = d
            .get(&format!("/api/database/{guid}"), Some(&mallory))
            .await;
        assert_eq!(
            record.body["data"]["address"], "127.0.0.1:5432",
            "unchanged"
        );
        // Changing only what does not take the password elsewhere is fine,
        // and the real database is still reached with it.
        let renamed = update(&d, &mallory, &guid, json!({"system_code": "erp2"})).await;
        assert_eq!(renamed.status, 200, "{:?}", renamed.body);
        let done = initialize(&d, &mallory, &guid).await;
        assert_eq!(done.status, 200, "{}: {:?}", d.name, done.body);

        // Moving it with the password cleared is allowed: the listener gets
        // a connection, and no password.
        let cleared = update(
            &d,
            &mallory,
            &guid,
            json!({"address": fake.address(), "password": ""}),
        )
        .await;
        assert_eq!(cleared.status, 200, "{:?}", cleared.body);
        assert_eq!(cleared.body["data"]["password_masked"], "");
        let failed = initialize(&d, &mallory, &guid).await;
        assert_eq!(failed.status, 502, "{:?}", failed.body);
        assert!(fake.connections() > 0, "the listener was reached");
        assert!(!fake.saw_the_secret(), "{}", d.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_moved_to_another_host_in_the_store_does_not_decrypt() {
    let url = kxy_e2e::require_redis!();
    if !Postgres::available() {
        return;
    }
    let pg = Postgres::create();
    let prefix = KeyPrefix::new(&url, "db_aad");
    let mut args = prefix.store_args();
    args.extend(["--master-key", K1, "--scan-interval", "0"]);
    let d = Deployment::new("redis", vec![ServerProcess::start(&args, &[])], None, None);
    d.init().await;
    let root = d.tokens("root", ROOT_PASSWORD).await.0;
    let guid = register(&d, &root, pg_form(&pg)).await;
    assert_eq!(initialize(&d, &root, &guid).await.status, 200);

    // Someone with write access to Redis (not to kxy) edits the host.
    let fake = FakePostgres::start();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut redis = client.get_connection().unwrap();
    let key = format!("{}:rec:databases", prefix.as_str());
    let stored: String = redis::cmd("HGET")
        .arg(&key)
        .arg(&guid)
        .query(&mut redis)
        .unwrap();
    let (version, document) = stored.split_once(':').unwrap();
    let mut record: Value = serde_json::from_str(document).unwrap();
    record["address"] = json!(fake.address());
    let _: i64 = redis::cmd("HSET")
        .arg(&key)
        .arg(&guid)
        .arg(format!("{version}:{record}"))
        .query(&mut redis)
        .unwrap();

    let answer = initialize(&d, &root, &guid).await;
    assert!(
        !fake.saw_the_secret(),
        "the edited record sent the password to the new host"
    );
    answer.assert_refused(500, 50002);
    assert!(answer.msg().contains("integrity"), "{}", answer.msg());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_key_rotation_reseals_database_passwords_too() {
    if !MariaDb::available() {
        return;
    }
    let db = MariaDb::create();
    db.exec("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (41);");
    let user = format!("{}_rot", db.name);
    MariaDb::admin(&format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY '{SECRET}'; GRANT ALL ON {}.* TO '{user}'@'%';",
        db.name
    ));
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_owned();
    let start = |keys: &[&str]| {
        let mut args = vec!["--data-dir", data_dir.as_str(), "--scan-interval", "0"];
        args.extend_from_slice(keys);
        ServerProcess::start(&args, &[])
    };

    let d = Deployment::new("embedded", vec![start(&["--master-key", K1])], None, None);
    d.init().await;
    let root = d.tokens("root", ROOT_PASSWORD).await.0;
    let credential = d
        .post(
            "/api/credentials",
            json!({"name": "upstream", "model_id": "m", "api_key": "sk-upstream-rotated-1"}),
            Some(&root),
        )
        .await;
    assert_eq!(credential.status, 200, "{:?}", credential.body);
    let credential = credential.body["data"]["id"].as_str().unwrap().to_owned();
    let guid = register(
        &d,
        &root,
        json!({"system_code": "crm", "db_type": "mysql", "address": "127.0.0.1:3306",
               "db_name": db.name, "username": user, "password": SECRET}),
    )
    .await;
    assert_eq!(initialize(&d, &root, &guid).await.status, 200);
    d.servers.into_iter().for_each(ServerProcess::kill);

    let out = run_cli(
        &[
            "--data-dir",
            &data_dir,
            "--master-key",
            K2,
            "--previous-master-keys",
            K1,
            "credentials",
            "rotate",
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("re-sealed 1 credentials"), "{stdout}");
    assert!(
        stdout.contains("re-sealed 1 database passwords"),
        "{stdout}"
    );
    assert!(!stdout.contains(SECRET), "{stdout}");

    // Only the new key now: every kind of sealed secret still opens.
    let d = Deployment::new("embedded", vec![start(&["--master-key", K2])], None, None);
    let root = d.tokens("root", ROOT_PASSWORD).await.0;
    let revealed = d
        .get(
            &format!("/api/credentials/{credential}/secret"),
            Some(&root),
        )
        .await;
    assert_eq!(revealed.status, 200, "{:?}", revealed.body);
    assert!(
        revealed.body.to_string().contains("sk-upstream-rotated-1"),
        "{:?}",
        revealed.body
    );
    let connected = initialize(&d, &root, &guid).await;
    assert_eq!(connected.status, 200, "{:?}", connected.body);
    assert_eq!(
        connected.body["data"]["registered"][0]["outcome"],
        "unchanged"
    );
    MariaDb::admin(&format!("DROP USER '{user}'@'%'"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_password_masks_show_at_most_four_characters() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(
        &[
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--master-key",
            K1,
        ],
        &[],
    );
    let d = Deployment::new("embedded", vec![server], None, None);
    d.init().await;
    let root = d.tokens("root", ROOT_PASSWORD).await.0;
    for password in ["short", "123456789", "the right password", SECRET] {
        let guid = register(
            &d,
            &root,
            json!({"system_code": "crm", "db_type": "mysql", "address": "127.0.0.1:3306",
                   "db_name": "shop", "username": "app", "password": password}),
        )
        .await;
        let one = d.get(&format!("/api/database/{guid}"), Some(&root)).await;
        let masked = one.body["data"]["password_masked"].as_str().unwrap();
        assert_eq!(masked.chars().count(), password.chars().count());
        assert!(shown_characters(masked) <= 4, "{password} → {masked}");
    }
    let list = d.get("/api/database/list", Some(&root)).await;
    for db in list.body["data"].as_array().unwrap() {
        let masked = db["password_masked"].as_str().unwrap();
        assert!(shown_characters(masked) <= 4, "{masked}");
    }
    assert!(!list.body.to_string().contains("right pass"));
}

/// A one-table SQLite file at `path`.
fn sqlite_file(path: &std::path::Path) {
    let script = "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); \
                  c.executescript('CREATE TABLE items (id INTEGER PRIMARY KEY); INSERT INTO items VALUES (12);'); c.commit()";
    let status = std::process::Command::new("python3")
        .args(["-c", script, path.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn sqlite_form(path: &str) -> Value {
    json!({"system_code": "pos", "db_type": "sqlite", "db_name": path})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_registration_cannot_read_files_outside_the_sqlite_dir() {
    let root_dir = tempfile::tempdir().unwrap();
    let allowed = root_dir.path().join("allowed");
    std::fs::create_dir(&allowed).unwrap();
    let inside = allowed.join("shop.db");
    let outside = root_dir.path().join("secret.db");
    sqlite_file(&inside);
    sqlite_file(&outside);
    std::os::unix::fs::symlink(&outside, allowed.join("link.db")).unwrap();
    let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();

    // Off by default: SQLite registration refused, naming the flag.
    let data = tempfile::tempdir().unwrap();
    let (d, root) = embedded_with_root(&data, &[]).await;
    for file in [path(&outside), "/etc/passwd".into()] {
        let answer = d
            .post("/api/database/add", sqlite_form(&file), Some(&root))
            .await;
        answer.assert_refused(400, 40002);
        assert!(answer.msg().contains("--sqlite-dir"), "{}", answer.msg());
    }
    assert_eq!(
        d.get("/api/database/list", Some(&root)).await.body["data"],
        json!([])
    );
    drop(d);

    // With a directory (here through its environment variable).
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(
        &[
            "--data-dir",
            data.path().to_str().unwrap(),
            "--master-key",
            K1,
        ],
        &[("KXY_SQLITE_DIR", allowed.to_str().unwrap())],
    );
    let d = Deployment::new("embedded", vec![server], None, None);
    d.init().await;
    let root = d.tokens("root", ROOT_PASSWORD).await.0;
    for file in [
        path(&outside),
        format!("{}/../secret.db", path(&allowed)),
        "../secret.db".into(),
        path(&allowed.join("link.db")),
        "/etc/passwd".into(),
    ] {
        let answer = d
            .post("/api/database/add", sqlite_form(&file), Some(&root))
            .await;
        answer.assert_refused(400, 40002);
        assert!(
            answer.msg().starts_with("db_name:"),
            "{file}: {}",
            answer.msg()
        );
    }
    assert_eq!(
        d.get("/api/database/list", Some(&root)).await.body["data"],
        json!([])
    );
    let guid = register(&d, &root, sqlite_form(&path(&inside))).await;
    assert_eq!(initialize(&d, &root, &guid).await.status, 200);
    let relative = register(&d, &root, sqlite_form("shop.db")).await;
    assert_eq!(initialize(&d, &root, &relative).await.status, 200);
    let moved = update(&d, &root, &guid, json!({"db_name": path(&outside)})).await;
    moved.assert_refused(400, 40002);

    // A file swapped for a symlink out after registration is refused when
    // the server opens it.
    std::fs::remove_file(&inside).unwrap();
    std::os::unix::fs::symlink(&outside, &inside).unwrap();
    let answer = initialize(&d, &root, &guid).await;
    assert_eq!(answer.status, 400, "{:?}", answer.body);
    assert!(answer.msg().contains("--sqlite-dir"), "{}", answer.msg());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_hosts_can_be_limited_to_an_allow_list() {
    if !Postgres::available() {
        return;
    }
    let pg = Postgres::create();
    let data = tempfile::tempdir().unwrap();
    let (d, root) =
        embedded_with_root(&data, &["--database-hosts", "127.0.0.1:5432, db.internal"]).await;
    let fake = FakePostgres::start();
    let mut form = pg_form(&pg);
    for address in [
        fake.address(),
        "127.0.0.1:3306".into(),
        "db.internal.evil:5432".into(),
    ] {
        form["address"] = json!(address);
        let answer = d.post("/api/database/add", form.clone(), Some(&root)).await;
        answer.assert_refused(400, 40002);
        let msg = answer.msg();
        assert!(
            msg.starts_with("address:") && msg.contains("--database-hosts"),
            "{msg}"
        );
    }
    form["address"] = json!("DB.internal:15432");
    register(&d, &root, form.clone()).await;
    let guid = register(&d, &root, pg_form(&pg)).await;
    assert_eq!(initialize(&d, &root, &guid).await.status, 200);
    let moved = update(
        &d,
        &root,
        &guid,
        json!({"address": fake.address(), "password": ""}),
    )
    .await;
    moved.assert_refused(400, 40002);
    assert!(moved.msg().contains("--database-hosts"), "{}", moved.msg());
    assert_eq!(fake.connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_require_and_verify_are_enforced() {
    if !Postgres::available() || !MariaDb::available() {
        return;
    }
    let pg = Postgres::create();
    pg.exec("CREATE TABLE orders (id BIGINT PRIMARY KEY);");
    let my = MariaDb::create();
    let data = tempfile::tempdir().unwrap();
    let (d, root) = embedded_with_root(&data, &["--scan-interval", "0"]).await;
    let with_tls = |mut form: Value, tls: &str| {
        form["tls"] = json!(tls);
        form
    };

    // This PostgreSQL serves TLS with a self-signed certificate: `require`
    // connects (encrypted, unverified), `verify` refuses the certificate.
    let required = register(&d, &root, with_tls(pg_form(&pg), "require")).await;
    let answer = initialize(&d, &root, &required).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let verified = register(&d, &root, with_tls(pg_form(&pg), "verify")).await;
    let answer = initialize(&d, &root, &verified).await;
    assert_eq!(answer.status, 502, "{:?}", answer.body);
    assert!(answer.msg().contains("certificate"), "{}", answer.msg());

    // This MariaDB has no TLS: `require` refuses rather than fall back.
    let form = json!({"system_code": "crm", "db_type": "mysql", "address": "127.0.0.1:3306",
                      "db_name": my.name, "username": "root", "tls": "require"});
    let plain = register(&d, &root, form).await;
    assert_eq!(initialize(&d, &root, &plain).await.status, 502);

    // A man in the middle that declines TLS never gets the password.
    let fake = FakePostgres::start();
    let mut form = with_tls(pg_form(&pg), "require");
    form["address"] = json!(fake.address());
    let intercepted = register(&d, &root, form).await;
    assert_eq!(initialize(&d, &root, &intercepted).await.status, 502);
    assert!(fake.connections() > 0, "the listener was reached");
    assert!(!fake.saw_the_secret(), "the password went out in clear");

    // Weakening TLS is a change of target: it needs the password again.
    let downgraded = update(&d, &root, &verified, json!({"tls": "prefer"})).await;
    downgraded.assert_refused(400, 40002);
    assert!(
        downgraded.msg().starts_with("password:"),
        "{}",
        downgraded.msg()
    );
    let bad = d
        .post(
            "/api/database/add",
            with_tls(pg_form(&pg), "sometimes"),
            Some(&root),
        )
        .await;
    assert_eq!(bad.status, 400, "{:?}", bad.body);
    assert!(bad.msg().contains("tls"), "{}", bad.msg());
}
