//! The JSON body of a request: always an object. serde would otherwise
//! also read a struct from an array (`[null, null]` as a change of nothing
//! at all), which the OpenAPI document does not allow and no client means.

use axum::Json;
use axum::extract::{FromRequest, OptionalFromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ErrorBody;

/// A request body: a JSON object read into `T`. Refusals: 400 (not
/// JSON), 415 (not sent as `application/json`), 422 (not an object, or
/// not the fields `T` takes).
pub(crate) struct JsonObject<T>(pub(crate) T);

fn unprocessable(error: String) -> Response {
    (StatusCode::UNPROCESSABLE_ENTITY, Json(ErrorBody { error })).into_response()
}

/// `T` from a JSON value that must be an object; why not, if not.
fn object<T: DeserializeOwned>(value: Value) -> Result<T, String> {
    if !value.is_object() {
        return Err("the body must be a JSON object ({...})".to_owned());
    }
    serde_json::from_value(value)
        .map_err(|e| format!("Failed to deserialize the JSON body into the target type: {e}"))
}

impl<T, S> FromRequest<S> for JsonObject<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(value) = <Json<Value> as FromRequest<S>>::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        object(value).map(JsonObject).map_err(unprocessable)
    }
}

/// An optional body: none when the request has no `Content-Type` (no
/// body), or when the body is `null`.
impl<T, S> OptionalFromRequest<S> for JsonObject<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        if !req.headers().contains_key(header::CONTENT_TYPE) {
            return Ok(None);
        }
        let Json(value) = <Json<Value> as FromRequest<S>>::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        if value.is_null() {
            return Ok(None);
        }
        object(value)
            .map(|t| Some(JsonObject(t)))
            .map_err(unprocessable)
    }
}
