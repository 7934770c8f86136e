//! The README's Rust quick start (`examples/rust/quickstart.rs`), run as written.

use std::process::Command;

use kxy_e2e::server::{ServerProcess, workspace_binary};

#[test]
fn the_rust_quickstart_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let store = ["--data-dir", data_dir];
    let out = kxy_e2e::server::run_cli(
        &[
            "--data-dir",
            data_dir,
            "counters",
            "add",
            "--system",
            "my-system",
            "--db",
            "my_database",
            "--table",
            "users",
            "--field",
            "id",
            "--start",
            "0",
        ],
        &[],
    );
    assert!(out.status.success());
    let server = ServerProcess::start(&store, &[]);
    let out = Command::new(workspace_binary("quickstart"))
        .env("KXY_URL", server.base_url())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "first id: 1\na batch: 2 to 1001\n"
    );
}

#[test]
fn the_readme_shows_the_examples_as_they_are() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    for example in [
        "examples/rust/quickstart.rs",
        "examples/python/quickstart.py",
    ] {
        let code = std::fs::read_to_string(root.join(example)).unwrap();
        assert!(
            readme.contains(&code),
            "README.md does not show {example} as it is"
        );
    }
}
