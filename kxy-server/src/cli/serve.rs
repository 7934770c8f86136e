//! Serving: the first-run guard, listening, and a graceful stop.

use std::sync::Arc;

use super::ServeArgs;
use crate::Error;
use crate::app::router_with;
use crate::identity::setup::SetupToken;
use crate::request_limits::HttpLimits;
use crate::state::AppState;

/// Requires the setup token for the first-run init where being first is not
/// enough (see [`SetupToken`]), and shows a generated one on the console
/// (stderr, not the log, which may be shipped elsewhere).
pub(super) async fn guard_first_run(args: &ServeArgs, state: &AppState) -> Result<(), Error> {
    let Some((token, generated)) =
        SetupToken::for_bind(args.bind, args.security.setup_token.as_deref())?
    else {
        return Ok(());
    };
    if generated && !state.auth.initialized().await? {
        eprintln!(
            "\nkxy-server is bound to {} and has no user yet. Create the first administrator \
             with POST /api/auth/init-user and this one-time setup token:\n\n    setup_token: {}\n",
            args.bind,
            token.as_str()
        );
    }
    state.auth.require_setup_token(token);
    Ok(())
}

pub(super) async fn run_server(
    args: &ServeArgs,
    state: AppState,
    limits: &HttpLimits,
) -> Result<(), Error> {
    let store = Arc::clone(state.segments.store());
    if let Err(e) = store.ping().await {
        // Serve anyway: /health reports it and the store may come back.
        tracing::warn!("store not reachable at start: {e}");
    }
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .map_err(|e| Error::Startup(format!("cannot listen on {}: {e}", args.bind)))?;
    let address = listener
        .local_addr()
        .map_err(|e| Error::Startup(format!("cannot read the bound address: {e}")))?;
    tracing::info!(
        "kxy-server {} listening on http://{address} (store: {} at {}, durability: {}, auto-create: {}, allocation requires an API key: {}, master key: {})",
        env!("CARGO_PKG_VERSION"),
        store.backend(),
        store.location(),
        state.segments.guard().report().mode,
        args.auto_create,
        args.security.allocation_requires_key,
        state
            .settings
            .vault
            .fingerprint()
            .unwrap_or("none, storing secrets disabled"),
    );
    let guard = Arc::clone(state.segments.guard());
    let app = router_with(state, limits);
    crate::serving::serve(listener, app, limits, shutdown_signal())
        .await
        .map_err(|e| Error::Startup(format!("server error: {e}")))?;
    if let Some(witness) = guard.witness() {
        guard.save_witness(witness).await;
    }
    tracing::info!("kxy-server stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
