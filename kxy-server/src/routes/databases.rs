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
use crate::openapi;
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

/// Lists the registered databases (passwords masked).
#[utoipa::path(
    get,
    path = "/api/database/list",
    tag = "databases",
    operation_id = "databases_list",
    responses(
        (status = 200, description = "Every registered database", body = openapi::Envelope<Vec<DatabaseView>>),
    )
)]
async fn list(State(state): State<AppState>) -> Result<Envelope<Vec<DatabaseView>>, Error> {
    Ok(Envelope::ok("ok", state.databases.list().await?))
}

/// Registers a database (MySQL/MariaDB, PostgreSQL or SQLite).
///
/// The password is sealed under the server's master key and shown masked.
#[utoipa::path(
    post,
    path = "/api/database/add",
    tag = "databases",
    operation_id = "databases_add",
    request_body = DatabaseForm,
    responses(
        (status = 200, description = "The registered database", body = openapi::Envelope<DatabaseView>),
        (status = 400, description = "A bad type, address, name or TLS setting, or a target the policy refuses (40002)", body = openapi::ErrorEnvelope),
        (status = 409, description = "Registered already (40902)", body = openapi::ErrorEnvelope),
        (status = 503, description = "A password without `--master-key` (50302), or the store is unavailable (50301)", body = openapi::ErrorEnvelope),
    )
)]
async fn add(
    State(state): State<AppState>,
    ApiJson(form): ApiJson<DatabaseForm>,
) -> Result<Envelope<DatabaseView>, Error> {
    Ok(Envelope::ok(
        "database registered",
        state.databases.add(form).await?,
    ))
}

/// One registered database.
#[utoipa::path(
    get,
    path = "/api/database/{guid}",
    tag = "databases",
    operation_id = "databases_get",
    params(("guid" = String, Path, description = "The registered database's guid")),
    responses(
        (status = 200, description = "The database", body = openapi::Envelope<DatabaseView>),
        (status = 404, description = "No such database (40402)", body = openapi::ErrorEnvelope),
    )
)]
async fn get_one(
    State(state): State<AppState>,
    Path(guid): Path<String>,
) -> Result<Envelope<DatabaseView>, Error> {
    Ok(Envelope::ok("ok", state.databases.get(&guid).await?))
}

/// Changes a registered database; absent fields stay.
///
/// Changing where it points (address, db_name, username, tls or tls_ca)
/// needs the password again.
#[utoipa::path(
    put,
    path = "/api/database/{guid}",
    tag = "databases",
    operation_id = "databases_update",
    params(("guid" = String, Path, description = "The registered database's guid")),
    request_body = DatabaseChange,
    responses(
        (status = 200, description = "The changed database", body = openapi::Envelope<DatabaseView>),
        (status = 400, description = "A bad value, or a new target without the password (40002)", body = openapi::ErrorEnvelope),
        (status = 404, description = "No such database (40402)", body = openapi::ErrorEnvelope),
        (status = 409, description = "Changed meanwhile; retry (40902)", body = openapi::ErrorEnvelope),
        (status = 503, description = "A password without `--master-key` (50302), or the store is unavailable (50301)", body = openapi::ErrorEnvelope),
    )
)]
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

/// Removes a registered database; its counters stay.
#[utoipa::path(
    delete,
    path = "/api/database/{guid}",
    tag = "databases",
    operation_id = "databases_delete",
    params(("guid" = String, Path, description = "The registered database's guid")),
    responses(
        (status = 200, description = "Removed", body = openapi::Envelope<openapi::Null>),
        (status = 404, description = "No such database (40402)", body = openapi::ErrorEnvelope),
    )
)]
async fn delete(
    State(state): State<AppState>,
    Path(guid): Path<String>,
) -> Result<Envelope<()>, Error> {
    state.databases.delete(&guid).await?;
    Ok(Envelope::ok("database removed; its counters stay", ()))
}

/// Initializes: a counter for every table, just above its largest ID.
///
/// Runs to the end even if the client disconnects. If the connection to the
/// database is lost half-way, the answer is 502 with the report of what
/// was registered before in `data`.
#[utoipa::path(
    post,
    path = "/api/database/initialize/{guid}",
    tag = "databases",
    operation_id = "databases_initialize",
    params(("guid" = String, Path, description = "The registered database's guid")),
    responses(
        (status = 200, description = "What was registered and skipped", body = openapi::Envelope<InitReport>),
        (status = 404, description = "No such database (40402)", body = openapi::ErrorEnvelope),
        (status = 409, description = "An initialize job is running for this database (40902)", body = openapi::ErrorEnvelope),
        (
            status = 502,
            description = "The database cannot be reached (50201, `data` null), or the \
                           connection was lost half-way (50201, `data` the report so far)",
            body = openapi::Envelope<InitReport>
        ),
    )
)]
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
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CustomCounter {
    field_name: String,
    /// The highest ID in use: the first handed out is one more.
    initial_value: i64,
    /// Default `custom`.
    #[serde(default = "custom")]
    #[schema(default = "custom")]
    table_name: String,
}

fn custom() -> String {
    "custom".into()
}

/// Adds a custom counter under a registered database.
#[utoipa::path(
    post,
    path = "/api/database/{guid}/add-config",
    tag = "databases",
    operation_id = "databases_add_config",
    params(("guid" = String, Path, description = "The registered database's guid")),
    request_body = CustomCounter,
    responses(
        (status = 200, description = "The counter", body = openapi::Envelope<RegisteredTable>),
        (status = 400, description = "A bad name or a negative initial value (40002)", body = openapi::ErrorEnvelope),
        (status = 404, description = "No such database (40402)", body = openapi::ErrorEnvelope),
    )
)]
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

/// What the scanner found in a database.
#[derive(Serialize, utoipa::ToSchema)]
struct Discovered {
    /// Tables with no counter yet.
    tables: Vec<DiscoveredTable>,
    /// How the scanner's last pass over this database ended.
    last_scan: Option<LastScan>,
}

/// Tables the scanner found that have no counter yet.
#[utoipa::path(
    get,
    path = "/api/database/{guid}/discovered-tables",
    tag = "databases",
    operation_id = "databases_discovered_tables",
    params(("guid" = String, Path, description = "The registered database's guid")),
    responses(
        (status = 200, description = "The tables and the last scan", body = openapi::Envelope<Discovered>),
        (status = 404, description = "No such database (40402)", body = openapi::ErrorEnvelope),
    )
)]
async fn discovered(
    State(state): State<AppState>,
    Path(guid): Path<String>,
) -> Result<Envelope<Discovered>, Error> {
    let tables = state.databases.discovered(&guid).await?;
    let last_scan = state.databases.last_scan(&guid).await?;
    Ok(Envelope::ok("ok", Discovered { tables, last_scan }))
}

/// Starts initializing as a job; follow it at `/api/database/jobs/{id}`.
#[utoipa::path(
    post,
    path = "/api/database/{guid}/jobs",
    tag = "databases",
    operation_id = "databases_start_job",
    params(("guid" = String, Path, description = "The registered database's guid")),
    responses(
        (status = 200, description = "The job, running", body = openapi::Envelope<Job>),
        (status = 404, description = "No such database (40402)", body = openapi::ErrorEnvelope),
        (status = 409, description = "A job is running for this database already (40902)", body = openapi::ErrorEnvelope),
    )
)]
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

/// An initialize job's progress and, when done, its report.
#[utoipa::path(
    get,
    path = "/api/database/jobs/{id}",
    tag = "databases",
    operation_id = "databases_job",
    params(("id" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job", body = openapi::Envelope<Job>),
        (status = 404, description = "No such job (40402)", body = openapi::ErrorEnvelope),
    )
)]
async fn job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Envelope<Job>, Error> {
    Ok(Envelope::ok("ok", state.databases.job(&id).await?))
}

/// Dismisses a discovered table: the scanner will not list it again.
#[utoipa::path(
    delete,
    path = "/api/database/{guid}/discovered-tables/{table}",
    tag = "databases",
    operation_id = "databases_dismiss_table",
    params(("guid" = String, Path, description = "The registered database's guid"), ("table" = String, Path, description = "The table's name")),
    responses(
        (status = 200, description = "Dismissed", body = openapi::Envelope<openapi::Null>),
        (status = 404, description = "No such database or discovered table (40402)", body = openapi::ErrorEnvelope),
    )
)]
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

/// Approves a discovered table: registers its counter above its largest ID.
#[utoipa::path(
    post,
    path = "/api/database/{guid}/discovered-tables/{table}/approve",
    tag = "databases",
    operation_id = "databases_approve_table",
    params(("guid" = String, Path, description = "The registered database's guid"), ("table" = String, Path, description = "The table's name")),
    responses(
        (status = 200, description = "The table's counter", body = openapi::Envelope<RegisteredTable>),
        (status = 404, description = "No such database or discovered table (40402)", body = openapi::ErrorEnvelope),
        (status = 502, description = "The database cannot be reached or read (50201)", body = openapi::ErrorEnvelope),
    )
)]
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

/// Tests a registered database's connection.
///
/// Connects with the stored settings and password, reads the table list and
/// changes nothing (module doc of `databases::probe`).
#[utoipa::path(
    post,
    path = "/api/database/{guid}/test",
    tag = "databases",
    operation_id = "databases_test_connection",
    params(("guid" = String, Path, description = "The registered database's guid")),
    responses(
        (status = 200, description = "Connected: what was found", body = openapi::Envelope<ConnectionTest>),
        (status = 400, description = "The stored target is outside the server's policy (40002)", body = openapi::ErrorEnvelope),
        (status = 404, description = "No such database (40402)", body = openapi::ErrorEnvelope),
        (status = 502, description = "The database cannot be reached or read; the message says why (50201)", body = openapi::ErrorEnvelope),
    )
)]
async fn test_connection(
    State(state): State<AppState>,
    Path(guid): Path<String>,
) -> Result<Envelope<ConnectionTest>, Error> {
    let found = state.databases.test_connection(&guid).await?;
    Ok(Envelope::ok(tested(&found), found))
}

/// Tests an unsaved registration form; nothing is stored.
///
/// Takes the body of `POST /api/database/add` and checks it the same way,
/// then connects with the password the form carries.
#[utoipa::path(
    post,
    path = "/api/database/test",
    tag = "databases",
    operation_id = "databases_test_form",
    request_body = DatabaseForm,
    responses(
        (status = 200, description = "Connected: what was found", body = openapi::Envelope<ConnectionTest>),
        (status = 400, description = "A bad field, or a target the policy refuses (40002)", body = openapi::ErrorEnvelope),
        (status = 502, description = "The database cannot be reached or read; the message says why (50201)", body = openapi::ErrorEnvelope),
    )
)]
async fn test_form(
    State(state): State<AppState>,
    ApiJson(form): ApiJson<DatabaseForm>,
) -> Result<Envelope<ConnectionTest>, Error> {
    let found = state.databases.test_form(form).await?;
    Ok(Envelope::ok(tested(&found), found))
}
