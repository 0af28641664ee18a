//! `GET /v1/supervision`: the supervisor's view over a period, per officer
//! and recorder ([`custos_ledger::governance::supervision`]), as JSON or,
//! with `format=csv` or `Accept: text/csv`, as a CSV file for a
//! spreadsheet (cells that a spreadsheet would run as formulas are
//! neutralised). The handler parses and answers; the counting is the
//! ledger's.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::error::ApiError;
use super::extract::Query;
use super::AppState;
use custos_ledger::governance;
use custos_ledger::wire::{ErrorBody, Supervision, SupervisionQuery};

/// Whether the caller asks for CSV: `format=csv`, or no `format` and an
/// `Accept` naming `text/csv`. Another `format` is refused.
fn wants_csv(q: &SupervisionQuery, headers: &HeaderMap) -> Result<bool, ApiError> {
    match q.format.as_deref() {
        Some("csv") => Ok(true),
        Some("json") => Ok(false),
        Some(other) => Err(ApiError::bad_request(
            "bad_query",
            format!("format={other:?}: expected csv or json"),
        )),
        None => Ok(headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|m| {
                m.split(';')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/csv"))
            })),
    }
}

/// The supervisor's view: per officer and recorder over `[from, to)`, the
/// recording time, files, late ingests, damaged files and open and
/// explained coverage findings.
#[utoipa::path(
    get,
    path = "/v1/supervision",
    tag = "coverage",
    params(SupervisionQuery),
    responses(
        (status = 200, description = "The rows (JSON, or text/csv with format=csv or Accept: text/csv)", body = Supervision),
        (status = 400, description = "A malformed period, one ending before it starts, or one longer than 366 days", body = ErrorBody),
    )
)]
pub(super) async fn supervision(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<SupervisionQuery>,
) -> Result<Response, ApiError> {
    let csv = wants_csv(&q, &headers)?;
    let ledger = state.ledger.clone();
    let view = tokio::task::spawn_blocking(move || governance::supervision(&ledger, &q))
        .await
        .map_err(|e| ApiError::internal(format!("counting the supervision view: {e}")))??;
    if !csv {
        return Ok(Json(view).into_response());
    }
    Ok(csv_response(&view))
}

/// The view as a CSV download named after its period.
pub(crate) fn csv_response(view: &Supervision) -> Response {
    let name = format!(
        "supervision_{}_{}.csv",
        view.from.replace(':', ""),
        view.to.replace(':', "")
    );
    let mut r = governance::to_csv(&view.rows).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}
