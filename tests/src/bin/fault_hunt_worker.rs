//! The load and the judge of `scripts/fault-hunt`.
//!
//! `fault_hunt_worker run` is one client process: 16 threads (by default)
//! take IDs of one counter from kxy servers until together they have taken
//! `--ids`, the way applications do: raw `SegmentClient` allocations of
//! random sizes, a generator shared by several threads (`next_ids`), and a
//! generator per thread (`next_id` one at a time, and `next_ids`). Each
//! thread writes down every range it was handed (consecutive IDs merged);
//! at the end the process writes them to `--out` (16 bytes a range: start
//! and end, little-endian i64) and prints a one-line JSON summary.
//!
//! `fault_hunt_worker check FILE...` reads every worker's file, sorts all
//! ranges and checks exact coverage: any ID in two ranges is an overlap
//! (exit 1); IDs that no one received are gaps (burnt by a crash or left in
//! a buffer), counted and reported. It prints the figures as JSON.
//!
//! The script runs the workers while it kills servers and Redis; the worker
//! itself injects nothing.

use std::io::{BufWriter, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kxy_client::{
    BlockingSegmentClient, ClientConfig, ClientError, GeneratorConfig, IdGenerator, SegmentClient,
    SegmentKey,
};
use kxy_core::Segment;
use kxy_e2e::faults::coverage;
use serde_json::json;

const USAGE: &str = "usage:
  fault_hunt_worker run --urls URL[,URL...] --table T --ids N --out FILE \
[--threads 16] [--max-seconds 1800] [--seed S] [--progress FILE] \
[--raw-max 1000] [--run-max 10000] [--generator-max 5000]
  fault_hunt_worker check FILE...";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("check") if args.len() > 1 => check(&args[1..]),
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    }
}

/// `--name value` from `args`.
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.windows(2)
        .find(|pair| pair[0] == name)
        .map(|pair| pair[1].as_str())
}

fn required<'a>(args: &'a [String], name: &str) -> &'a str {
    flag(args, name).unwrap_or_else(|| {
        eprintln!("missing {name}\n{USAGE}");
        std::process::exit(2)
    })
}

fn number(args: &[String], name: &str, default: u64) -> u64 {
    flag(args, name).map_or(default, |v| {
        v.parse().unwrap_or_else(|_| {
            eprintln!("{name} must be a number, got {v}");
            std::process::exit(2)
        })
    })
}

/// The ranges one thread was handed, consecutive ones merged.
#[derive(Default)]
struct Ranges {
    ranges: Vec<Segment>,
    ids: u64,
}

impl Ranges {
    fn push(&mut self, segment: Segment) {
        self.ids += segment.len();
        match self.ranges.last_mut() {
            Some(last) if last.end.checked_add(1) == Some(segment.start) => last.end = segment.end,
            _ => self.ranges.push(segment),
        }
    }
}

/// What went wrong, counted per kind, with the first message of each.
#[derive(Default)]
struct Failures {
    count: AtomicU64,
    kinds: Mutex<Vec<(String, u64, String)>>,
}

impl Failures {
    fn record(&self, error: &ClientError) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let kind = match error.root() {
            ClientError::Api { status, code, .. } => format!("HTTP {status} code {code}"),
            ClientError::Connection { .. } => "connection".into(),
            ClientError::Timeout { .. } => "timeout".into(),
            ClientError::InvalidResponse { .. } => "invalid response".into(),
            ClientError::Redirect { status, .. } => format!("redirect {status}"),
            ClientError::InvalidArgument(_) => "invalid argument".into(),
            ClientError::Unavailable { .. } => "unavailable".into(),
            ClientError::WentBackwards { .. } => "segment discarded: store went backwards".into(),
            ClientError::StoreMismatch { .. } => "segment discarded: another store".into(),
        };
        let mut kinds = self.kinds.lock().unwrap();
        match kinds.iter_mut().find(|(k, _, _)| *k == kind) {
            Some((_, n, _)) => *n += 1,
            None => kinds.push((kind, 1, error.to_string())),
        }
    }
}

/// xorshift64: request sizes without a dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// 1..=max
    fn upto(&mut self, max: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % max + 1
    }
}

/// How a thread takes its IDs.
#[derive(Clone, Copy, Debug)]
enum Style {
    /// `SegmentClient::allocate` of 1..=`--raw-max` IDs.
    Raw,
    /// `next_ids(1..=--run-max)` on a generator shared with other threads.
    SharedRuns,
    /// `next_id()` 1000 times or `next_ids(1..=--run-max)` on its own
    /// generator.
    OwnGenerator,
}

fn run(args: &[String]) {
    let urls: Vec<&str> = required(args, "--urls").split(',').collect();
    let table = required(args, "--table");
    let total_ids = number(args, "--ids", 0);
    let threads = number(args, "--threads", 16).max(1);
    let max_seconds = number(args, "--max-seconds", 1800);
    let seed = number(args, "--seed", std::process::id() as u64);
    let out = required(args, "--out").to_owned();
    let progress_file = flag(args, "--progress").map(str::to_owned);
    // Sizes: small enough that the store is asked often (many allocations
    // to crash in the middle of), large enough to move 10^9 IDs.
    let raw_max = number(args, "--raw-max", 1000).max(1);
    let run_max = number(args, "--run-max", 10_000).max(1);
    let generator_max = number(args, "--generator-max", 5000).max(1000);
    let key = SegmentKey::new("sys", "db", table, "id").expect("a valid counter name");
    let config = ClientConfig::new(&urls)
        .and_then(|c| c.timeout(Duration::from_secs(10)))
        .expect("valid base URLs");
    let generator_config = || {
        GeneratorConfig::with_bounds(1000, 1000, generator_max as i64)
            .expect("generator bounds")
            .with_max_wait(Duration::from_secs(20))
            .expect("a positive max_wait")
    };
    let shared = IdGenerator::new(
        SegmentClient::new(config.clone()).expect("client"),
        key.clone(),
        generator_config(),
    );
    let failures = Arc::new(Failures::default());
    let deadline = Instant::now() + Duration::from_secs(max_seconds);
    let started = Instant::now();
    let per_thread = total_ids.div_ceil(threads);
    // IDs taken so far by all threads, written to --progress for the script.
    let progress = Arc::new(AtomicU64::new(0));
    if let Some(path) = progress_file {
        let progress = Arc::clone(&progress);
        std::thread::spawn(move || {
            let temp = format!("{path}.tmp");
            loop {
                let taken = format!("{}\n", progress.load(Ordering::Relaxed));
                if std::fs::write(&temp, taken).is_ok() {
                    let _ = std::fs::rename(&temp, &path);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
    }

    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let style = match t % 4 {
                0 | 1 => Style::Raw,
                2 => Style::SharedRuns,
                _ => Style::OwnGenerator,
            };
            let raw = BlockingSegmentClient::new(config.clone()).expect("client");
            let own = IdGenerator::new(
                SegmentClient::new(config.clone()).expect("client"),
                key.clone(),
                generator_config(),
            );
            let (shared, failures, key, progress) = (
                shared.clone(),
                Arc::clone(&failures),
                key.clone(),
                Arc::clone(&progress),
            );
            std::thread::spawn(move || {
                let mut rng = Rng::new(seed ^ (t + 1).wrapping_mul(0xA24B_AED4_963E_E407));
                let mut got = Ranges::default();
                while got.ids < per_thread && Instant::now() < deadline {
                    let before = got.ids;
                    let want = rng.upto(match style {
                        Style::Raw => raw_max,
                        _ => run_max,
                    }) as i64;
                    // A finished next_id() burst has been recorded ID by ID: None.
                    let result = match style {
                        Style::Raw => raw.allocate(&key, want).map(Some),
                        Style::SharedRuns => shared.next_ids(want).map(Some),
                        Style::OwnGenerator if want % 2 == 0 => own.next_ids(want).map(Some),
                        Style::OwnGenerator => (0..1000)
                            .try_for_each(|_| {
                                own.next_id()
                                    .map(|id| got.push(Segment { start: id, end: id }))
                            })
                            .map(|()| None),
                    };
                    match result {
                        Ok(None) => {}
                        Ok(Some(segment)) => {
                            assert_eq!(
                                segment.len(),
                                want as u64,
                                "{style:?} asked for {want}, got {segment:?}"
                            );
                            got.push(segment);
                        }
                        Err(e) => {
                            failures.record(&e);
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                    progress.fetch_add(got.ids - before, Ordering::Relaxed);
                }
                got
            })
        })
        .collect();

    let mut ranges = Vec::new();
    let mut ids = 0u64;
    for handle in handles {
        let got = handle.join().expect("a worker thread panicked");
        ids += got.ids;
        ranges.extend(got.ranges);
    }
    let file = std::fs::File::create(&out).expect("create --out file");
    let mut writer = BufWriter::new(file);
    for r in &ranges {
        writer.write_all(&r.start.to_le_bytes()).unwrap();
        writer.write_all(&r.end.to_le_bytes()).unwrap();
    }
    writer.flush().expect("write --out file");
    let kinds = failures.kinds.lock().unwrap();
    println!(
        "{}",
        json!({
            "pid": std::process::id(),
            "ids": ids,
            "ranges": ranges.len(),
            "complete": ids >= total_ids,
            "failed_calls": failures.count.load(Ordering::Relaxed),
            "failures": kinds.iter().map(|(kind, n, first)| json!({
                "kind": kind, "count": n, "first": first
            })).collect::<Vec<_>>(),
            "seconds": started.elapsed().as_secs_f64(),
        })
    );
}

fn check(files: &[String]) {
    let mut ranges = Vec::new();
    for path in files {
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .unwrap_or_else(|e| panic!("read {path}: {e}"));
        assert_eq!(bytes.len() % 16, 0, "{path} is not a list of ranges");
        for chunk in bytes.chunks_exact(16) {
            let start = i64::from_le_bytes(chunk[..8].try_into().unwrap());
            let end = i64::from_le_bytes(chunk[8..].try_into().unwrap());
            assert!(
                1 <= start && start <= end,
                "{path}: bad range {start}..{end}"
            );
            ranges.push(Segment { start, end });
        }
    }
    let c = coverage(&mut ranges);
    let fmt = |s: &Segment| format!("{}..={}", s.start, s.end);
    println!(
        "{}",
        json!({
            "files": files.len(),
            "ranges": c.segments,
            "ids": c.ids.to_string(),
            "lowest": c.lowest,
            "highest": c.highest,
            "overlaps": c.overlap_count,
            "overlap_examples": c.overlaps.iter().map(|(a, b)| format!("{} and {}", fmt(a), fmt(b))).collect::<Vec<_>>(),
            "gaps": c.gaps,
            "gap_ids": c.gap_ids.to_string(),
            "largest_gaps": c.largest_gaps.iter().map(fmt).collect::<Vec<_>>(),
        })
    );
    if c.overlap_count > 0 {
        eprintln!("OVERLAP: {c}");
        std::process::exit(1);
    }
}
