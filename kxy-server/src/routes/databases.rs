//! Registered databases (seed 004): the seed's paths, admin-only.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::Method;
use serde::{Deserialize, Serialize};

use super::{Access, RouteSpec, route};
use crate::Error;
use crate::databases::{
    ConnectionTest, DatabaseChange, DatabaseForm, DatabaseView, DiscoveredTable, InitReport, Job,
    LastScan, RegisteredTable,
};
use crate::envelope::Envelope;
use crate::extract::ApiJson;
use crate::state::AppState;

pub fn routes() -> Vec<RouteSpec> {
    let read = Access::Permission("databases:read");
    let write = Access::Permission("databases:write");
    vec![
        route(Method::GET, "/api/database/list", read, list),
        route(Method::POST, "/api/database/add", write, add),
        route(Method::GET, "/api/database/{guid}", read, get_one),
        route(Method::PUT, "/api/database/{guid}", write, update),
        route(Method::DELETE, "/api/database/{guid}", write, delete),
        route(
            Method::POST,
            "/api/database/initialize/{guid}",
            write,
            initialize,
        ),
        route(
            Method::POST,
            "/api/database/{guid}/add-config",
            write,
            add_config,
        ),
        route(
            Method::GET,
            "/api/database/{guid}/discovered-tables",
            read,
            discovered,
        ),
        route(
            Method::POST,
            "/api/database/{guid}/discovered-tables/{table}/approve",
            write,
            approve,
        ),
        route(
            Method::DELETE,
            "/api/database/{guid}/discovered-tables/{table}",
            write,
            dismiss,
        ),
        route(Method::POST, "/api/database/{guid}/jobs", write, start_job),
        route(Method::GET, "/api/database/jobs/{id}", read, job),
        // Connects with the stored settings and changes nothing, so read
        // suffices: the target and password are the ones a writer stored
        // (the scanner connects there anyway and shows readers its errors).
        route(
            Method::POST,
            "/api/database/{guid}/test",
            read,
            test_connection,
        ),
        // An unsaved form says where to connect: as much power as adding.
        route(Method::POST, "/api/database/test", write, test_form),
    ]
}

async fn list(State(state): State<AppState>) -> Result<Envelope<Vec<DatabaseView>>, Error> {
    Ok(Envelope::ok("ok", state.databases.list().await?))
}

async fn add(
    State(state): State<AppState>,
    ApiJson(form): ApiJson<DatabaseForm>,
) -> Result<Envelope<DatabaseView>, Error> {
    Ok(Envelope::ok(
        "database registered",
        state.databases.add(form).await?,
    ))
}

async fn get_one(
    State(state): State<AppState>,
    Path(guid): Path<String>,
) -> Result<Envelope<DatabaseView>, Error> {
    Ok(Envelope::ok("ok", state.databases.get(&guid).await?))
}

async fn update(
    State(state): State<AppState>,
    Path(guid): Path<String>,
    ApiJson(change): ApiJson<DatabaseChange>,
) -> Result<Envelope<DatabaseView>, Error> {
    Ok(Envelope::ok(
        "database updated",
        state.databases.update(&guid, change).await?,
    ))
}

async fn delete(
    State(state): State<AppState>,
    Path(guid): Path<String>,
) -> Result<Envelope<()>, Error> {
    state.databases.delete(&guid).await?;
    Ok(Envelope::ok("database removed; its counters stay", ()))
}

async fn initialize(
    State(state): State<AppState>,
    Path(guid): Path<String>,
) -> Result<Envelope<InitReport>, Error> {
    // On a task of its own: a client that disconnects does not stop it
    // half-way (the jobs routes also tell its progress).
    let databases = Arc::clone(&state.databases);
    let report = tokio::spawn(async move { databases.initialize(&guid, |_, _, _| {}).await })
        .await
        .map_err(|_| Error::Internal)??;
    if let Some(cause) = &report.failed {
        let msg = format!(
            "initializing stopped: {cause}; {} tables registered before",
            report.registered.len()
        );
        return Ok(Envelope::failure_with(
            axum::http::StatusCode::BAD_GATEWAY,
            50201,
            msg,
            report,
        ));
    }
    let msg = format!(
        "initialized: {} of {} tables registered, {} skipped",
        report.registered.len(),
        report.tables_total,
        report.skipped.len()
    );
    Ok(Envelope::ok(msg, report))
}

/// The seed's custom counter: a field name and an initial value; the table
/// part of the counter's name defaults to `custom`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomCounter {
    field_name: String,
    initial_value: i64,
    #[serde(default = "custom")]
    table_name: String,
}

fn custom() -> String {
    "custom".into()
}

async fn add_config(
    State(state): State<AppState>,
    Path(guid): Path<String>,
    ApiJson(body): ApiJson<CustomCounter>,
) -> Result<Envelope<RegisteredTable>, Error> {
    let registered = state
        .databases
        .add_config(
            &guid,
            &body.table_name,
            &body.field_name,
            body.initial_value,
        )
        .await?;
    Ok(Envelope::ok(
        format!("counter {}", registered.outcome),
        registered,
    ))
}

#[derive(Serialize)]
struct Discovered {
    tables: Vec<DiscoveredTable>,
    /// How the scanner's last pass over this database ended.
    last_scan: Option<LastScan>,
}

async fn discovered(
    State(state): State<AppState>,
    Path(guid): Path<String>,
) -> Result<Envelope<Discovered>, Error> {
    let tables = state.databases.discovered(&guid).await?;
    let last_scan = state.databases.last_scan(&guid).await?;
    Ok(Envelope::ok("ok", Discovered { tables, last_scan }))
}

/// Starts initializing as a job (the module doc of `databases::jobs`).
async fn start_job(
    State(state): State<AppState>,
    Path(guid): Path<String>,
) -> Result<Envelope<Job>, Error> {
    let job = state.databases.start_job(&guid).await?;
    Ok(Envelope::ok(
        format!(
            "initialize job started; follow it at /api/database/jobs/{}",
            job.id
        ),
        job,
    ))
}

async fn job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Envelope<Job>, Error> {
    Ok(Envelope::ok("ok", state.databases.job(&id).await?))
}

async fn dismiss(
    State(state): State<AppState>,
    Path((guid, table)): Path<(String, String)>,
) -> Result<Envelope<()>, Error> {
    state.databases.dismiss(&guid, &table).await?;
    Ok(Envelope::ok(
        "table dismissed: the scanner will not list it again",
        (),
    ))
}

async fn approve(
    State(state): State<AppState>,
    Path((guid, table)): Path<(String, String)>,
) -> Result<Envelope<RegisteredTable>, Error> {
    Ok(Envelope::ok(
        "table approved",
        state.databases.approve(&guid, &table).await?,
    ))
}

/// The words of a successful test.
fn tested(found: &ConnectionTest) -> String {
    format!(
        "connected{} in {} ms: {} table{} visible, {} can be numbered",
        found
            .server_version
            .as_deref()
            .map(|v| format!(" to {v}"))
            .unwrap_or_default(),
        found.elapsed_ms,
        found.tables,
        if found.tables == 1 { "" } else { "s" },
        found.numberable
    )
}

/// Tests a registered database's connection (module doc of
/// `databases::probe`).
async fn test_connection(
    State(state): State<AppState>,
    Path(guid): Path<String>,
) -> Result<Envelope<ConnectionTest>, Error> {
    let found = state.databases.test_connection(&guid).await?;
    Ok(Envelope::ok(tested(&found), found))
}

/// Tests an unsaved registration form; nothing is stored.
async fn test_form(
    State(state): State<AppState>,
    ApiJson(form): ApiJson<DatabaseForm>,
) -> Result<Envelope<ConnectionTest>, Error> {
    let found = state.databases.test_form(form).await?;
    Ok(Envelope::ok(tested(&found), found))
}
