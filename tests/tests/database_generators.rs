//! Initialization starts each counter above the database's own generators,
//! and one table's trouble is its own (issue 12, points 1 and 2), against
//! the machine's real MariaDB and PostgreSQL: deleted rows below an
//! AUTO_INCREMENT, a bumped AUTO_INCREMENT, a sequence ahead of MAX, a
//! table full up to 2^63−1 among others. After initializing, IDs allocated
//! by kxy and rows inserted with the table's own default never meet.

use std::collections::HashMap;

use kxy_e2e::api::Answer;
use kxy_e2e::deploy::{Deployment, ROOT_PASSWORD};
use kxy_e2e::server::ServerProcess;
use kxy_e2e::sql_env::{MariaDb, Postgres};
use serde_json::{Value, json};

const MASTER_KEY: &str = "5a5b5c5d5e5f60616263646566676869707172737475767778797a7b7c7d7e7f";

async fn server() -> (Deployment, String) {
    server_with(&[]).await
}

async fn server_with(extra: &[&str]) -> (Deployment, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--master-key",
        MASTER_KEY,
    ];
    if !extra.contains(&"--scan-interval") {
        args.extend(["--scan-interval", "0"]);
    }
    args.extend_from_slice(extra);
    let d = Deployment::new(
        "embedded",
        vec![ServerProcess::start(&args, &[])],
        Some(dir),
        None,
    );
    d.init().await;
    let token = d.tokens("root", ROOT_PASSWORD).await.0;
    (d, token)
}

/// The registration form of a test database on the local MariaDB (root).
fn maria(system: &str, db: &MariaDb) -> Value {
    json!({"system_code": system, "db_type": "mysql", "address": "127.0.0.1:3306", "db_name": db.name, "username": "root", "password": ""})
}

/// The registration form of a test database on the local PostgreSQL.
fn postgres(system: &str, db: &Postgres) -> Value {
    json!({"system_code": system, "db_type": "postgresql", "address": "127.0.0.1:5432", "db_name": db.name, "username": "postgres", "password": ""})
}

/// Registers `form`; returns the guid.
async fn add(d: &Deployment, token: &str, form: Value) -> String {
    let added = d.post("/api/database/add", form, Some(token)).await;
    assert_eq!(added.status, 200, "{:?}", added.body);
    added.body["data"]["guid"].as_str().unwrap().to_owned()
}

/// Registers and initializes; returns table → registered entry, and
/// table → skip reason.
async fn initialize(
    d: &Deployment,
    token: &str,
    form: Value,
) -> (HashMap<String, Value>, HashMap<String, String>) {
    let guid = add(d, token, form).await;
    let report = d
        .post(
            &format!("/api/database/initialize/{guid}"),
            json!({}),
            Some(token),
        )
        .await;
    assert_eq!(report.status, 200, "{:?}", report.body);
    let data = &report.body["data"];
    assert_eq!(data["tables_done"], data["tables_total"]);
    let registered = data["registered"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["table"].as_str().unwrap().to_owned(), r.clone()))
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

async fn allocate(d: &Deployment, system: &str, db: &str, table: &str, count: i64) -> Answer {
    let body = json!({"system_code": system, "db_name": db, "table_name": table, "field_name": "id", "segment_count": count});
    d.post("/api/segment/allocate", body, None).await
}

fn starts(registered: &HashMap<String, Value>, table: &str) -> (i64, String) {
    let r = &registered[table];
    (
        r["next_id"].as_i64().unwrap(),
        r["decided_by"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_counters_start_above_auto_increment_and_a_full_table_is_its_own() {
    if !MariaDb::available() {
        return;
    }
    let db = MariaDb::create();
    db.exec(
        "CREATE TABLE deleted (id BIGINT AUTO_INCREMENT PRIMARY KEY, v INT);
         INSERT INTO deleted (v) VALUES (1),(2),(3),(4),(5),(6),(7),(8),(9),(10);
         DELETE FROM deleted WHERE id > 4;
         CREATE TABLE bumped (id BIGINT AUTO_INCREMENT PRIMARY KEY, v INT);
         INSERT INTO bumped (v) VALUES (1),(2),(3);
         ALTER TABLE bumped AUTO_INCREMENT = 1000;
         CREATE TABLE plain (id BIGINT PRIMARY KEY);
         INSERT INTO plain VALUES (7);
         CREATE TABLE maxed (id BIGINT PRIMARY KEY);
         INSERT INTO maxed VALUES (9223372036854775807);
         CREATE TABLE zz_after (id BIGINT AUTO_INCREMENT PRIMARY KEY);",
    );
    let (d, token) = server().await;
    let (registered, skipped) = initialize(&d, &token, maria("crm", &db)).await;
    assert_eq!(
        starts(&registered, "deleted"),
        (12, "auto_increment".into())
    );
    assert_eq!(
        starts(&registered, "bumped"),
        (1001, "auto_increment".into())
    );
    assert_eq!(starts(&registered, "plain"), (8, "max".into()));
    assert_eq!(
        starts(&registered, "zz_after"),
        (2, "auto_increment".into())
    );
    assert!(
        skipped["maxed"].contains("exhausted"),
        "{}",
        skipped["maxed"]
    );

    // The table's own default and kxy's IDs never meet.
    let segment = allocate(&d, "crm", &db.name, "deleted", 5).await.segment();
    db.exec("INSERT INTO deleted (v) VALUES (11)");
    let own = db
        .exec("SELECT MAX(id) FROM deleted")
        .trim()
        .parse::<i64>()
        .unwrap();
    assert!(
        own < segment.start,
        "the default gave {own}, kxy from {}",
        segment.start
    );
    for id in segment.start..=segment.end {
        db.exec(&format!("INSERT INTO deleted (id, v) VALUES ({id}, 0)"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_counters_start_above_the_owned_sequence() {
    if !Postgres::available() {
        return;
    }
    let db = Postgres::create();
    db.exec(
        "CREATE TABLE ahead (id BIGSERIAL PRIMARY KEY, v INT);
         INSERT INTO ahead (v) SELECT g FROM generate_series(1, 4) g;
         SELECT setval('ahead_id_seq', 10);
         CREATE TABLE ident (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, v INT);
         INSERT INTO ident (v) VALUES (1), (2), (3);
         DELETE FROM ident;
         CREATE TABLE never (id BIGSERIAL PRIMARY KEY);
         CREATE SCHEMA sales;
         CREATE TABLE sales.orders (id BIGSERIAL PRIMARY KEY);
         SELECT setval('sales.orders_id_seq', 40);
         CREATE TABLE maxed (id BIGINT PRIMARY KEY);
         INSERT INTO maxed VALUES (9223372036854775807);",
    );
    let (d, token) = server().await;
    let (registered, skipped) = initialize(&d, &token, postgres("erp", &db)).await;
    assert_eq!(starts(&registered, "ahead"), (12, "sequence".into()));
    assert_eq!(starts(&registered, "ident"), (5, "sequence".into()));
    assert_eq!(starts(&registered, "never"), (1, "empty".into()));
    assert_eq!(starts(&registered, "sales.orders"), (42, "sequence".into()));
    assert!(
        skipped["maxed"].contains("exhausted"),
        "{}",
        skipped["maxed"]
    );

    let segment = allocate(&d, "erp", &db.name, "ahead", 5).await.segment();
    let own = db
        .exec("INSERT INTO ahead (v) VALUES (0) RETURNING id")
        .trim()
        .parse::<i64>()
        .unwrap();
    assert!(
        own < segment.start,
        "the sequence gave {own}, kxy from {}",
        segment.start
    );
}

/// One physical database under two system codes would give each table two
/// counters handing out the same IDs (issue 12, point 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_database_cannot_be_registered_under_two_system_codes() {
    if !MariaDb::available() {
        return;
    }
    let db = MariaDb::create();
    db.exec("CREATE TABLE orders (id BIGINT PRIMARY KEY); INSERT INTO orders VALUES (9);");
    let (d, token) = server().await;
    let form = |system: &str, address: &str| json!({"system_code": system, "db_type": "mysql", "address": address, "db_name": db.name, "username": "root", "password": ""});
    let first = d
        .post(
            "/api/database/add",
            form("crm", "127.0.0.1:3306"),
            Some(&token),
        )
        .await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    let first_guid = first.body["data"]["guid"].as_str().unwrap().to_owned();
    // The same database, spelled otherwise, under another system code.
    for address in ["127.0.0.1", "localhost:3306", "LOCALHOST"] {
        let again = d
            .post("/api/database/add", form("billing", address), Some(&token))
            .await;
        again.assert_refused(409, 40902);
        assert!(again.msg().contains(&first_guid), "{}", again.msg());
    }
    // Moving another registration onto it is refused the same way.
    let other = MariaDb::create();
    let elsewhere = d
        .post("/api/database/add", maria("billing", &other), Some(&token))
        .await;
    assert_eq!(elsewhere.status, 200, "{:?}", elsewhere.body);
    let guid = elsewhere.body["data"]["guid"].as_str().unwrap();
    let moved = d
        .call(
            reqwest::Method::PUT,
            &format!("/api/database/{guid}"),
            Some(json!({"db_name": db.name, "password": ""})),
            Some(&token),
        )
        .await;
    moved.assert_refused(409, 40902);
    // The same system code shares the counters: allowed.
    let same = d
        .post("/api/database/add", form("crm", "localhost"), Some(&token))
        .await;
    assert_eq!(same.status, 200, "{:?}", same.body);
}

/// Which tables can take kxy IDs, and what a registration may name (issue
/// 12, points 4 and 12).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_that_refuse_explicit_ids_are_skipped_and_bad_names_refused() {
    if !Postgres::available() || !MariaDb::available() {
        return;
    }
    let pg = Postgres::create();
    pg.exec(
        "CREATE TABLE always (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY);
         CREATE TABLE by_default (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY);",
    );
    let my = MariaDb::create();
    my.exec(
        "CREATE TABLE keyless (id BIGINT AUTO_INCREMENT UNIQUE, v INT);
         INSERT INTO keyless (v) VALUES (1), (2);",
    );
    let (d, token) = server().await;
    let (registered, skipped) = initialize(&d, &token, postgres("erp", &pg)).await;
    assert!(
        skipped["always"].contains("GENERATED ALWAYS"),
        "{}",
        skipped["always"]
    );
    assert!(registered.contains_key("by_default"));
    let (registered, _) = initialize(
        &d,
        &token,
        json!({"system_code": "crm", "db_type": "MariaDB", "address": "127.0.0.1", "db_name": my.name, "username": "root", "password": ""}),
    )
    .await;
    assert_eq!(starts(&registered, "keyless"), (4, "auto_increment".into()));

    let form = |db_type: &str, address: &str| json!({"system_code": "x", "db_type": db_type, "address": address, "db_name": "d", "username": "u"});
    for db_type in ["SQL Server", "sql_server", "MSSQL", "oracle"] {
        let refused = d
            .post("/api/database/add", form(db_type, "h:1"), Some(&token))
            .await;
        refused.assert_refused(400, 40002);
        assert!(
            refused.msg().contains("not supported yet"),
            "{db_type}: {}",
            refused.msg()
        );
    }
    for address in [
        "user:pw@db",
        "db:0",
        "db:+3306",
        "-h",
        "/var/run/postgresql",
    ] {
        let refused = d
            .post(
                "/api/database/add",
                form("postgresql", address),
                Some(&token),
            )
            .await;
        refused.assert_refused(400, 40002);
        assert!(
            refused.msg().starts_with("address"),
            "{address}: {}",
            refused.msg()
        );
    }
    let v6 = d
        .post("/api/database/add", form("postgresql", "::1"), Some(&token))
        .await;
    assert_eq!(v6.status, 200, "{:?}", v6.body);
}

/// Every table the catalog lists appears, and one counter name names one
/// table (issue 12, points 5 and 8).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listed_table_appears_and_no_two_share_a_counter() {
    if !Postgres::available() || !MariaDb::available() {
        return;
    }
    let pg = Postgres::create();
    pg.exec(
        "CREATE SCHEMA sales;
         CREATE TABLE sales.orders (id BIGINT PRIMARY KEY);
         CREATE TABLE public.\"sales.orders\" (id BIGINT PRIMARY KEY);
         CREATE TABLE plain (id BIGINT PRIMARY KEY);",
    );
    let my = MariaDb::create();
    // Row 50 deleted: only the history holds it, and kxy must not hand it out.
    my.exec(
        "CREATE TABLE versioned (id BIGINT PRIMARY KEY) WITH SYSTEM VERSIONING;
         INSERT INTO versioned VALUES (3), (50);
         DELETE FROM versioned WHERE id = 50;",
    );
    let (d, token) = server().await;
    let (registered, skipped) = initialize(&d, &token, postgres("erp", &pg)).await;
    assert!(registered.contains_key("plain"));
    assert!(!registered.contains_key("sales.orders"), "{registered:?}");
    assert!(skipped["sales.orders"].contains("rename"), "{skipped:?}");
    let (registered, _) = initialize(&d, &token, maria("crm", &my)).await;
    assert_eq!(starts(&registered, "versioned"), (51, "max".into()));
}

/// A connection killed mid-run ends the run as failed, with the cause,
/// instead of "skipping" every table after it (issue 12, point 6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_killed_mid_run_fails_the_run_with_its_cause() {
    if !Postgres::available() {
        return;
    }
    let pg = Postgres::create();
    pg.exec(
        "DO $$ BEGIN FOR i IN 1..1500 LOOP
           EXECUTE format('CREATE TABLE t%s (id BIGINT PRIMARY KEY)', i);
         END LOOP; END $$;",
    );
    let (d, token) = server().await;
    let guid = add(&d, &token, postgres("erp", &pg)).await;
    let path = format!("/api/database/initialize/{guid}");
    let run = d.post(&path, json!({}), Some(&token));
    let kill = async {
        // Once the run has registered tables (past the catalog), kill its
        // session, and keep killing until one was found.
        for _ in 0..2000 {
            let counters = d.get("/api/counters", Some(&token)).await;
            let registered = counters.body["data"]
                .as_array()
                .is_some_and(|c| c.len() > 20);
            if registered {
                let killed = pg.exec(&format!(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE datname = '{}' AND pid <> pg_backend_pid()",
                    pg.name
                ));
                if killed.trim() != "0" {
                    return;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    };
    let (answer, ()) = tokio::join!(run, kill);
    assert_eq!(answer.status, 502, "{}", answer.msg());
    let data = &answer.body["data"];
    assert!(
        data["failed"]
            .as_str()
            .unwrap()
            .contains("lost the connection"),
        "{data}"
    );
    let done = data["tables_done"].as_u64().unwrap();
    assert!(done < 1500, "{data}");
    assert!(
        answer.msg().contains("initializing stopped"),
        "{}",
        answer.msg()
    );
}

/// A session holding `sql`'s locks until killed.
struct LockHolder(std::process::Child);

impl LockHolder {
    fn new(program: &str, args: &[&str]) -> LockHolder {
        LockHolder(
            std::process::Command::new(program)
                .args(args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("start the lock holder"),
        )
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A table under a lock that another session holds fails alone, within the
/// query timeout, and the others are registered (issue 12, point 7).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_under_a_held_lock_fails_alone_within_the_timeout() {
    if !Postgres::available() || !MariaDb::available() {
        return;
    }
    let pg = Postgres::create();
    pg.exec("CREATE TABLE a (id BIGINT PRIMARY KEY); CREATE TABLE locked (id BIGINT PRIMARY KEY); CREATE TABLE z (id BIGINT PRIMARY KEY);");
    let my = MariaDb::create();
    my.exec("CREATE TABLE a (id BIGINT PRIMARY KEY); CREATE TABLE locked (id BIGINT PRIMARY KEY); CREATE TABLE z (id BIGINT PRIMARY KEY);");
    let _pg_lock = LockHolder::new(
        "psql",
        &[
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            &pg.name,
            "-c",
            "BEGIN; LOCK TABLE locked IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60);",
        ],
    );
    let _my_lock = LockHolder::new(
        "mysql",
        &[
            "-h127.0.0.1",
            "-uroot",
            &my.name,
            "-e",
            "LOCK TABLES locked WRITE; SELECT SLEEP(60);",
        ],
    );
    // Both locks are taken before the run starts.
    for _ in 0..100 {
        let pg_held = pg.exec("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'locked' AND l.mode = 'AccessExclusiveLock' AND l.granted");
        let my_held = my.exec("SELECT count(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP(60)%'");
        if pg_held.trim() == "1" && my_held.trim() == "1" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (d, token) = server_with(&["--database-query-timeout", "1"]).await;
    let started = std::time::Instant::now();
    for form in [postgres("erp", &pg), maria("crm", &my)] {
        let (registered, skipped) = initialize(&d, &token, form).await;
        assert!(
            registered.contains_key("a") && registered.contains_key("z"),
            "{registered:?} {skipped:?}"
        );
        let reason = skipped["locked"].to_lowercase();
        assert!(
            reason.contains("timeout") || reason.contains("timed out"),
            "{reason}"
        );
    }
    // A hang guard, not a speed claim: without the bound the run waits 60 s.
    assert!(started.elapsed() < std::time::Duration::from_secs(40));
}

/// An account that sees only some tables is told so, rather than shown
/// "1 of 1 registered" (issue 12, point 8).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_that_cannot_see_every_table_is_told_so() {
    if !MariaDb::available() {
        return;
    }
    let db = MariaDb::create();
    db.exec(
        "CREATE TABLE seen (id BIGINT PRIMARY KEY); CREATE TABLE hidden (id BIGINT PRIMARY KEY);",
    );
    let user = format!("{}_r", db.name);
    MariaDb::admin(&format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY 'restricted pw 1'; GRANT SELECT ON {}.seen TO '{user}'@'%';",
        db.name
    ));
    let (d, token) = server().await;
    let guid = add(&d, &token, json!({"system_code": "crm", "db_type": "mysql", "address": "127.0.0.1:3306", "db_name": db.name, "username": user, "password": "restricted pw 1"})).await;
    let report = d
        .post(
            &format!("/api/database/initialize/{guid}"),
            json!({}),
            Some(&token),
        )
        .await;
    MariaDb::admin(&format!("DROP USER '{user}'@'%'"));
    assert_eq!(report.status, 200, "{:?}", report.body);
    let data = &report.body["data"];
    assert_eq!(data["tables_total"], 1, "{data}");
    let warnings = data["warnings"].to_string();
    assert!(warnings.contains("cannot see"), "{data}");

    // With SELECT on the whole database there is nothing to warn of.
    let (registered, _) = initialize(
        &d,
        &token,
        json!({"system_code": "crm", "db_type": "mysql", "address": "localhost", "db_name": db.name, "username": "root", "password": ""}),
    )
    .await;
    assert_eq!(registered.len(), 2);
}

/// The same on MariaDB, with `KILL` (issue 12, point 6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mariadb_connection_killed_mid_run_fails_the_run() {
    if !MariaDb::available() {
        return;
    }
    let db = MariaDb::create();
    let tables: String = (0..1000)
        .map(|i| format!("CREATE TABLE t{i} (id BIGINT PRIMARY KEY);"))
        .collect();
    db.exec(&tables);
    let (d, token) = server().await;
    let guid = add(&d, &token, maria("crm", &db)).await;
    let path = format!("/api/database/initialize/{guid}");
    let run = d.post(&path, json!({}), Some(&token));
    let kill = async {
        for _ in 0..2000 {
            let counters = d.get("/api/counters", Some(&token)).await;
            if counters.body["data"]
                .as_array()
                .is_some_and(|c| c.len() > 20)
            {
                let ids = db.exec(&format!(
                    "SELECT ID FROM information_schema.PROCESSLIST \
                     WHERE DB = '{}' AND ID <> CONNECTION_ID()",
                    db.name
                ));
                let ids: Vec<&str> = ids.split_whitespace().collect();
                for id in &ids {
                    let _ = std::process::Command::new("mysql")
                        .args(["-h127.0.0.1", "-uroot", "-e", &format!("KILL {id}")])
                        .output();
                }
                if !ids.is_empty() {
                    return;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    };
    let (answer, ()) = tokio::join!(run, kill);
    assert_eq!(answer.status, 502, "{}", answer.msg());
    let failed = answer.body["data"]["failed"].as_str().unwrap_or_default();
    assert!(failed.contains("lost the connection"), "{}", answer.msg());
    assert!(answer.body["data"]["tables_done"].as_u64().unwrap() < 1000);
}

/// The discovered list follows the database and the counters: dropped
/// tables leave it, registered ones do not come back, dismissed ones stay
/// out (issue 12, point 9).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_discovered_list_is_reconciled_and_entries_can_be_dismissed() {
    if !Postgres::available() {
        return;
    }
    let pg = Postgres::create();
    // `maxed` has no ID left: approving it could never work, so it is not listed.
    pg.exec(
        "CREATE TABLE a (id BIGINT PRIMARY KEY); CREATE TABLE b (id BIGINT PRIMARY KEY);
         CREATE TABLE c (id BIGINT PRIMARY KEY);
         CREATE TABLE maxed (id BIGINT PRIMARY KEY); INSERT INTO maxed VALUES (9223372036854775807);",
    );
    let (d, token) = server_with(&["--scan-interval", "1"]).await;
    let guid = add(&d, &token, postgres("erp", &pg)).await;
    let listed = |want: &'static [&'static str]| {
        let d = &d;
        let token = token.clone();
        let guid = guid.clone();
        async move {
            let mut last = Vec::new();
            for _ in 0..100 {
                let answer = d
                    .get(
                        &format!("/api/database/{guid}/discovered-tables"),
                        Some(&token),
                    )
                    .await;
                let mut tables: Vec<String> = answer.body["data"]["tables"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t["table"].as_str().unwrap().to_owned())
                    .collect();
                tables.sort();
                if tables == want {
                    return;
                }
                last = tables;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            panic!("discovered {last:?}, wanted {want:?}");
        }
    };
    listed(&["a", "b", "c"]).await;
    let dismissed = d
        .call(
            reqwest::Method::DELETE,
            &format!("/api/database/{guid}/discovered-tables/b"),
            None,
            Some(&token),
        )
        .await;
    assert_eq!(dismissed.status, 200, "{:?}", dismissed.body);
    pg.exec("DROP TABLE c; CREATE TABLE e (id BIGINT PRIMARY KEY);");
    listed(&["a", "e"]).await;
    // An initialize registers them all; the next passes list nothing, and
    // never b again.
    let report = d
        .post(
            &format!("/api/database/initialize/{guid}"),
            json!({}),
            Some(&token),
        )
        .await;
    assert_eq!(report.status, 200, "{}", report.msg());
    listed(&[]).await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    listed(&[]).await;
    // Each pass leaves its record.
    let answer = d
        .get(
            &format!("/api/database/{guid}/discovered-tables"),
            Some(&token),
        )
        .await;
    let last = &answer.body["data"]["last_scan"];
    assert!(
        last["at"].as_u64().unwrap() > 0 && last["error"].is_null(),
        "{last}"
    );
    // A database that cannot be reached is recorded as such.
    let dropped = std::process::Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-c"])
        .arg(format!("DROP DATABASE {} WITH (FORCE)", pg.name))
        .output()
        .unwrap();
    assert!(dropped.status.success(), "{dropped:?}");
    let mut recorded = String::new();
    for _ in 0..50 {
        let answer = d
            .get(
                &format!("/api/database/{guid}/discovered-tables"),
                Some(&token),
            )
            .await;
        recorded = answer.body["data"]["last_scan"]["error"].to_string();
        if recorded != "null" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(recorded.contains("cannot"), "{recorded}");
}

/// `--database-start-margin` leaves room above the database's own next
/// value (issue 12, point 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_margin_leaves_room_above_the_databases_own_ids() {
    if !MariaDb::available() {
        return;
    }
    let db = MariaDb::create();
    db.exec(
        "CREATE TABLE orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, v INT);
         INSERT INTO orders (v) VALUES (1), (2), (3);",
    );
    let (d, token) = server_with(&["--database-start-margin", "1000"]).await;
    let (registered, _) = initialize(&d, &token, maria("crm", &db)).await;
    assert_eq!(
        starts(&registered, "orders"),
        (1005, "auto_increment".into())
    );
}

/// Initializing as a job: started at once, followed by its progress, one
/// per database, and not stopped by a client that goes away (issue 12,
/// point 10).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_initialize_job_reports_progress_and_outlives_its_client() {
    if !Postgres::available() {
        return;
    }
    let pg = Postgres::create();
    pg.exec(
        "DO $$ BEGIN FOR i IN 1..1500 LOOP
           EXECUTE format('CREATE TABLE t%s (id BIGINT PRIMARY KEY)', i);
         END LOOP; END $$;",
    );
    let (d, token) = server().await;
    let guid = add(&d, &token, postgres("erp", &pg)).await;
    let started = d
        .post(
            &format!("/api/database/{guid}/jobs"),
            json!({}),
            Some(&token),
        )
        .await;
    assert_eq!(started.status, 200, "{:?}", started.body);
    assert_eq!(started.body["data"]["state"], "running");
    let id = started.body["data"]["id"].as_str().unwrap().to_owned();
    let second = d
        .post(
            &format!("/api/database/{guid}/jobs"),
            json!({}),
            Some(&token),
        )
        .await;
    second.assert_refused(409, 40902);

    let mut seen_progress = Vec::new();
    let job = loop {
        let job = d
            .get(&format!("/api/database/jobs/{id}"), Some(&token))
            .await;
        assert_eq!(job.status, 200, "{:?}", job.body);
        let data = job.body["data"].clone();
        if data["state"] != "running" {
            break data;
        }
        seen_progress.push(data["tables_done"].as_u64().unwrap());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["tables_done"], 1500);
    assert_eq!(job["report"]["registered"].as_array().unwrap().len(), 1500);
    assert!(
        seen_progress.windows(2).all(|w| w[0] <= w[1]),
        "progress only grows: {seen_progress:?}"
    );
    // The database is free again.
    let again = d
        .post(
            &format!("/api/database/{guid}/jobs"),
            json!({}),
            Some(&token),
        )
        .await;
    assert_eq!(again.status, 200, "{:?}", again.body);

    // The synchronous route's client gives up after 100 ms; the work goes
    // on: every table of a fresh database gets its counter.
    let fresh = Postgres::create();
    fresh.exec(
        "DO $$ BEGIN FOR i IN 1..800 LOOP
           EXECUTE format('CREATE TABLE u%s (id BIGINT PRIMARY KEY)', i);
         END LOOP; END $$;",
    );
    let fresh_guid = add(&d, &token, postgres("pos", &fresh)).await;
    let impatient = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(100))
        .build()
        .unwrap();
    let gave_up = impatient
        .post(format!(
            "{}/api/database/initialize/{fresh_guid}",
            d.servers[0].base_url()
        ))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await;
    assert!(gave_up.is_err(), "the client was meant to give up first");
    let mut counted = 0;
    for _ in 0..300 {
        let counters = d.get("/api/counters", Some(&token)).await;
        counted = counters.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c.to_string().contains("\"pos\""))
            .count();
        if counted == 800 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(counted, 800);
}

/// The seed's registered databases move over from its Redis, checked like
/// any registration, and a second run changes nothing (issue 12, point 13).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_databases_are_imported_from_its_redis() {
    let Some(url) = kxy_e2e::redis_env::shared_redis() else {
        return;
    };
    if !MariaDb::available() {
        return;
    }
    let db = MariaDb::create();
    db.exec("CREATE TABLE orders (id BIGINT AUTO_INCREMENT PRIMARY KEY); INSERT INTO orders VALUES (41);");
    // The seed's layout, under a prefix of this test's own.
    let prefix = kxy_e2e::redis_env::KeyPrefix::new(&url, "seed");
    let seed = prefix.as_str().to_owned();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut redis = client.get_connection().unwrap();
    let records = [
        ("0f8fad5b-d9cb-469f-a165-70867728950e", maria("crm", &db).to_string()),
        ("7c9e6679-7425-40de-944b-e07fc1f90ae7", json!({"system_code": "erp", "db_type": "postgresql", "host": "db.internal", "port": 5433, "db_name": "erp", "username": "kxy", "password": "the seed kept me in clear 1"}).to_string()),
        ("9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d", json!({"system_code": "legacy", "db_type": "oracle", "address": "ora:1521", "db_name": "x", "username": "u"}).to_string()),
        ("1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed", "not json".to_owned()),
    ];
    for (guid, json) in &records {
        let _: () = redis::cmd("SET")
            .arg(format!("{seed}:db_config:{guid}"))
            .arg(json)
            .query(&mut redis)
            .unwrap();
    }
    let discovered_set = format!("{seed}:discovered_tables:{}", records[0].0);
    let _: () = redis::cmd("SADD")
        .arg(&discovered_set)
        .arg("orders")
        .arg("ghost")
        .query(&mut redis)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let import = || {
        kxy_e2e::server::run_cli(
            &[
                "--data-dir",
                data_dir,
                "--master-key",
                MASTER_KEY,
                "databases",
                "import-seed",
                "--from",
                &url,
                "--prefix",
                &seed,
            ],
            &[],
        )
    };
    let first = import();
    let out = String::from_utf8_lossy(&first.stdout).into_owned();
    assert!(
        first.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(out.contains("2 databases imported, 2 skipped"), "{out}");
    assert!(out.contains("not supported yet"), "{out}");
    assert!(!out.contains("the seed kept me in clear"), "{out}");
    assert!(out.contains("(2 discovered tables)"), "{out}");
    let again = import();
    let out = String::from_utf8_lossy(&again.stdout).into_owned();
    assert!(out.contains("0 databases imported, 4 skipped"), "{out}");
    for (guid, _) in &records {
        let _: () = redis::cmd("DEL")
            .arg(format!("{seed}:db_config:{guid}"))
            .query(&mut redis)
            .unwrap();
    }
    let _: () = redis::cmd("DEL")
        .arg(&discovered_set)
        .query(&mut redis)
        .unwrap();

    let d = Deployment::new(
        "embedded",
        vec![ServerProcess::start(
            &[
                "--data-dir",
                data_dir,
                "--master-key",
                MASTER_KEY,
                "--scan-interval",
                "1",
            ],
            &[],
        )],
        None,
        None,
    );
    d.init().await;
    let token = d.tokens("root", ROOT_PASSWORD).await.0;
    let listed = d.get("/api/database/list", Some(&token)).await;
    let list = listed.body["data"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    let erp = list.iter().find(|x| x["system_code"] == "erp").unwrap();
    assert_eq!(erp["guid"], "7c9e6679742540de944be07fc1f90ae7");
    assert_eq!(erp["address"], "db.internal:5433");
    assert!(
        !listed
            .body
            .to_string()
            .contains("the seed kept me in clear")
    );
    // The seed's discovered set came over; the scanner fills in the key
    // column and drops the table that no longer exists.
    let mut discovered = String::new();
    for _ in 0..50 {
        let answer = d
            .get(
                "/api/database/0f8fad5bd9cb469fa16570867728950e/discovered-tables",
                Some(&token),
            )
            .await;
        discovered = answer.body["data"]["tables"].to_string();
        if discovered.contains("\"field\":\"id\"") && !discovered.contains("ghost") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        discovered.contains("orders") && !discovered.contains("ghost"),
        "{discovered}"
    );
    // The imported registration works like any other.
    let report = d
        .post(
            "/api/database/initialize/0f8fad5bd9cb469fa16570867728950e",
            json!({}),
            Some(&token),
        )
        .await;
    assert_eq!(report.status, 200, "{}", report.msg());
    assert_eq!(report.body["data"]["registered"][0]["next_id"], 43);
}

/// Registrations of one database racing under different system codes:
/// exactly one wins, on one instance or two (issue 12, point 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_registrations_of_one_database_let_one_system_code_win() {
    if !MariaDb::available() {
        return;
    }
    let db = MariaDb::create();
    for d in Deployment::all(&["--master-key", MASTER_KEY]) {
        d.init().await;
        let token = d.tokens("root", ROOT_PASSWORD).await.0;
        let adds = (0..10).map(|n| {
            d.call_on(
                n % d.servers.len(),
                reqwest::Method::POST,
                "/api/database/add",
                Some(json!({"system_code": format!("sys{n}"), "db_type": "mysql", "address": "127.0.0.1:3306", "db_name": db.name, "username": "root", "password": ""})),
                Some(&token),
            )
        });
        let answers = futures::future::join_all(adds).await;
        let won = answers.iter().filter(|a| a.status == 200).count();
        assert_eq!(
            won,
            1,
            "{}: {:?}",
            d.name,
            answers.iter().map(|a| a.status).collect::<Vec<_>>()
        );
        // Deleting the winner frees the database for another system code.
        let listed = d.get("/api/database/list", Some(&token)).await;
        let guid = listed.body["data"][0]["guid"].as_str().unwrap().to_owned();
        let gone = d
            .call(
                reqwest::Method::DELETE,
                &format!("/api/database/{guid}"),
                None,
                Some(&token),
            )
            .await;
        assert_eq!(gone.status, 200, "{:?}", gone.body);
        let next = d
            .post("/api/database/add", maria("later", &db), Some(&token))
            .await;
        assert_eq!(next.status, 200, "{}: {:?}", d.name, next.body);
    }
}

/// SQLite columns hold any value: a key that is not an integer is said to
/// be so (issue 12, point 12).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_key_that_is_not_an_integer_is_called_so() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shop.db");
    let script = "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); \
                  c.executescript(\"CREATE TABLE words (id BIGINT PRIMARY KEY); INSERT INTO words VALUES ('zzz'); \
                  CREATE TABLE halves (id BIGINT PRIMARY KEY); INSERT INTO halves VALUES (7.5); \
                  CREATE TABLE fine (id BIGINT PRIMARY KEY); INSERT INTO fine VALUES (9);\"); c.commit()";
    let made = std::process::Command::new("python3")
        .args(["-c", script, file.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(made.success());
    let (d, token) = server_with(&["--sqlite-dir", dir.path().to_str().unwrap()]).await;
    let (registered, skipped) = initialize(
        &d,
        &token,
        json!({"system_code": "pos", "db_type": "sqlite", "db_name": file.to_str().unwrap()}),
    )
    .await;
    assert_eq!(starts(&registered, "fine"), (10, "max".into()));
    for table in ["words", "halves"] {
        assert!(
            skipped[table].contains("not an integer"),
            "{table}: {}",
            skipped[table]
        );
    }
}

/// Allocations racing an initialize job: every ID handed out, during the
/// job or after it, is above what each table's own generator hands out
/// next (issue 12, tests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocations_racing_a_job_stay_above_the_databases_own_ids() {
    if !MariaDb::available() {
        return;
    }
    let db = MariaDb::create();
    let tables: String = (0..200)
        .map(|i| {
            format!(
                "CREATE TABLE t{i} (id BIGINT AUTO_INCREMENT PRIMARY KEY, v INT); \
                 INSERT INTO t{i} (v) VALUES (1), (2); DELETE FROM t{i} WHERE id = 2;"
            )
        })
        .collect();
    db.exec(&tables);
    let (d, token) = server().await;
    let guid = add(&d, &token, maria("crm", &db)).await;
    let started = d
        .post(
            &format!("/api/database/{guid}/jobs"),
            json!({}),
            Some(&token),
        )
        .await;
    let id = started.body["data"]["id"].as_str().unwrap().to_owned();
    let mut handed_out = Vec::new();
    loop {
        let job = d
            .get(&format!("/api/database/jobs/{id}"), Some(&token))
            .await;
        let running = job.body["data"]["state"] == "running";
        for i in (0..200).step_by(7) {
            let answer = allocate(&d, "crm", &db.name, &format!("t{i}"), 3).await;
            if answer.status == 200 {
                handed_out.push((i, answer.segment()));
            }
        }
        if !running {
            assert_eq!(job.body["data"]["state"], "done", "{}", job.msg());
            break;
        }
    }
    assert!(!handed_out.is_empty());
    for (i, segment) in &handed_out {
        // Each table's own next value is 3 (rows 1 and 2 taken, 2 deleted).
        let next: i64 = db
            .exec(&format!(
                "SELECT AUTO_INCREMENT FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't{i}'"
            ))
            .trim()
            .parse()
            .unwrap();
        assert!(
            segment.start > next,
            "t{i}: kxy gave {segment:?}, the table's own next is {next}"
        );
    }
}
