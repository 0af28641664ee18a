//! Extractors that turn every bad request into an [`ApiError`] of the one
//! JSON shape, instead of axum's plain-text rejections.
//!
//! - [`Query`], [`Path`]: axum's, with the rejection mapped to 400;
//! - [`Json`]: a body parsed as a serde type (checked as [`JsonBody`]);
//! - [`JsonBody`]: the raw bytes of a JSON body after checking, in order,
//!   the content type (415), the size (413, from the router's body limit),
//!   and that the bytes are UTF-8 (400, naming the offset). Handlers parse
//!   it with the strict parser of their type ([`JsonBody::parse`] for serde
//!   types, `Envelope::parse` for envelopes);
//! - [`Authed`]: the [`Caller`] the authorisation middleware put on the
//!   request (401 if there is none);
//! - `optional_body`: a JSON body that may be empty (then the default).
//!
//! None of these may panic or answer 5xx on anything a client sends.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use custos_ledger::auth::{AuthError, Caller};

/// axum's `Query`, answering a malformed query with a JSON 400.
#[derive(Debug, Clone)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| ApiError::bad_request("bad_query", e.body_text()))
    }
}

/// axum's `Path`, answering a malformed path parameter with a JSON 400.
#[derive(Debug, Clone)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| ApiError::bad_request("bad_path", e.body_text()))
    }
}

/// A JSON request body, checked for content type, size and UTF-8.
#[derive(Debug, Clone)]
pub struct JsonBody(pub Bytes);

impl JsonBody {
    /// Parse the body as `T` (strictly as `T`'s serde impl says), answering
    /// a mismatch with a 400 that names the line and column.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.0).map_err(|e| {
            ApiError::bad_request(
                "bad_json",
                format!("the request body is not valid JSON for this request: {e}"),
            )
        })
    }
}

/// Whether a content type is JSON: `application/json` or `application/*+json`,
/// with any parameters.
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("<not text>").to_owned());
        match content_type.as_deref() {
            Some(ct) if is_json(ct) => {}
            Some(ct) => {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    format!(
                    "the request body must be JSON (Content-Type: application/json), not {ct:?}"
                ),
                ))
            }
            None => {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "the request needs Content-Type: application/json",
                ))
            }
        }
        let body = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    "the request body is larger than this server accepts",
                )
            } else {
                ApiError::bad_request(
                    "bad_body",
                    format!("the request body could not be read: {}", e.body_text()),
                )
            }
        })?;
        if body.is_empty() {
            return Err(ApiError::bad_request(
                "empty_body",
                "the request body is empty; a JSON document is expected",
            ));
        }
        if let Err(e) = std::str::from_utf8(&body) {
            return Err(ApiError::bad_request(
                "not_utf8",
                format!(
                    "the request body is not UTF-8 (invalid byte at offset {})",
                    e.valid_up_to()
                ),
            ));
        }
        Ok(JsonBody(body))
    }
}

/// A JSON body parsed as `T`: [`JsonBody`]'s checks, then `T`'s serde
/// impl; every failure is a JSON 4xx.
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let body = JsonBody::from_request(req, state).await?;
        body.parse().map(Json)
    }
}

/// The authenticated caller of a route that needs a token.
#[derive(Debug, Clone)]
pub struct Authed(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .map(Authed)
            .ok_or_else(|| AuthError::Missing.into())
    }
}

/// An optional JSON body: empty means the default.
pub(super) fn optional_body<T: serde::de::DeserializeOwned + Default>(
    body: &Bytes,
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "bad_json",
            format!("the request body is not valid JSON for this request: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("Application/JSON"));
        assert!(is_json("application/vnd.dsse.envelope+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/jsonx"));
        assert!(!is_json(""));
    }
}
