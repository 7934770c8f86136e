//! `POST /api/segment/allocate`: the seed's allocation endpoint, unchanged in
//! shape so the Python client `kxy-open-id-client` works against it.

use axum::Extension;
use axum::extract::State;
use axum::http::Method;
use kxy_core::SegmentKey;
use serde::{Deserialize, Serialize};

use super::{Access, RouteSpec, route};
use crate::Error;
use crate::envelope::Envelope;
use crate::extract::ApiJson;
use crate::identity::auth::Caller;
use crate::openapi;
use crate::segments::ClientMark;
use crate::state::AppState;

pub fn routes() -> Vec<RouteSpec> {
    // Public by default, as in the seed and for kxy-open-id-client;
    // --allocation-requires-key asks for an API key (see the guard).
    vec![route(
        Method::POST,
        "/api/segment/allocate",
        Access::Allocation,
        allocate,
    )]
}

/// The request body. The seed's five fields are required, unknown fields are
/// refused (a misspelt field is an error rather than a silent default).
/// kxy's clients may add `store_id` and `high_water`: the store their
/// segments of this counter came from and the highest ID they received, so
/// that a server with no marks of its own still notices a store that went
/// backwards. Either both or neither.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AllocateRequest {
    /// The counter's four names: 1 to 128 of `A-Z a-z 0-9 _ - . $`.
    #[schema(example = "my-system")]
    pub system_code: String,
    #[schema(example = "my_database")]
    pub db_name: String,
    #[schema(example = "users")]
    pub table_name: String,
    #[schema(example = "id")]
    pub field_name: String,
    /// How many IDs: 1 to the server's `--max-segment`.
    #[schema(example = 10000)]
    pub segment_count: i64,
    /// kxy's clients: the store their last segment of this counter came
    /// from (with `high_water`).
    #[serde(default)]
    pub store_id: Option<String>,
    /// kxy's clients: the highest ID they received from that store (with
    /// `store_id`).
    #[serde(default)]
    pub high_water: Option<i64>,
}

/// The answer's `data`: the seed's `start` and `end` (inclusive), and the id
/// of the store they came from (clients pin a counter to its store).
#[derive(Serialize, utoipa::ToSchema)]
struct Allocation {
    /// The first ID of the segment.
    start: i64,
    /// The last ID of the segment (inclusive).
    end: i64,
    /// 32 hex digits naming the store the segment came from.
    store_id: String,
}

/// Allocates a segment of IDs.
///
/// The seed's allocation endpoint, unchanged in shape for the Python client
/// `kxy-open-id-client`: `end - start + 1 == segment_count`, and no ID is
/// ever handed out twice.
#[utoipa::path(
    post,
    path = "/api/segment/allocate",
    tag = "segments",
    operation_id = "segments_allocate",
    request_body = AllocateRequest,
    responses(
        (status = 200, description = "The segment", body = openapi::Envelope<Allocation>),
        (
            status = 400,
            description = "A missing, unknown or mistyped field (40001); a bad name, a count \
                           outside 1..max, or `store_id` without `high_water` (40002); with \
                           `--allocation-requires-key`, a login token instead of an API key",
            body = openapi::ErrorEnvelope
        ),
        (status = 404, description = "The counter is not registered (40401)", body = openapi::ErrorEnvelope),
        (
            status = 409,
            description = "The counter cannot hand out that many more IDs (40901)",
            body = openapi::ErrorEnvelope
        ),
        (
            status = 503,
            description = "The store is unreachable (50301), went backwards for this counter or \
                           is behind the client's `high_water` (50303; under \
                           `--allocation-requires-key`, from a key that also holds \
                           `counters:write`, that client's mark fences the counter), is not durable enough or not a primary (50304), too few \
                           replicas acknowledged (50305), a read-only replica or out of memory \
                           (50308, 50309), or the store changed and the instances are comparing \
                           what they handed out (50310)",
            body = openapi::ErrorEnvelope
        ),
    )
)]
async fn allocate(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    ApiJson(request): ApiJson<AllocateRequest>,
) -> Result<Envelope<Allocation>, Error> {
    // A fence moves a counter, which is counters:write's to do: a client's
    // mark fences for everyone only when an authenticated caller holds it.
    let vouched = caller.is_some_and(|Extension(caller)| {
        caller
            .permissions
            .allows(&"counters:write".parse().expect("a valid permission"))
    });
    let key = SegmentKey::new(
        &request.system_code,
        &request.db_name,
        &request.table_name,
        &request.field_name,
    )?;
    let mark = match (request.store_id, request.high_water) {
        (Some(store_id), Some(high_water)) => Some(ClientMark {
            store_id,
            high_water,
            vouched,
        }),
        (None, None) => None,
        _ => {
            return Err(Error::invalid(
                "store_id",
                "store_id and high_water are sent together or not at all",
            ));
        }
    };
    let allocated = state
        .segments
        .allocate(&key, request.segment_count, mark.as_ref())
        .await?;
    let segment = allocated.segment;
    let msg = format!("Allocated segment: {} to {}", segment.start, segment.end);
    let data = Allocation {
        start: segment.start,
        end: segment.end,
        store_id: allocated.store_id.to_string(),
    };
    Ok(Envelope::ok(msg, data))
}
