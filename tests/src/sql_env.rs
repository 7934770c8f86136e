//! Throwaway databases on the machine's MariaDB and PostgreSQL, driven with
//! their own command-line clients. Each test creates databases with unique
//! names and drops them afterwards; when a server is missing the test fails
//! under `CI=true` and is skipped with a message elsewhere.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn unique(kind: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "kxyt_{kind}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000
    )
}

fn missing(what: &str, error: String) -> bool {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("this test needs {what} and CI=true: {error}");
    }
    eprintln!("SKIPPED: this test needs {what}: {error}");
    false
}

fn run(command: &mut Command) -> Result<String, String> {
    let out = command.output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A database on MariaDB at 127.0.0.1:3306 (root, no password).
pub struct MariaDb {
    pub name: String,
}

impl MariaDb {
    pub fn available() -> bool {
        run(Command::new("mysql").args(["-h127.0.0.1", "-uroot", "-e", "SELECT 1"])).map_or_else(
            |e| missing("MariaDB at 127.0.0.1:3306 and the mysql client", e),
            |_| true,
        )
    }

    pub fn create() -> MariaDb {
        let db = MariaDb { name: unique("my") };
        run(Command::new("mysql").args([
            "-h127.0.0.1",
            "-uroot",
            "-e",
            &format!("CREATE DATABASE {}", db.name),
        ]))
        .expect("create a MariaDB database");
        db
    }

    /// Runs SQL in this database; panics with the server's message on error.
    pub fn exec(&self, sql: &str) -> String {
        run(Command::new("mysql").args([
            "-h127.0.0.1",
            "-uroot",
            "-N",
            "-B",
            &self.name,
            "-e",
            sql,
        ]))
        .unwrap_or_else(|e| panic!("MariaDB: {e}\n{sql}"))
    }

    /// Runs SQL outside any database (users, grants).
    pub fn admin(sql: &str) -> String {
        run(Command::new("mysql").args(["-h127.0.0.1", "-uroot", "-e", sql]))
            .unwrap_or_else(|e| panic!("MariaDB: {e}"))
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        let _ = run(Command::new("mysql").args([
            "-h127.0.0.1",
            "-uroot",
            "-e",
            &format!("DROP DATABASE IF EXISTS {}", self.name),
        ]));
    }
}

/// A database on PostgreSQL at 127.0.0.1:5432 (user postgres, trust).
pub struct Postgres {
    pub name: String,
}

fn psql(db: &str, sql: &str) -> Result<String, String> {
    run(Command::new("psql").args([
        "-h",
        "127.0.0.1",
        "-U",
        "postgres",
        "-d",
        db,
        "-v",
        "ON_ERROR_STOP=1",
        "-q",
        "-t",
        "-A",
        "-c",
        sql,
    ]))
}

impl Postgres {
    pub fn available() -> bool {
        psql("test", "SELECT 1").map_or_else(
            |e| missing("PostgreSQL at 127.0.0.1:5432 and the psql client", e),
            |_| true,
        )
    }

    pub fn create() -> Postgres {
        let db = Postgres { name: unique("pg") };
        psql("test", &format!("CREATE DATABASE {}", db.name))
            .expect("create a PostgreSQL database");
        db
    }

    pub fn exec(&self, sql: &str) -> String {
        psql(&self.name, sql).unwrap_or_else(|e| panic!("PostgreSQL: {e}\n{sql}"))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = psql(
            "test",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}
