//! The API description: an OpenAPI 3.1 document of every route in
//! [`routes::inventory`], served at `/openapi.json` (and as Swagger UI at
//! `/docs`, see `web::docs`).
//!
//! The document is put together from two sources, so that neither can drift:
//!
//! - each handler's `#[utoipa::path(...)]` says what it takes and answers:
//!   method, path, operation id, tag, summary (the handler's doc comment),
//!   parameters, request body and the responses particular to it;
//! - the inventory says who may call it: [`document`] walks
//!   [`routes::inventory`] and writes each operation's `security`, the access
//!   it needs into its description, and the answers every route of that kind
//!   can give (401/403 for guarded routes; 400/408/413/415 for routes with a
//!   JSON body; 500 and 503 everywhere), as references to
//!   `components/responses`.
//!
//! # Describing a new route
//!
//! 1. Declare it in its module's `routes()` as usual (the inventory).
//! 2. Give its handler a doc comment (first line: the summary; the rest: the
//!    description) and a `#[utoipa::path]` attribute, as the other handlers
//!    of the module have:
//!
//!    ```text
//!    /// Lists the counters.
//!    #[utoipa::path(
//!        get, path = "/api/counters", tag = "counters", operation_id = "counters_list",
//!        responses(
//!            (status = 200, description = "Every counter", body = openapi::Envelope<Vec<CounterView>>),
//!            (status = 404, description = "No such counter (40402)", body = openapi::ErrorEnvelope),
//!        )
//!    )]
//!    ```
//!
//!    - `path` is the inventory's, `{name}` parameters listed in
//!      `params(("name" = String, Path, description = "..."))`; query
//!      strings as a struct deriving `utoipa::IntoParams` (`params(ListQuery)`).
//!    - `operation_id` is `<module>_<handler>`: handler names repeat across
//!      modules (`list`, `create`), ids may not.
//!    - `request_body = T` for a JSON body (`T` derives `utoipa::ToSchema`);
//!      answers are `openapi::Envelope<T>` with `data` of type `T`
//!      ([`Null`] when `data` is null); errors are [`ErrorEnvelope`].
//!    - Describe only the errors particular to the route (404, 409, a 400
//!      with its rule, ...). Do not write `security` or the common errors:
//!      [`document`] adds them from the route's [`Access`].
//! 3. Derive `utoipa::ToSchema` on the types of its body and answer (doc
//!    comments become the schema's descriptions). A field of a `kxy-core`
//!    type takes `#[schema(value_type = ...)]` naming its mirror in
//!    [`core_types`].
//! 4. List the handler in `paths(...)` of [`ApiDoc`] below.
//!
//! `cargo test -p kxy-server --test openapi` fails, naming the route, until
//! every route of the inventory is described (and nothing else is).

use std::collections::BTreeMap;

use axum::http::Method;
use serde::Serialize;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    Content, InfoBuilder, LicenseBuilder, OpenApi as Document, Ref, RefOr, ServerBuilder,
};
use utoipa::{OpenApi, PartialSchema, ToSchema};

use crate::routes::{self, ALLOCATE, Access};

/// The envelope every API answer comes in: `{code, msg, data, traceId}`.
/// `code` is 0 on success; `data` is the operation's result.
#[derive(Serialize, ToSchema)]
pub struct Envelope<T> {
    /// 0: success.
    #[schema(example = 0)]
    pub code: i64,
    /// What happened, for people.
    pub msg: String,
    pub data: T,
    /// The request's trace id: also in the `X-Trace-Id` header and on the
    /// server's log lines for the request.
    #[serde(rename = "traceId")]
    #[schema(example = "4bf92f3577b34da6a3ce929d0e0e4736")]
    pub trace_id: Option<String>,
}

/// A refusal: `code` is the HTTP status times 100 plus a reason (the table
/// is in the document's description), `msg` says what was wrong, `data` is
/// null.
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    /// The HTTP status times 100 plus a reason, e.g. 40402.
    #[schema(example = 40402, minimum = 40000, maximum = 59999)]
    pub code: i64,
    /// What was wrong; names the field, permission or record concerned.
    #[schema(example = "user 0123456789abcdef0123456789abcdef not found")]
    pub msg: String,
    pub data: Null,
    /// The request's trace id (also in the `X-Trace-Id` header).
    #[serde(rename = "traceId")]
    pub trace_id: Option<String>,
}

/// `data` of an answer that carries none: always null.
#[derive(Serialize)]
pub struct Null;

impl PartialSchema for Null {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Null)
            .description(Some("Always null."))
            .into()
    }
}

impl ToSchema for Null {}

/// How the `kxy-core` types in answers and bodies look in JSON. `kxy-core`
/// does not depend on utoipa; fields of these types name these mirrors with
/// `#[schema(value_type = ...)]`.
pub mod core_types {
    use serde::Serialize;
    use utoipa::ToSchema;

    /// A permission: `resource:action`, lower-case letters, digits and `_`;
    /// either part may be `*` (any).
    #[derive(ToSchema)]
    #[schema(
        example = "users:write",
        pattern = r"^([a-z0-9_]{1,64}|\*):([a-z0-9_]{1,64}|\*)$"
    )]
    pub struct Permission(pub String);

    /// How much a grant allows, in order: read < write < admin.
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "lowercase")]
    pub enum Level {
        Read,
        Write,
        Admin,
    }

    /// Who a grant is for: a user (by id) or a role (by name).
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "lowercase", tag = "type", content = "id")]
    pub enum Subject {
        /// A user, by id.
        User(String),
        /// A role, by name.
        Role(String),
    }

    /// An API endpoint of some service, as registered with kxy.
    #[derive(ToSchema)]
    pub struct Endpoint {
        pub id: String,
        /// `GET`, `POST`, `PUT`, `PATCH`, `DELETE`, `HEAD`, `OPTIONS` or `*`.
        pub method: String,
        /// A path pattern in normal form: literal segments, `{name}` for one
        /// segment, `*` only as the last.
        pub path: String,
        /// False: anyone may call it (no grant needed).
        pub require_auth: bool,
    }

    /// A level on an endpoint for a user or role.
    #[derive(ToSchema)]
    pub struct Grant {
        pub id: String,
        pub subject: Subject,
        pub endpoint_id: String,
        pub level: Level,
        /// Unix seconds after which the grant no longer counts.
        pub expires_at: Option<u64>,
        /// The id of the user who made the grant.
        pub granted_by: String,
    }
}

/// Every envelope code the server answers with (see `crate::error`); the
/// document's description carries this table.
pub const ERROR_CODES: &str = "\
| HTTP | code | when |
| --- | --- | --- |
| 200 | 0 | success |
| 400 | 40001 | the body (or query string) is not JSON of the right shape: the message names the missing, unknown or mistyped field |
| 400 | 40002 | a value breaks a rule: bad characters or length of a name, `segment_count` outside 1..max, a weak password, an unknown role; the message names the field |
| 401 | 40100 | no credentials sent |
| 401 | 40101 | invalid username or password |
| 401 | 40102 | the token or API key is invalid, expired or revoked |
| 403 | 40301 | the caller lacks the permission named in the message |
| 403 | 40302 | the account is disabled |
| 403 | 40303 | the first-run init needs the setup token |
| 403 | 40304 | a browser-session request (`/api/auth/session*`) that is not the page's own (no `X-KXY-CSRF: 1`, or another origin) |
| 404 | 40400 | no such route |
| 404 | 40401 | the counter is not registered |
| 404 | 40402 | the user, role, key, credential, database, endpoint, grant or job does not exist |
| 405 | 40500 | wrong method for the route |
| 408 | 40800 | the request took longer than `--request-timeout` |
| 409 | 40901 | the counter cannot hand out that many more IDs without passing 2^63-1 |
| 409 | 40902 | a conflict: the name is taken, the record changed meanwhile, or the change would leave no administrator |
| 409 | 40903 | the system is already initialized |
| 409 | 40904 | a fenced counter was raised to less than its floor |
| 413 | 41300 | the body is over `--max-body-bytes` |
| 415 | 41500 | the body is not sent as `application/json` |
| 429 | 42901 | too many failed logins: the account is locked (`Retry-After` says for how long) |
| 500 | 50000 | a bug; the server log has details under the trace id |
| 500 | 50001 | a stored counter value is not a number |
| 500 | 50002 | a stored secret cannot be opened (sealed under a key this server lacks, or altered) |
| 502 | 50201 | a registered database cannot be reached or read |
| 503 | 50301 | the store is unreachable or failing; retry later or on another instance |
| 503 | 50302 | storing secrets is disabled: the server has no `--master-key` |
| 503 | 50303 | the store went backwards for this counter (or it is fenced since) |
| 503 | 50304 | the store is not durable enough for `--redis-durability`, or is a replica (the message names the setting) |
| 503 | 50305 | under `replicas:N`, too few replicas acknowledged the allocation in time |
| 503 | 50306 | too many password checks at once; retry after `Retry-After` |
| 503 | 50307 | more connections than `--max-connections` |
| 503 | 50308 | the Redis node refused a write: it is a read-only replica |
| 503 | 50309 | Redis is out of memory and refused the write |
| 503 | 50310 | the store changed (restart, failover, rollback): instances are comparing what they handed out; retry in seconds |
";

const DESCRIPTION: &str = "\
kxy hands out ID segments over HTTP, atomically and durably, and manages the \
users, roles, API keys, stored credentials, endpoint grants and registered \
databases around them.

Every answer is the envelope `{code, msg, data, traceId}`: `code` 0 is \
success, anything else a refusal with the fitting HTTP status and `data: null` \
(`/health` and `POST /api/database/initialize/{guid}` also explain a failure in \
`data`). A refused request changes nothing. Send your own `X-Trace-Id` (up to \
64 of `A-Z a-z 0-9 - _`) to have it used as the trace id.

**Authentication.** Log in with `POST /api/auth/login` and send the access \
token as `Authorization: Bearer <token>` (scheme `bearer`), or send an API key \
as the two headers `X-API-Key` (the key id) and `X-API-Secret` (the secret) \
(schemes `api_key` + `api_secret`, always together; the secret alone also \
works as `Authorization: Bearer sk-kxy-...`). Each operation says what it \
needs.

**Envelope codes**

";

/// The parts of the document the annotations give: paths, the schemas they
/// reach, tags and security schemes.
#[derive(OpenApi)]
#[openapi(
    paths(
        routes::health::health,
        routes::auth::check_init,
        routes::auth::init_user,
        routes::auth::login,
        routes::auth::refresh,
        routes::auth::logout,
        routes::auth::change_password,
        crate::web::session::login,
        crate::web::session::refresh,
        crate::web::session::change_password,
        crate::web::session::logout,
        routes::segments::allocate,
        routes::users::list,
        routes::users::create,
        routes::users::me,
        routes::users::get_one,
        routes::users::update,
        routes::users::delete,
        routes::users::reset_password,
        routes::users::unlock,
        routes::roles::list,
        routes::roles::create,
        routes::roles::get_one,
        routes::roles::update,
        routes::roles::delete,
        routes::roles::catalog,
        routes::access::list_endpoints,
        routes::access::create_endpoint,
        routes::access::get_endpoint,
        routes::access::update_endpoint,
        routes::access::delete_endpoint,
        routes::access::list_grants,
        routes::access::create_grant,
        routes::access::delete_grant,
        routes::access::check,
        routes::counters::list,
        routes::counters::add,
        routes::counters::raise,
        routes::keys::create,
        routes::keys::list,
        routes::keys::update,
        routes::keys::delete,
        routes::credentials::list,
        routes::credentials::create,
        routes::credentials::get_one,
        routes::credentials::update,
        routes::credentials::delete,
        routes::credentials::reveal,
        routes::databases::list,
        routes::databases::add,
        routes::databases::get_one,
        routes::databases::update,
        routes::databases::delete,
        routes::databases::initialize,
        routes::databases::add_config,
        routes::databases::discovered,
        routes::databases::approve,
        routes::databases::dismiss,
        routes::databases::start_job,
        routes::databases::job,
        routes::databases::test_connection,
        routes::databases::test_form,
    ),
    components(schemas(ErrorEnvelope, Null)),
    tags(
        (name = "health", description = "Whether this instance is up and can reach its store."),
        (name = "segments", description = "ID segment allocation: the seed's endpoint, used by every client."),
        (name = "auth", description = "First run, login, token refresh, logout and one's own password."),
        (name = "users", description = "Users: the administrators' list and changes, and `users/me`."),
        (name = "roles", description = "Roles and the permission catalog."),
        (name = "access", description = "Endpoint grants: kxy as the access-control point of other services."),
        (name = "counters", description = "Counters: registration, listing and the raise after a store went backwards."),
        (name = "keys", description = "API keys for programs: one's own, or everyone's with `keys:admin`."),
        (name = "credentials", description = "A user's stored upstream credentials, sealed by the server's master key."),
        (name = "databases", description = "Registered databases, their initialization and the table scanner."),
    ),
)]
pub struct ApiDoc;

/// The security scheme names, as operations' requirements name them.
pub const BEARER: &str = "bearer";
pub const API_KEY: &str = "api_key";
pub const API_SECRET: &str = "api_secret";

/// The whole document: the annotations' paths, with security, access and
/// the common answers added from [`routes::inventory`].
pub fn document() -> Document {
    let mut doc = ApiDoc::openapi();
    doc.info = InfoBuilder::new()
        .title("kxy")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(format!("{DESCRIPTION}{ERROR_CODES}")))
        .license(Some(
            LicenseBuilder::new()
                .name("MIT")
                .identifier(Some("MIT"))
                .build(),
        ))
        .build();
    doc.servers = Some(vec![
        ServerBuilder::new()
            .url("/")
            .description(Some("The server that serves this document"))
            .build(),
    ]);
    let components = doc.components.get_or_insert_with(Default::default);
    components.security_schemes.extend(security_schemes());
    components.responses.extend(common_responses());
    for route in routes::inventory() {
        if let Some(operation) = operation_mut(&mut doc, &route.method, route.path) {
            describe_access(operation, route.access);
        }
    }
    doc
}

/// The operation of `method` on `path`, if the annotations describe it.
pub fn operation_mut<'d>(
    doc: &'d mut Document,
    method: &Method,
    path: &str,
) -> Option<&'d mut Operation> {
    let item = doc.paths.paths.get_mut(path)?;
    let slot = match *method {
        Method::GET => &mut item.get,
        Method::POST => &mut item.post,
        Method::PUT => &mut item.put,
        Method::PATCH => &mut item.patch,
        Method::DELETE => &mut item.delete,
        Method::HEAD => &mut item.head,
        Method::OPTIONS => &mut item.options,
        _ => return None,
    };
    slot.as_mut()
}

fn security_schemes() -> BTreeMap<String, RefOr<SecurityScheme>> {
    let bearer = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .bearer_format("JWT")
        .description(Some(
            "`Authorization: Bearer <access token>`: the `access_token` of \
             `POST /api/auth/login` (or `/api/auth/refresh`), a JWT. An API key's secret \
             (`sk-kxy-...`) is also accepted here in place of the two `X-API-*` headers.",
        ))
        .build();
    let key = ApiKey::Header(ApiKeyValue::with_description(
        "X-API-Key",
        "An API key's id (`POST /api/keys` answers it as `id`). Always sent together with \
         `X-API-Secret`: the two are one credential.",
    ));
    let secret = ApiKey::Header(ApiKeyValue::with_description(
        "X-API-Secret",
        "The API key's secret (`sk-kxy-...`, shown once when the key is created). Always sent \
         together with `X-API-Key`.",
    ));
    BTreeMap::from([
        (BEARER.to_owned(), RefOr::T(SecurityScheme::Http(bearer))),
        (API_KEY.to_owned(), RefOr::T(SecurityScheme::ApiKey(key))),
        (
            API_SECRET.to_owned(),
            RefOr::T(SecurityScheme::ApiKey(secret)),
        ),
    ])
}

/// A login session's token (or a key's secret as a bearer token).
fn bearer_requirement() -> SecurityRequirement {
    SecurityRequirement::new(BEARER, Vec::<String>::new())
}

/// An API key: both headers, one requirement.
fn api_key_requirement() -> SecurityRequirement {
    SecurityRequirement::new(API_KEY, Vec::<String>::new()).add(API_SECRET, Vec::<String>::new())
}

/// The answers routes share, by the name operations refer to them with.
fn common_responses() -> BTreeMap<String, RefOr<Response>> {
    let error = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    Content::new(Some(Ref::from_schema_name("ErrorEnvelope"))),
                )
                .build(),
        )
    };
    BTreeMap::from([
        (
            "BadRequest".to_owned(),
            error(
                "The body or query string is not JSON of the right shape (40001: the message \
                 names the missing, unknown or mistyped field), or a value breaks a rule \
                 (40002: the message names the field).",
            ),
        ),
        (
            "Unauthorized".to_owned(),
            error(
                "No credentials (40100), or the token or API key is invalid, expired or \
                 revoked (40102).",
            ),
        ),
        (
            "Forbidden".to_owned(),
            error("The caller lacks the permission named in the message (40301)."),
        ),
        (
            "RequestTimeout".to_owned(),
            error("The request did not arrive within `--request-timeout` (40800)."),
        ),
        (
            "PayloadTooLarge".to_owned(),
            error("The body is over `--max-body-bytes` (41300)."),
        ),
        (
            "UnsupportedMediaType".to_owned(),
            error("The body is not sent as `Content-Type: application/json` (41500)."),
        ),
        (
            "InternalError".to_owned(),
            error(
                "A bug (50000; the server log has details under the trace id), or stored data \
                 kxy cannot read (50001, 50002).",
            ),
        ),
        (
            "Unavailable".to_owned(),
            error(
                "The store is unreachable or failing (50301), password checks are at capacity \
                 (50306, with `Retry-After`), or the server is at `--max-connections` (50307). \
                 Retry later or on another instance.",
            ),
        ),
    ])
}

/// What the inventory says about a route, written into its operation.
fn describe_access(operation: &mut Operation, access: Access) {
    let (security, needs) = match access {
        Access::Public => (None, "Public: no credentials needed.".to_owned()),
        Access::LoggedIn => (
            Some(vec![bearer_requirement(), api_key_requirement()]),
            "Requires a logged-in caller: any user's access token, or an API key (which acts \
             as its owner)."
                .to_owned(),
        ),
        Access::Own(permission) => (
            Some(vec![bearer_requirement(), api_key_requirement()]),
            format!(
                "Acts on the caller's own records. Requires a login session (any user), or \
                 an API key whose scope includes permission `{permission}` (an unscoped key \
                 holds it)."
            ),
        ),
        Access::Permission(permission) => (
            Some(vec![bearer_requirement(), api_key_requirement()]),
            format!(
                "Requires permission `{permission}` (through the user's roles, or in the API \
                 key's scope)."
            ),
        ),
        Access::Allocation => (
            Some(vec![
                SecurityRequirement::default(),
                api_key_requirement(),
                bearer_requirement(),
            ]),
            format!(
                "Public by default: no credentials needed. A server started with \
                 `--allocation-requires-key` requires an API key holding `{ALLOCATE}` (as \
                 `X-API-Key` + `X-API-Secret`, or its secret as `Authorization: Bearer \
                 sk-kxy-...`); a login session's token is then refused (400)."
            ),
        ),
    };
    operation.security = security;
    operation.description = Some(match operation.description.take() {
        Some(text) if !text.is_empty() => format!("{text}\n\n{needs}"),
        _ => needs,
    });
    let mut common: Vec<(&str, &str)> = Vec::new();
    if access != Access::Public {
        common.push(("401", "Unauthorized"));
        common.push(("403", "Forbidden"));
    }
    if operation.request_body.is_some() {
        common.push(("400", "BadRequest"));
        common.push(("408", "RequestTimeout"));
        common.push(("413", "PayloadTooLarge"));
        common.push(("415", "UnsupportedMediaType"));
    }
    common.push(("500", "InternalError"));
    common.push(("503", "Unavailable"));
    let responses = &mut operation.responses.responses;
    for (status, name) in common {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
    }
}

/// The document as JSON, built once.
pub fn json() -> &'static [u8] {
    static JSON: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
        serde_json::to_vec(&document()).expect("the API description serializes")
    });
    JSON.as_slice()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table in the description names every code `crate::error` gives.
    #[test]
    fn error_table_lists_every_code() {
        let source = include_str!("error.rs");
        let mut codes: Vec<&str> = source
            .split(|c: char| !c.is_ascii_digit())
            .filter(|t| t.len() == 5 && (t.starts_with('4') || t.starts_with('5')))
            .collect();
        codes.sort_unstable();
        codes.dedup();
        assert!(codes.len() > 20, "{codes:?}");
        for code in codes {
            assert!(
                ERROR_CODES.contains(&format!("| {code} |")),
                "envelope code {code} (crate::error) is missing from openapi::ERROR_CODES"
            );
        }
    }
}
