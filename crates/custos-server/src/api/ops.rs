//! Operations routes: health, metrics, the OpenAPI document.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::AppState;
use custos_ledger::wire::{Health, Readiness};

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
    let (status, code, message) = match ledger_refusal(&state) {
        Some((code, message)) => (StatusCode::SERVICE_UNAVAILABLE, code, Some(message)),
        None => (StatusCode::OK, "ok", None),
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

/// Why the ledger refuses to serve (`tampered`) or to append
/// (`storage_failed`), with the details; `None` while it does both.
fn ledger_refusal(state: &AppState) -> Option<(&'static str, String)> {
    if let Some(t) = state.ledger.refusal() {
        return Some(("tampered", t.to_string()));
    }
    state
        .ledger
        .append_refusal()
        .map(|a| ("storage_failed", a.to_string()))
}

/// How long `/readyz` waits for the object store before calling it
/// unreachable.
const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Liveness: the process answers (for a supervisor that restarts a hung
/// service). Says nothing about the log or the store.
#[utoipa::path(
    get,
    path = "/livez",
    tag = "ops",
    responses((status = 200, description = "The process answers", body = Readiness))
)]
pub(super) async fn livez() -> Response {
    Json(Readiness {
        status: "live".to_owned(),
        store: None,
        message: None,
    })
    .into_response()
}

/// Readiness: 200 when the ledger serves and appends and the object store
/// answers (a load balancer sends work only here); 503 with the reason
/// otherwise.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "ops",
    responses(
        (status = 200, description = "Ready for work", body = Readiness),
        (status = 503, description = "Not ready: the log, its storage or the object store", body = Readiness),
    )
)]
pub(super) async fn readyz(State(state): State<AppState>) -> Response {
    let store = match &state.governance.objects {
        None => Ok("not_configured"),
        Some(objects) => probe_store(objects.as_ref()).await.map(|()| "ok"),
    };
    let (status, message) = match (ledger_refusal(&state), &store) {
        (Some((code, message)), _) => (code, Some(message)),
        (None, Err(e)) => ("store_unreachable", Some(e.clone())),
        (None, Ok(_)) => ("ready", None),
    };
    let code = if status == "ready" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let store = match store {
        Ok(s) => s.to_owned(),
        Err(_) => "unreachable".to_owned(),
    };
    (
        code,
        Json(Readiness {
            status: status.to_owned(),
            store: Some(store),
            message,
        }),
    )
        .into_response()
}

/// Ask the store for an object that never exists: "not found" is an answer,
/// so the store is reachable and the credentials work; anything else (a
/// refused connection, a denied request, no answer in time) is not.
async fn probe_store(objects: &dyn object_store::ObjectStore) -> Result<(), String> {
    use object_store::ObjectStoreExt as _;
    let probe = object_store::path::Path::from("custos-readiness-probe");
    match tokio::time::timeout(STORE_PROBE_TIMEOUT, objects.head(&probe)).await {
        Err(_) => Err(format!(
            "the object store did not answer within {} s",
            STORE_PROBE_TIMEOUT.as_secs()
        )),
        Ok(Ok(_)) | Ok(Err(object_store::Error::NotFound { .. })) => Ok(()),
        Ok(Err(e)) => {
            // The details (endpoint, bucket) go to the log, not to whoever
            // asks: the route needs no token.
            tracing::warn!(error = %e, "readiness: the object store refused the probe");
            Err("the object store refused the probe (details in the ledger's log)".to_owned())
        }
    }
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
