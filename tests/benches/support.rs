//! A warm generator against a real server, shared by the benchmarks.

use std::time::Duration;

use kxy_client::{ClientConfig, GeneratorConfig, IdGenerator, SegmentClient, SegmentKey};
use kxy_e2e::server::ServerProcess;

/// A release server on the embedded store (auto-creating the counter) and a
/// generator that has fetched its first segment. Keep the server alive as
/// long as the generator is used.
pub fn warm_generator() -> (tempfile::TempDir, ServerProcess, IdGenerator) {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_owned();
    let server = ServerProcess::start(&["--data-dir", &data_dir, "--auto-create"], &[]);
    let client = SegmentClient::new(ClientConfig::new([server.base_url()]).unwrap()).unwrap();
    let key = SegmentKey::new("bench", "db", "orders", "id").unwrap();
    let config = GeneratorConfig::with_bounds(1_000_000, 1_000_000, 10_000_000).unwrap();
    let ids = IdGenerator::new(client, key, config);
    for _ in 0..3_000_000 {
        ids.next_id().unwrap();
    }
    std::thread::sleep(Duration::from_millis(50));
    (dir, server, ids)
}
