//! [`ApiError`]: the one error shape of the API, `{"error": code, "message": text}`.
//!
//! Every failure a handler, an extractor or a middleware can produce becomes
//! an `ApiError` through a `From` impl here, so the status code of each
//! library error is decided in one place. Client errors (4xx) are logged at
//! debug level; server errors (5xx) at error level, with the request span.
//!
//! This module must never put a token or a stack trace into a response.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use custos_ledger::append::RejectionKind;
use custos_ledger::auth::AuthError;
use custos_ledger::catalogue::SearchError;
use custos_ledger::error::{AppendError, ReadError, StoreError};
use custos_ledger::governance::GovernanceError;
use custos_ledger::ledger::{EventError, TokenError};
use custos_ledger::wire::ErrorBody;

/// An error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable code (`error` field).
    pub code: String,
    /// The message (`message` field).
    pub message: String,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// 400 with `code`.
    pub fn bad_request(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 501 `not_implemented`.
    pub fn not_implemented(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_IMPLEMENTED, "not_implemented", message)
    }

    /// 500 `internal`.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), code = %self.code, message = %self.message, "request failed");
        } else {
            tracing::debug!(status = self.status.as_u16(), code = %self.code, message = %self.message, "request refused");
        }
        let unauthorized = self.status == StatusCode::UNAUTHORIZED;
        let mut response = (
            self.status,
            Json(ErrorBody {
                error: self.code,
                message: self.message,
            }),
        )
            .into_response();
        if unauthorized {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"custos\""),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage", e.to_string())
    }
}

impl From<ReadError> for ApiError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::OutOfRange(m) => ApiError::bad_request("out_of_range", m),
            ReadError::Store(s) => s.into(),
            ReadError::Tampered(_) | ReadError::Refused(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ledger_tampered",
                e.to_string(),
            ),
        }
    }
}

impl From<AppendError> for ApiError {
    fn from(e: AppendError) -> Self {
        let message = e.to_string();
        match e {
            AppendError::Invalid(_) => ApiError::bad_request("invalid_entry", message),
            AppendError::Rejected(r) => {
                let status = match r.kind {
                    RejectionKind::Conflict => StatusCode::CONFLICT,
                    RejectionKind::NotFound => StatusCode::NOT_FOUND,
                    RejectionKind::Forbidden => StatusCode::FORBIDDEN,
                    _ => StatusCode::BAD_REQUEST,
                };
                ApiError::new(status, &r.code, r.message)
            }
            AppendError::Closed => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", message)
            }
            AppendError::Storage(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage_failed", message)
            }
            AppendError::Tampered(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "ledger_tampered", message)
            }
        }
    }
}

impl From<EventError> for ApiError {
    fn from(e: EventError) -> Self {
        let message = e.to_string();
        let (status, code) = match e {
            EventError::Append(a) => return a.into(),
            EventError::Envelope(_) => (StatusCode::BAD_REQUEST, "bad_envelope"),
            EventError::NotADock(_) => (StatusCode::FORBIDDEN, "forbidden"),
            EventError::NoKey(_) => (StatusCode::FORBIDDEN, "no_registered_key"),
            EventError::UnknownKey { .. } => (StatusCode::FORBIDDEN, "unknown_key"),
            EventError::BadSignature(_) => (StatusCode::FORBIDDEN, "bad_signature"),
            EventError::WrongPayloadType { .. } => (StatusCode::BAD_REQUEST, "wrong_payload_type"),
            EventError::BadEvent(_) => (StatusCode::BAD_REQUEST, "bad_event"),
            EventError::ActionForbidden(_) => (StatusCode::FORBIDDEN, "action_forbidden"),
            EventError::BadManifest(_) => (StatusCode::BAD_REQUEST, "bad_manifest"),
        };
        ApiError::new(status, code, message)
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Append(a) => a.into(),
            TokenError::Store(s) => s.into(),
            TokenError::NotFound { .. } => ApiError::not_found(e.to_string()),
            other => ApiError::bad_request("bad_token_request", other.to_string()),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let message = e.to_string();
        let (status, code) = match e {
            AuthError::Missing => (StatusCode::UNAUTHORIZED, "missing_token"),
            AuthError::Malformed => (StatusCode::UNAUTHORIZED, "malformed_token"),
            AuthError::Invalid => (StatusCode::UNAUTHORIZED, "invalid_token"),
            AuthError::Revoked { .. } => (StatusCode::UNAUTHORIZED, "revoked_token"),
            AuthError::Expired { .. } => (StatusCode::UNAUTHORIZED, "expired_token"),
            AuthError::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            AuthError::Store(s) => return s.into(),
        };
        ApiError::new(status, code, message)
    }
}

impl From<SearchError> for ApiError {
    fn from(e: SearchError) -> Self {
        match e {
            SearchError::Store(s) => s.into(),
            other => ApiError::bad_request("bad_query", other.to_string()),
        }
    }
}

impl From<GovernanceError> for ApiError {
    fn from(e: GovernanceError) -> Self {
        match e {
            GovernanceError::Invalid(m) => ApiError::bad_request("invalid_request", m),
            GovernanceError::Append(a) => a.into(),
            GovernanceError::Read(r) => r.into(),
        }
    }
}
