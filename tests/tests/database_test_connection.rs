//! Testing a database connection: `POST /api/database/{guid}/test` (the
//! stored settings) and `POST /api/database/test` (an unsaved form) connect,
//! say what they found, and change nothing; a failure is 502/50201 in words
//! a person can act on, without the password.

use kxy_e2e::api::Answer;
use kxy_e2e::deploy::{Deployment, ROOT_PASSWORD};
use kxy_e2e::redis_env::free_port;
use kxy_e2e::server::ServerProcess;
use kxy_e2e::sql_env::MariaDb;
use serde_json::{Value, json};

const MASTER_KEY: &str = "5a5b5c5d5e5f60616263646566676869707172737475767778797a7b7c7d7e7f";

/// An embedded-store server without a scanner (nothing but the tests here
/// connects), its SQLite directory and the root's token.
async fn server(sqlite_dir: &std::path::Path) -> (Deployment, String) {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_owned();
    let server = ServerProcess::start(
        &[
            "--data-dir",
            &data_dir,
            "--scan-interval",
            "0",
            "--master-key",
            MASTER_KEY,
            "--sqlite-dir",
            sqlite_dir.to_str().unwrap(),
        ],
        &[],
    );
    let d = Deployment::new("embedded", vec![server], Some(dir), None);
    d.init().await;
    let token = d.tokens("root", ROOT_PASSWORD).await.0;
    (d, token)
}

async fn register(d: &Deployment, token: &str, body: Value) -> String {
    let answer = d.post("/api/database/add", body, Some(token)).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    answer.body["data"]["guid"].as_str().unwrap().to_owned()
}

async fn test(d: &Deployment, token: &str, guid: &str) -> Answer {
    d.post(
        &format!("/api/database/{guid}/test"),
        json!({}),
        Some(token),
    )
    .await
}

/// Everything a test could have changed: the counters, the registrations
/// and the discovered tables of `guid`.
async fn state(d: &Deployment, token: &str, guid: &str) -> Value {
    json!([
        d.get("/api/counters", Some(token)).await.body["data"],
        d.get("/api/database/list", Some(token)).await.body["data"],
        d.get(
            &format!("/api/database/{guid}/discovered-tables"),
            Some(token)
        )
        .await
        .body["data"],
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_or_unsaved_sqlite_database_is_tested_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shop.db");
    let script = "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); \
                  c.executescript('CREATE TABLE items (id INTEGER PRIMARY KEY); \
                  CREATE TABLE tags (name TEXT PRIMARY KEY);'); c.commit()";
    let status = std::process::Command::new("python3")
        .args(["-c", script, file.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    let (d, root) = server(dir.path()).await;
    let guid = register(
        &d,
        &root,
        json!({"system_code": "pos", "db_type": "sqlite", "db_name": "shop.db"}),
    )
    .await;
    let before = state(&d, &root, &guid).await;

    let answer = test(&d, &root, &guid).await;
    assert_eq!(
        (answer.status, answer.code()),
        (200, 0),
        "{:?}",
        answer.body
    );
    let data = &answer.body["data"];
    assert_eq!(data["db_type"], "sqlite");
    assert_eq!(
        (data["tables"].as_u64(), data["numberable"].as_u64()),
        (Some(2), Some(1))
    );
    assert!(
        data["server_version"]
            .as_str()
            .unwrap()
            .starts_with("SQLite 3."),
        "{data}"
    );
    assert!(
        answer.msg().contains("2 tables visible, 1 can be numbered"),
        "{}",
        answer.msg()
    );
    assert_eq!(
        state(&d, &root, &guid).await,
        before,
        "a test changes nothing"
    );

    // The same, unsaved: answered, nothing stored.
    let form = json!({"system_code": "pos", "db_type": "sqlite", "db_name": "shop.db"});
    let answer = d.post("/api/database/test", form, Some(&root)).await;
    assert_eq!(
        (answer.status, answer.code()),
        (200, 0),
        "{:?}",
        answer.body
    );
    assert_eq!(answer.body["data"]["tables"], 2);
    assert_eq!(
        state(&d, &root, &guid).await,
        before,
        "nothing was registered"
    );

    // An unsaved form is checked like a registration: the field is named.
    let outside = json!({"system_code": "pos", "db_type": "sqlite", "db_name": "../shop.db"});
    let answer = d.post("/api/database/test", outside, Some(&root)).await;
    answer.assert_refused(400, 40002);
    assert!(answer.msg().starts_with("db_name: "), "{}", answer.msg());

    // A file gone since it was registered: the policy's check, in words.
    std::fs::remove_file(&file).unwrap();
    let answer = test(&d, &root, &guid).await;
    answer.assert_refused(400, 40002);
    assert!(
        answer
            .msg()
            .starts_with("db_name: the SQLite file must be an existing file"),
        "{}",
        answer.msg()
    );

    // Unknown databases are 404.
    test(&d, &root, "0123456789abcdef0123456789abcdef")
        .await
        .assert_refused(404, 40402);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_found_refused_and_unreachable_and_who_may_test() {
    if !MariaDb::available() {
        return;
    }
    let db = MariaDb::create();
    db.exec("CREATE TABLE a (id INT PRIMARY KEY); CREATE TABLE b (x INT);");
    let user = format!("{}_u", db.name);
    MariaDb::admin(&format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY 'the right password'; GRANT ALL ON {}.* TO '{user}'@'%';",
        db.name
    ));
    let dir = tempfile::tempdir().unwrap();
    let (d, root) = server(dir.path()).await;
    let form = |password: &str, address: &str| json!({"system_code": "crm", "db_type": "mysql", "address": address, "db_name": db.name, "username": user, "password": password});
    let good = register(&d, &root, form("the right password", "127.0.0.1:3306")).await;
    let before = state(&d, &root, &good).await;
    let answer = test(&d, &root, &good).await;
    assert_eq!(
        (answer.status, answer.code()),
        (200, 0),
        "{:?}",
        answer.body
    );
    let data = &answer.body["data"];
    assert!(
        data["server_version"].as_str().unwrap().contains("MariaDB"),
        "{data}"
    );
    assert_eq!(
        (data["tables"].as_u64(), data["numberable"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(
        state(&d, &root, &good).await,
        before,
        "a test changes nothing"
    );

    // A wrong password: the database's refusal, explained, never the password.
    let wrong = d
        .post(
            "/api/database/test",
            form("a wrong password", "127.0.0.1:3306"),
            Some(&root),
        )
        .await;
    wrong.assert_refused(502, 50201);
    let msg = wrong.msg();
    assert!(
        msg.starts_with(&format!(
            "cannot connect to mysql database {} at 127.0.0.1:3306:",
            db.name
        )),
        "{msg}"
    );
    assert!(msg.contains("Access denied"), "{msg}");
    assert!(
        msg.ends_with("(the database refused the user name or password)"),
        "{msg}"
    );
    assert!(!msg.contains("a wrong password"), "{msg}");

    // A closed port: what to check.
    let port = free_port();
    let closed = register(
        &d,
        &root,
        form("the right password", &format!("127.0.0.1:{port}")),
    )
    .await;
    let answer = test(&d, &root, &closed).await;
    answer.assert_refused(502, 50201);
    assert!(
        answer.msg().ends_with(
            "(nothing accepts connections there: is the database running, and is the port right?)"
        ),
        "{}",
        answer.msg()
    );
    assert!(
        !answer.msg().contains("the right password"),
        "{}",
        answer.msg()
    );

    // A reader may test what is stored, not send the server elsewhere.
    let role = d
        .post(
            "/api/roles",
            json!({"name": "db-reader", "permissions": ["databases:read"]}),
            Some(&root),
        )
        .await;
    assert_eq!(role.status, 200, "{:?}", role.body);
    d.create_user(&root, "reader", "reader password 1", &["db-reader"])
        .await;
    let reader = d.tokens("reader", "reader password 1").await.0;
    let answer = test(&d, &reader, &good).await;
    assert_eq!(
        (answer.status, answer.code()),
        (200, 0),
        "{:?}",
        answer.body
    );
    d.post(
        "/api/database/test",
        form("the right password", "127.0.0.1:3306"),
        Some(&reader),
    )
    .await
    .assert_refused(403, 40301);
    MariaDb::admin(&format!("DROP USER '{user}'@'%'"));
}
