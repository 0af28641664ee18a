//! `POST /v1/exports`: record an export and stream its bundle
//! ([`custos_ledger::export`]) as `application/x-tar`.
//!
//! The export entry is appended and the bundle's small members gathered
//! before the answer starts, so a refused or impossible export is a JSON
//! error. The tar is then written on a blocking thread into a bounded
//! channel that feeds the response body: memory stays at a few chunks
//! whatever the footage's size. An error after the first byte can only cut
//! the body short (the client sees a truncated transfer, and a truncated
//! tar fails verification as unreadable).
//!
//! This handler must never buffer a bundle whole, and never start a
//! response before the export entry is durable.

use std::io::{self, Write};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::error::ApiError;
use super::extract::{Authed, Json};
use super::AppState;
use custos_ledger::export::{self, ExportError, ExportRequest, ObjectFootage};
use custos_ledger::wire::ErrorBody;

/// Bytes gathered before a chunk is handed to the response body.
const CHUNK: usize = 256 << 10;
/// Chunks in flight between the writer thread and the response.
pub(super) const CHANNEL_CHUNKS: usize = 4;

/// The body of `POST /v1/exports`: segment ids or a case, and a reason.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ExportBody {
    /// The segments to export.
    #[serde(default)]
    segments: Vec<String>,
    /// A case whose linked segments are exported (with `segments`, both).
    #[serde(default)]
    case: Option<String>,
    /// Why the export is made (recorded in the export entry).
    #[serde(default)]
    reason: Option<String>,
}

impl From<ExportError> for ApiError {
    fn from(e: ExportError) -> ApiError {
        match e {
            ExportError::NoSegments
            | ExportError::TooManySegments(_)
            | ExportError::SegmentTooLong(_)
            | ExportError::CaseTooLarge { .. } => {
                ApiError::bad_request("bad_export", e.to_string())
            }
            ExportError::UnknownSegment(_) | ExportError::EmptyCase(_) => {
                ApiError::not_found(e.to_string())
            }
            ExportError::Read(r) => r.into(),
            ExportError::Store(s) => s.into(),
            ExportError::Append(a) => a.into(),
            ExportError::Refused(g) => g.into(),
            ExportError::Footage { .. } => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "footage_unavailable",
                e.to_string(),
            ),
            other => ApiError::internal(other.to_string()),
        }
    }
}

/// A [`Write`] that sends chunks of [`CHUNK`] bytes into a bounded channel,
/// blocking while the response is behind. Used from a blocking thread only.
pub(super) struct ChannelWriter {
    buf: BytesMut,
    tx: mpsc::Sender<io::Result<Bytes>>,
}

impl ChannelWriter {
    /// A writer into `tx`.
    pub(super) fn new(tx: mpsc::Sender<io::Result<Bytes>>) -> ChannelWriter {
        ChannelWriter {
            buf: BytesMut::with_capacity(CHUNK),
            tx,
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the client stopped reading the answer",
            )
        })
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// Build an export bundle: the export is recorded as an `export.created`
/// entry (which the bundle holds), then the tar streams.
#[utoipa::path(
    post,
    path = "/v1/exports",
    tag = "retrieval",
    request_body = ExportBody,
    responses(
        (status = 200, description = "The bundle (a tar archive, streamed)", content_type = "application/x-tar"),
        (status = 400, description = "No segment named", body = ErrorBody),
        (status = 404, description = "An unknown segment or an empty case", body = ErrorBody),
        (status = 503, description = "No object store is configured", body = ErrorBody),
    )
)]
pub(super) async fn create_export(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Json(body): Json<ExportBody>,
) -> Result<Response, ApiError> {
    export_response(&state, &caller, body.segments, body.case, body.reason).await
}

/// The export answer of [`create_export`], shared with the web console
/// (`crate::ui`): the same entry, the same checks, the same streamed tar.
pub(crate) async fn export_response(
    state: &AppState,
    caller: &custos_ledger::auth::Caller,
    segments: Vec<String>,
    case: Option<String>,
    reason: Option<String>,
) -> Result<Response, ApiError> {
    let body = ExportBody {
        segments,
        case,
        reason,
    };
    let Some(objects) = state.governance.objects.clone() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_storage",
            "this ledger has no object store configured ([storage] url), so it cannot export footage",
        ));
    };
    let mut segments = body.segments;
    if let Some(case) = &body.case {
        let ledger = state.ledger.clone();
        let case = case.clone();
        let linked = tokio::task::spawn_blocking(move || export::case_segments(&ledger, &case))
            .await
            .map_err(|e| ApiError::internal(format!("reading the case: {e}")))??;
        segments.extend(linked);
    }
    let request = ExportRequest {
        segments,
        case: body.case,
        reason: body.reason,
    };
    export::check_footage(&state.ledger, objects.as_ref(), &request.segments).await?;
    let gate = custos_ledger::governance::FootageGate::for_caller(&state.governance, caller);
    let prepared = export::prepare_export(&state.ledger, &gate, &request).await?;
    let summary = prepared.summary();

    let (tx, mut rx) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_CHUNKS);
    let source = ObjectFootage::new(objects, tokio::runtime::Handle::current());
    tokio::task::spawn_blocking(move || {
        let writer = ChannelWriter {
            buf: BytesMut::with_capacity(CHUNK),
            tx: tx.clone(),
        };
        if let Err(e) = export::write_bundle(&prepared, &source, writer) {
            tracing::warn!(export = %prepared.export_id, error = %e, "export bundle cut short");
            let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
        }
    });
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}.tar\"",
        summary.export_id
    )) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&summary.export_id) {
        headers.insert("x-custos-export-id", v);
    }
    headers.insert("x-custos-export-seq", HeaderValue::from(summary.export_seq));
    Ok(response)
}
