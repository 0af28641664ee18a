//! `GET /v1/backup`: the admin's online backup of the ledger
//! ([`custos_ledger::backup`]), streamed as JSON lines.
//!
//! The backup's size and state rows are fixed by the writer before the
//! answer starts, so a refusal is a JSON error; the lines are then written
//! on a blocking thread into the bounded channel that feeds the response
//! body, as exports are: memory stays at a few chunks whatever the log's
//! size. An error after the first byte cuts the body short, and a cut-off
//! backup has no end line, which a restore refuses.
//!
//! This handler must never buffer the log, and never serve a backup to
//! anyone but an admin (the role matrix says so; the backup holds every
//! token's hash).

use std::io;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use tokio::sync::mpsc;

use super::error::ApiError;
use super::exports::{ChannelWriter, CHANNEL_CHUNKS};
use super::AppState;
use custos_ledger::backup::{self, BackupError};
use custos_ledger::wire::ErrorBody;

impl From<BackupError> for ApiError {
    fn from(e: BackupError) -> ApiError {
        match e {
            BackupError::Read(r) => r.into(),
            BackupError::Store(s) => s.into(),
            BackupError::Closed => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "closing", e.to_string())
            }
            other => ApiError::internal(other.to_string()),
        }
    }
}

/// The ledger's backup, streamed (`custos ledger backup`).
///
/// The log at its size when the request arrives: a header, the signed
/// checkpoint of that size, the state that cannot be derived
/// from the entries (tokens as hashes, dock keys, cases, holds, access
/// requests, coverage findings), every entry, and an end line with the
/// SHA-256 of all before it. `custos ledger restore` reads it.
#[utoipa::path(
    get,
    path = "/v1/backup",
    tag = "admin",
    responses(
        (status = 200, description = "The backup (custos-ledger-backup/1 JSON lines, streamed)", content_type = "application/x-ndjson"),
        (status = 401, description = "Missing, invalid, revoked or expired token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
    )
)]
pub(super) async fn get_backup(State(state): State<AppState>) -> Result<Response, ApiError> {
    let snapshot = backup::snapshot(&state.ledger).await?;
    let size = snapshot.size;
    let ledger = state.ledger.clone();
    let (tx, mut rx) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_CHUNKS);
    tokio::task::spawn_blocking(move || {
        let writer = ChannelWriter::new(tx.clone());
        match backup::write_backup(&ledger, &snapshot, writer, &mut |_| {}) {
            Ok(summary) => tracing::info!(
                entries = summary.entries,
                rows = summary.rows,
                bytes = summary.bytes,
                "backup served"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "backup cut short");
                let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
            }
        }
    });
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    headers.insert("x-custos-backup-size", HeaderValue::from(size));
    Ok(response)
}
