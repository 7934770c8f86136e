//! The `kxy-server counters` subcommands and the command line's errors.

use kxy_e2e::server::{ServerProcess, run_cli};
use serde_json::Value;

fn add(data_dir: &str, table: &str, start: &str) -> (bool, String, String) {
    let out = run_cli(
        &[
            "--data-dir",
            data_dir,
            "counters",
            "add",
            "--system",
            "crm",
            "--db",
            "main",
            "--table",
            table,
            "--field",
            "id",
            "--start",
            start,
        ],
        &[],
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn add_and_list_counters() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();

    let (ok, stdout, _) = add(data_dir, "orders", "41");
    assert!(ok);
    assert_eq!(
        stdout.trim(),
        "registered crm:main:orders:id at 41; the first ID handed out will be 42"
    );
    let (ok, stdout, _) = add(data_dir, "orders", "7");
    assert!(ok);
    assert!(
        stdout.contains("already stands at 41 (next ID 42); left unchanged"),
        "{stdout}"
    );
    let (ok, stdout, _) = add(data_dir, "orders", "100");
    assert!(ok);
    assert!(
        stdout.contains("raised crm:main:orders:id from 41 to 100"),
        "{stdout}"
    );
    assert!(add(data_dir, "users", "0").0);

    let out = run_cli(&["--data-dir", data_dir, "counters", "list", "--json"], &[]);
    assert!(out.status.success());
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2);
    assert_eq!(rows[0]["table_name"], "orders");
    assert_eq!(rows[0]["current"], 100);
    assert_eq!(rows[0]["next_id"], 101);
    assert_eq!(rows[1]["table_name"], "users");

    // The environment variable names the data directory as well as the flag.
    let out = run_cli(&["counters", "list"], &[("KXY_DATA_DIR", data_dir)]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("COUNTER"), "{table}");
    assert!(table.contains("crm:main:users:id"), "{table}");
}

#[test]
fn bad_arguments_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();

    let (ok, _, stderr) = add(data_dir, "bad:name", "0");
    assert!(!ok);
    assert!(
        stderr.contains("table_name contains ':' at position 3"),
        "{stderr}"
    );
    let (ok, _, stderr) = add(data_dir, "orders", "-1");
    assert!(!ok);
    assert!(
        stderr.contains("start must be between 0 and 9223372036854775806; got -1"),
        "{stderr}"
    );
    let (ok, _, stderr) = add(data_dir, "orders", "abc");
    assert!(!ok);
    assert!(
        stderr.contains("invalid value 'abc' for '--start"),
        "{stderr}"
    );

    let out = run_cli(&["--auto-create", "maybe"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'maybe'"));
    let out = run_cli(
        &["--max-segment", "0", "counters", "list"],
        &[("KXY_DATA_DIR", data_dir)],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-segment"));
    let out = run_cli(&["--store", "etcd", "counters", "list"], &[]);
    assert_eq!(out.status.code(), Some(2));
    // Nothing was registered by any of it.
    let out = run_cli(&["--data-dir", data_dir, "counters", "list"], &[]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "no counters registered"
    );
}

#[test]
fn the_embedded_store_belongs_to_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let _server = ServerProcess::start(&["--data-dir", data_dir], &[]);
    let (ok, _, stderr) = add(data_dir, "orders", "0");
    assert!(!ok);
    assert!(
        stderr.contains("is in use by another kxy-server process"),
        "{stderr}"
    );

    let out = run_cli(&["--data-dir", data_dir, "--bind", "127.0.0.1:1"], &[]);
    assert!(!out.status.success());
}
