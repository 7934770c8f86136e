//! Request extractors that answer bad input in the envelope.
//!
//! axum's own `Json` rejects with a plain-text body; [`ApiJson`] turns the
//! same rejection into an [`Error`], so a malformed body gets the envelope, a
//! 4xx status and serde's message naming the offending field.

use axum::Json;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::Error;
use crate::request_limits::BodyLimit;

/// A JSON body of type `T`, or an [`Error`] that says what is wrong with it.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        // The limit in force (see `request_limits::enforce`), to name it in a 413.
        let limit = request.extensions().get::<BodyLimit>().copied();
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => match limit {
                Some(BodyLimit(limit)) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    Err(Error::BodyTooLarge { limit })
                }
                _ => Err(rejection.into()),
            },
        }
    }
}

/// Query parameters of type `T`, or an [`Error`] naming the bad parameter.
pub struct ApiQuery<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state)
                .await
                .map_err(|e| Error::InvalidBody(format!("query string: {}", e.body_text())))?;
        Ok(ApiQuery(value))
    }
}
