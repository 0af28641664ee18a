//! Footage: `GET`/`HEAD /v1/segments/{id}/content`, with HTTP Range,
//! through the ledger's footage gate ([`governance::FootageGate`]: an
//! approval where the role needs one, a `segment.viewed` entry before any
//! byte, a refusal recorded as `access.refused`). The web console's player
//! answers with the same [`content_response`].
//!
//! This route must never send a byte before its `segment.viewed` entry is
//! durable, and never buffer a whole object in memory.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt as _;
use object_store::{GetOptions, GetRange};

use super::error::ApiError;
use super::extract::{Authed, Path};
use super::AppState;
use custos_ledger::governance;
use custos_ledger::wire::ErrorBody;

/// What a Range header asks for, against an object of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeAsk {
    /// No (usable) Range header: the whole object, 200.
    Whole,
    /// Bytes `[start, end]` (inclusive), 206.
    Part(u64, u64),
    /// Nothing of the object can satisfy it: 416.
    Unsatisfiable,
}

/// Parse a `Range` header value (RFC 9110 §14.1.2) for one byte range:
/// `bytes=a-b`, `bytes=a-`, `bytes=-n`. A header this server does not
/// handle (another unit, several ranges, malformed) is ignored, as the RFC
/// allows: the whole object is sent.
pub(crate) fn parse_range(value: Option<&str>, size: u64) -> RangeAsk {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return RangeAsk::Whole;
    };
    if spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAsk::Whole;
    };
    let num = |t: &str| -> Option<u64> {
        if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    match (a.trim(), b.trim()) {
        ("", n) => match num(n) {
            None => RangeAsk::Whole,
            Some(0) => RangeAsk::Unsatisfiable,
            Some(_) if size == 0 => RangeAsk::Unsatisfiable,
            Some(n) => RangeAsk::Part(size.saturating_sub(n), size - 1),
        },
        (a, "") => match num(a) {
            None => RangeAsk::Whole,
            Some(a) if a >= size => RangeAsk::Unsatisfiable,
            Some(a) => RangeAsk::Part(a, size - 1),
        },
        (a, b) => match (num(a), num(b)) {
            (Some(a), Some(b)) if a <= b => {
                if a >= size {
                    RangeAsk::Unsatisfiable
                } else {
                    RangeAsk::Part(a, b.min(size - 1))
                }
            }
            _ => RangeAsk::Whole,
        },
    }
}

/// The media type of a container as FFmpeg names it.
fn content_type(container: &str) -> &'static str {
    let c = container.to_ascii_lowercase();
    if c.contains("mp4") || c.contains("mov") {
        "video/mp4"
    } else if c.contains("webm") {
        "video/webm"
    } else if c.contains("matroska") {
        "video/x-matroska"
    } else if c.contains("avi") {
        "video/x-msvideo"
    } else if c.contains("mpegts") {
        "video/mp2t"
    } else if c.contains("mpeg") {
        "video/mpeg"
    } else {
        "application/octet-stream"
    }
}

/// Stream a segment's footage (HTTP Range), logged as an access.
///
/// A role listed in `[access] approval_required` needs an approved access
/// request covering the segment (directly or through a case); without one
/// the answer is 403 and the refused attempt is an `access.refused` entry.
/// Every answer with footage is preceded by a `segment.viewed` entry naming
/// the caller, the byte range and the request it rests on.
#[utoipa::path(
    get,
    path = "/v1/segments/{id}/content",
    tag = "retrieval",
    params(("id" = String, Path, description = "Segment id")),
    responses(
        (status = 200, description = "The whole footage", content_type = "video/mp4"),
        (status = 206, description = "The requested byte range", content_type = "video/mp4"),
        (status = 403, description = "No approved access request (the attempt is logged)", body = ErrorBody),
        (status = 404, description = "No such segment", body = ErrorBody),
        (status = 416, description = "The range is outside the footage", body = ErrorBody),
        (status = 503, description = "No object store configured", body = ErrorBody),
    )
)]
pub(super) async fn get_content(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    content_response(&state, &caller, &id, &method, &headers).await
}

/// The footage answer of [`get_content`], shared with the web console's
/// player (`crate::ui`): the same gate ([`governance::FootageGate`]), the
/// same `segment.viewed` entry before any byte, the same Range handling.
/// `HEAD` answers what `GET` would — the same status and headers, a
/// refusal recorded as `access.refused` — without a body and without a
/// view entry (no byte of footage leaves).
pub(crate) async fn content_response(
    state: &AppState,
    caller: &custos_ledger::auth::Caller,
    id: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let head = method == Method::HEAD;
    let record = state
        .ledger
        .segment(id)?
        .ok_or_else(|| ApiError::not_found(format!("no segment {id:?}")))?;
    let size = record.manifest.size;
    let ask = parse_range(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        size,
    );
    if ask == RangeAsk::Unsatisfiable {
        let mut resp = ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "range_not_satisfiable",
            format!("the range is outside segment {id:?}, which has {size} bytes"),
        )
        .into_response();
        if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
            resp.headers_mut().insert(header::CONTENT_RANGE, v);
        }
        return Ok(resp);
    }
    let objects = state.governance.objects.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_object_store",
            "this ledger has no object store configured ([storage] url), so it cannot serve footage",
        )
    })?;
    let key = object_store::path::Path::parse(&record.manifest.object.key).map_err(|e| {
        ApiError::internal(format!(
            "segment {id:?} has object key {:?} that the store cannot use: {e}",
            record.manifest.object.key
        ))
    })?;
    let part = match ask {
        RangeAsk::Part(a, b) => Some((a, b)),
        _ => None,
    };
    let (status, length) = match part {
        Some((a, b)) => (StatusCode::PARTIAL_CONTENT, b - a + 1),
        None => (StatusCode::OK, size),
    };
    if head {
        governance::check_footage_access(&state.ledger, &state.governance, caller, &record).await?;
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = status;
        footage_headers(resp.headers_mut(), &record, part, length);
        return Ok(resp);
    }
    // Logged before any byte leaves: if this fails, nothing is sent.
    let (receipt, _) =
        governance::record_view(&state.ledger, &state.governance, caller, &record, part).await?;
    let options = GetOptions {
        range: part.map(|(a, b)| GetRange::Bounded(a..b + 1)),
        ..GetOptions::default()
    };
    let got = objects.get_opts(&key, options).await.map_err(|e| match e {
        object_store::Error::NotFound { .. } => ApiError::new(
            StatusCode::NOT_FOUND,
            "object_missing",
            format!(
                "the footage of segment {id:?} is missing from the store at key {:?}",
                record.manifest.object.key
            ),
        ),
        other => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "object_store",
            format!("reading the footage of segment {id:?}: {other}"),
        ),
    })?;
    let body = Body::from_stream(got.into_stream().map_err(std::io::Error::other));
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    footage_headers(h, &record, part, length);
    h.insert("x-custos-entry", HeaderValue::from(receipt.seq));
    Ok(resp)
}

/// The headers of a footage answer (`GET` and `HEAD` alike).
fn footage_headers(
    h: &mut HeaderMap,
    record: &custos_ledger::catalogue::SegmentRecord,
    part: Option<(u64, u64)>,
    length: u64,
) {
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&record.manifest.media.container)),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if let Some((a, b)) = part {
        let size = record.manifest.size;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {a}-{b}/{size}")) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
}
