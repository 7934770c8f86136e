//! The `kxy-server` binary: parses the command line, sets up logging, runs.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use kxy_server::cli::{Cli, run};
use tracing_subscriber::EnvFilter;

/// mimalloc instead of the system allocator: a request allocates and frees
/// many small buffers across threads, where glibc's malloc showed up as
/// ~15% of the server's CPU under load (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr; `RUST_LOG` overrides the default level (`info`).
fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
