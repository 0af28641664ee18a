//! Operations routes: health, metrics, the OpenAPI document.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::AppState;
use custos_ledger::wire::Health;

/// The OpenAPI document, serialised once when the router is built.
#[derive(Debug, Clone)]
pub(super) struct OpenApiDoc(pub Arc<String>);

/// Liveness and integrity: 200 `ok`, or 503 when the ledger refuses to
/// serve (tampered log) or to append (storage failure).
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "ops",
    responses(
        (status = 200, description = "Serving", body = Health),
        (status = 503, description = "Refusing to serve or to append", body = Health),
    )
)]
pub(super) async fn healthz(State(state): State<AppState>) -> Response {
    let size = state.ledger.published().size;
    let (status, code, message) = match (state.ledger.refusal(), state.ledger.append_refusal()) {
        (Some(t), _) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "tampered",
            Some(t.to_string()),
        ),
        (None, Some(a)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_failed",
            Some(a.to_string()),
        ),
        (None, None) => (StatusCode::OK, "ok", None),
    };
    (
        status,
        Json(Health {
            status: code.to_owned(),
            size,
            full_check: state.ledger.full_check().to_owned(),
            message,
        }),
    )
        .into_response()
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "ops",
    responses((status = 200, description = "Metrics", body = String, content_type = "text/plain"))
)]
pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.ledger.metrics().render(),
    )
        .into_response()
}

/// This API's OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "ops",
    responses((status = 200, description = "The OpenAPI document", body = Object))
)]
pub(super) async fn openapi_json(Extension(doc): Extension<OpenApiDoc>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.0.as_str().to_owned(),
    )
        .into_response()
}
