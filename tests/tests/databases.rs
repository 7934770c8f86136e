//! Registered databases against the machine's real MariaDB and PostgreSQL:
//! initialize, allocate and insert, scan and approve, re-initialize, and
//! failures that leave everything else alone.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kxy_e2e::api::Answer;
use kxy_e2e::deploy::{Deployment, ROOT_PASSWORD};
use kxy_e2e::redis_env::free_port;
use kxy_e2e::server::{ServerProcess, run_cli};
use kxy_e2e::sql_env::{MariaDb, Postgres};
use serde_json::{Value, json};

const MASTER_KEY: &str = "5a5b5c5d5e5f60616263646566676869707172737475767778797a7b7c7d7e7f";

/// An embedded-store server with a fast scanner, its data dir and a token.
async fn server(extra: &[&str]) -> (Deployment, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_owned();
    let mut args = vec![
        "--data-dir",
        data_dir.as_str(),
        "--scan-interval",
        "1",
        "--master-key",
        MASTER_KEY,
    ];
    args.extend_from_slice(extra);
    let server = ServerProcess::start(&args, &[]);
    let d = Deployment::new("embedded", vec![server], Some(dir), None);
    d.init().await;
    let token = d.tokens("root", ROOT_PASSWORD).await.0;
    (d, token, data_dir)
}

async fn register(d: &Deployment, token: &str, body: Value) -> String {
    let answer = d.post("/api/database/add", body, Some(token)).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert!(answer.body["data"].get("password").is_none());
    answer.body["data"]["guid"].as_str().unwrap().to_owned()
}

async fn initialize(d: &Deployment, token: &str, guid: &str) -> Answer {
    d.post(
        &format!("/api/database/initialize/{guid}"),
        json!({}),
        Some(token),
    )
    .await
}

/// table → (next_id, outcome) and table → skip reason, from a report.
fn outcome(answer: &Answer) -> (HashMap<String, (i64, String)>, HashMap<String, String>) {
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let data = &answer.body["data"];
    assert_eq!(
        data["tables_done"], data["tables_total"],
        "progress reaches the end"
    );
    let registered = data["registered"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["table"].as_str().unwrap().to_owned(),
                (
                    r["next_id"].as_i64().unwrap(),
                    r["outcome"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect();
    let skipped = data["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["table"].as_str().unwrap().to_owned(),
                s["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (registered, skipped)
}

async fn allocate(d: &Deployment, system: &str, db: &str, table: &str, count: i64) -> (i64, i64) {
    let body = json!({"system_code": system, "db_name": db, "table_name": table, "field_name": "id", "segment_count": count});
    let answer = d.post("/api/segment/allocate", body, None).await;
    let segment = answer.segment();
    (segment.start, segment.end)
}

/// Polls the discovered tables until `table` shows up (the scanner runs
/// every second here).
async fn discovered(d: &Deployment, token: &str, guid: &str, table: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = d
            .get(
                &format!("/api/database/{guid}/discovered-tables"),
                Some(token),
            )
            .await;
        let tables = answer.body["data"]["tables"].clone();
        if tables
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["table"] == table)
        {
            return tables;
        }
        assert!(
            Instant::now() < deadline,
            "{table} never discovered: {tables}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_initialize_allocate_insert_scan_approve_reinitialize() {
    if !MariaDb::available() {
        return;
    }
    let db = MariaDb::create();
    db.exec(
        "CREATE TABLE t_int (id INT PRIMARY KEY, v TEXT); INSERT INTO t_int VALUES (5,'a'),(17,'b');
         CREATE TABLE t_big (id BIGINT PRIMARY KEY); INSERT INTO t_big VALUES (9007199254740993);
         CREATE TABLE t_unsigned (id INT UNSIGNED PRIMARY KEY); INSERT INTO t_unsigned VALUES (4000000000);
         CREATE TABLE t_tiny (id TINYINT UNSIGNED PRIMARY KEY); INSERT INTO t_tiny VALUES (200);
         CREATE TABLE t_huge (id BIGINT UNSIGNED PRIMARY KEY); INSERT INTO t_huge VALUES (18446744073709551615);
         CREATE TABLE t_composite (a INT, b INT, PRIMARY KEY (a, b));
         CREATE TABLE t_text (code VARCHAR(10) PRIMARY KEY);
         CREATE TABLE t_nokey (x INT);
         CREATE TABLE t_empty (id BIGINT PRIMARY KEY);",
    );
    let (d, token, data_dir) = server(&[]).await;
    let guid = register(
        &d,
        &token,
        json!({"system_code": "crm", "db_type": "mysql", "address": "127.0.0.1:3306", "db_name": db.name, "username": "root", "password": ""}),
    )
    .await;

    let (registered, skipped) = outcome(&initialize(&d, &token, &guid).await);
    let next = |t: &str| registered[t].0;
    assert_eq!(next("t_int"), 18);
    assert_eq!(next("t_big"), 9_007_199_254_740_994);
    assert_eq!(next("t_unsigned"), 4_000_000_001);
    assert_eq!(next("t_tiny"), 201);
    assert_eq!(next("t_empty"), 1);
    assert_eq!(skipped["t_composite"], "composite primary key (2 columns)");
    assert_eq!(
        skipped["t_text"],
        "primary key code is varchar, not an integer"
    );
    assert_eq!(skipped["t_nokey"], "no primary key");
    assert!(
        skipped["t_huge"].contains("beyond 2^63-1"),
        "{}",
        skipped["t_huge"]
    );

    // IDs from the scanned counter go into the table without conflicts.
    let (start, end) = allocate(&d, "crm", &db.name, "t_int", 500).await;
    assert_eq!(start, 18);
    let values: Vec<String> = (start..=end).map(|id| format!("({id},'x')")).collect();
    db.exec(&format!("INSERT INTO t_int VALUES {}", values.join(",")));
    assert_eq!(db.exec("SELECT COUNT(*) FROM t_int").trim(), "502");

    // A new table is discovered by the scanner, then approved.
    db.exec("CREATE TABLE t_new (id BIGINT PRIMARY KEY); INSERT INTO t_new VALUES (77);");
    let found = discovered(&d, &token, &guid, "t_new").await;
    assert_eq!(
        found.as_array().unwrap().len(),
        1,
        "registered tables are not rediscovered: {found}"
    );
    let approved = d
        .post(
            &format!("/api/database/{guid}/discovered-tables/t_new/approve"),
            json!({}),
            Some(&token),
        )
        .await;
    assert_eq!(approved.body["data"]["next_id"], 78, "{:?}", approved.body);
    let after = d
        .get(
            &format!("/api/database/{guid}/discovered-tables"),
            Some(&token),
        )
        .await;
    assert_eq!(after.body["data"]["tables"], json!([]));

    // Rows with higher IDs appear: re-initializing moves counters up, never down.
    db.exec("INSERT INTO t_int VALUES (100000,'late'); INSERT INTO t_empty VALUES (3);");
    let (again, _) = outcome(&initialize(&d, &token, &guid).await);
    assert_eq!(again["t_int"], (100_001, "raised".to_owned()));
    assert_eq!(again["t_empty"], (4, "raised".to_owned()));
    assert_eq!(
        again["t_big"],
        (9_007_199_254_740_994, "unchanged".to_owned())
    );
    let (start, _) = allocate(&d, "crm", &db.name, "t_int", 1).await;
    assert_eq!(start, 100_001);

    // The seed's custom counter.
    let custom = d
        .post(
            &format!("/api/database/{guid}/add-config"),
            json!({"field_name": "order_no", "initial_value": 1000}),
            Some(&token),
        )
        .await;
    assert_eq!(custom.body["data"]["next_id"], 1001, "{:?}", custom.body);
    let body = json!({"system_code": "crm", "db_name": db.name, "table_name": "custom", "field_name": "order_no", "segment_count": 1});
    assert_eq!(
        d.post("/api/segment/allocate", body, None)
            .await
            .segment()
            .start,
        1001
    );

    // The CLI initializes too (with the server stopped: the store is its).
    d.servers.into_iter().for_each(ServerProcess::kill);
    db.exec("INSERT INTO t_tiny VALUES (250);");
    let out = run_cli(
        &[
            "--data-dir",
            &data_dir,
            "--master-key",
            MASTER_KEY,
            "databases",
            "initialize",
            &guid,
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("registered t_tiny.id: next ID 251 (raised)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("6 of 10 tables registered, 4 skipped"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_schemas_and_integer_widths() {
    if !Postgres::available() {
        return;
    }
    let db = Postgres::create();
    db.exec(
        "CREATE TABLE orders (id SERIAL PRIMARY KEY, note TEXT); INSERT INTO orders (note) VALUES ('a'), ('b'), ('c');
         CREATE TABLE big (id BIGINT PRIMARY KEY); INSERT INTO big VALUES (9223372036854775000);
         CREATE TABLE small (id SMALLINT PRIMARY KEY); INSERT INTO small VALUES (-5);
         CREATE SCHEMA sales;
         CREATE TABLE sales.invoices (id BIGINT PRIMARY KEY, total NUMERIC); INSERT INTO sales.invoices VALUES (41, 1);
         CREATE TABLE pair (a INT, b INT, PRIMARY KEY (a, b));
         CREATE TABLE named (code TEXT PRIMARY KEY);
         CREATE TABLE heap (x INT);
         CREATE TABLE uuids (id UUID PRIMARY KEY);",
    );
    let (d, token, _) = server(&[]).await;
    let guid = register(
        &d,
        &token,
        json!({"system_code": "erp", "db_type": "postgresql", "address": "127.0.0.1:5432", "db_name": db.name, "username": "postgres", "password": ""}),
    )
    .await;
    let (registered, skipped) = outcome(&initialize(&d, &token, &guid).await);
    // Its sequence hands out 4 next: kxy starts above that.
    assert_eq!(registered["orders"].0, 5);
    assert_eq!(registered["big"].0, 9_223_372_036_854_775_001);
    assert_eq!(
        registered["small"].0, 1,
        "a negative max still starts IDs at 1"
    );
    assert_eq!(
        registered["sales.invoices"].0, 42,
        "tables outside public are schema.table"
    );
    assert_eq!(skipped["pair"], "composite primary key (2 columns)");
    assert_eq!(skipped["named"], "primary key code is text, not an integer");
    assert_eq!(skipped["uuids"], "primary key id is uuid, not an integer");
    assert_eq!(skipped["heap"], "no primary key");

    let (start, end) = allocate(&d, "erp", &db.name, "sales.invoices", 100).await;
    let values: Vec<String> = (start..=end).map(|id| format!("({id}, 0)")).collect();
    db.exec(&format!(
        "INSERT INTO sales.invoices VALUES {}",
        values.join(",")
    ));
    assert_eq!(db.exec("SELECT COUNT(*) FROM sales.invoices").trim(), "101");

    db.exec("CREATE TABLE sales.refunds (id INTEGER PRIMARY KEY); INSERT INTO sales.refunds VALUES (9);");
    discovered(&d, &token, &guid, "sales.refunds").await;
    let approved = d
        .post(
            &format!("/api/database/{guid}/discovered-tables/sales.refunds/approve"),
            json!({}),
            Some(&token),
        )
        .await;
    assert_eq!(approved.body["data"]["next_id"], 10, "{:?}", approved.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_files_are_scanned_too() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shop.db");
    let script = "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); \
                  c.executescript('CREATE TABLE items (id INTEGER PRIMARY KEY, n TEXT); INSERT INTO items VALUES (12, \"a\"); \
                  CREATE TABLE tags (name TEXT PRIMARY KEY);'); c.commit()";
    let status = std::process::Command::new("python3")
        .args(["-c", script, file.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    let (d, token, _) = server(&["--sqlite-dir", dir.path().to_str().unwrap()]).await;
    let guid = register(
        &d,
        &token,
        json!({"system_code": "pos", "db_type": "sqlite", "db_name": file.to_str().unwrap()}),
    )
    .await;
    let view = d.get(&format!("/api/database/{guid}"), Some(&token)).await;
    assert_eq!(view.body["data"]["counter_db_name"], "shop");
    let (registered, skipped) = outcome(&initialize(&d, &token, &guid).await);
    assert_eq!(registered["items"].0, 13);
    assert_eq!(skipped["tags"], "primary key name is TEXT, not an integer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_password_or_host_gives_a_clear_error_and_changes_nothing_else() {
    if !MariaDb::available() || !Postgres::available() {
        return;
    }
    let good = MariaDb::create();
    good.exec("CREATE TABLE a (id INT PRIMARY KEY); INSERT INTO a VALUES (10);");
    let user = format!("{}_u", good.name);
    MariaDb::admin(&format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY 'the right password'; GRANT ALL ON {}.* TO '{user}'@'%';",
        good.name
    ));
    let (d, token, _) = server(&[]).await;
    let fine = register(
        &d,
        &token,
        json!({"system_code": "crm", "db_type": "mysql", "address": "127.0.0.1:3306", "db_name": good.name, "username": user, "password": "the right password"}),
    )
    .await;
    let list = d.get("/api/database/list", Some(&token)).await;
    assert_eq!(
        list.body["data"][0]["password_masked"],
        "th**************rd"
    );
    assert!(!list.body.to_string().contains("the right password"));
    outcome(&initialize(&d, &token, &fine).await);
    let counters_before = d.get("/api/counters", Some(&token)).await.body["data"].clone();

    let wrong = register(
        &d,
        &token,
        json!({"system_code": "crm", "db_type": "mysql", "address": "127.0.0.1:3306", "db_name": good.name, "username": user, "password": "a wrong password"}),
    )
    .await;
    let answer = initialize(&d, &token, &wrong).await;
    assert_eq!(
        (answer.status, answer.code()),
        (502, 50201),
        "{:?}",
        answer.body
    );
    let msg = answer.msg();
    assert!(
        msg.starts_with(&format!(
            "cannot connect to mysql database {} at 127.0.0.1:3306:",
            good.name
        )),
        "{msg}"
    );
    assert!(msg.contains("Access denied"), "{msg}");
    assert!(
        !msg.contains("a wrong password"),
        "the message holds the password: {msg}"
    );

    let port = free_port();
    let nowhere = register(
        &d,
        &token,
        json!({"system_code": "erp", "db_type": "postgresql", "address": format!("127.0.0.1:{port}"), "db_name": "ghost", "username": "postgres", "password": ""}),
    )
    .await;
    let answer = initialize(&d, &token, &nowhere).await;
    assert_eq!(answer.status, 502);
    assert!(
        answer.msg().starts_with(&format!(
            "cannot connect to postgresql database ghost at 127.0.0.1:{port}:"
        )),
        "{}",
        answer.msg()
    );

    assert_eq!(
        d.get("/api/counters", Some(&token)).await.body["data"],
        counters_before,
        "nothing else changed"
    );
    // The scanner keeps going past the broken databases.
    good.exec("CREATE TABLE b (id INT PRIMARY KEY);");
    discovered(&d, &token, &fine, "b").await;
    assert!(d.servers[0].logs().contains("scan failed, will retry"));
    assert!(!d.servers[0].logs().contains("a wrong password"));

    let refused = d
        .post("/api/database/add", json!({"system_code": "x", "db_type": "oracle", "address": "h:1521", "db_name": "d", "username": "u"}), Some(&token))
        .await;
    assert_eq!(refused.status, 400);
    assert!(
        refused.msg().contains("not supported yet"),
        "{}",
        refused.msg()
    );
    MariaDb::admin(&format!("DROP USER '{user}'@'%'"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_instances_on_redis_one_scans_per_interval() {
    let Some(url) = kxy_e2e::redis_env::shared_redis() else {
        return;
    };
    if !MariaDb::available() {
        return;
    }
    let db = MariaDb::create();
    db.exec("CREATE TABLE a (id INT PRIMARY KEY);");
    let prefix = kxy_e2e::redis_env::KeyPrefix::new(&url, "scan_lease");
    let mut args = prefix.store_args();
    args.extend(["--scan-interval", "1"]);
    let first = ServerProcess::start(&args, &[]);
    // Start the second half an interval later, so their passes interleave.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = ServerProcess::start(&args, &[]);
    let d = Deployment::new("redis x2", vec![first, second], None, None);
    d.init().await;
    let token = d.tokens("root", ROOT_PASSWORD).await.0;
    let guid = register(
        &d,
        &token,
        json!({"system_code": "crm", "db_type": "mysql", "address": "127.0.0.1:3306", "db_name": db.name, "username": "root"}),
    )
    .await;
    discovered(&d, &token, &guid, "a").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let passes: Vec<usize> = d
        .servers
        .iter()
        .map(|s| s.logs().matches("scanner pass done").count())
        .collect();
    let (most, fewest) = (*passes.iter().max().unwrap(), *passes.iter().min().unwrap());
    assert!(
        most >= 4,
        "the lease holder scans every interval: {passes:?}"
    );
    assert!(
        fewest <= 1,
        "only one instance scans per interval: {passes:?}"
    );
}
