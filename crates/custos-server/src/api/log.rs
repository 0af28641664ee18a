//! The log's routes: append a dock's event, the checkpoint, entries, proofs.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use futures::StreamExt as _;
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::ApiError;
use super::extract::{Authed, JsonBody, Query};
use super::AppState;
use custos_ledger::error::ReadError;
use custos_ledger::wire::{ConsistencyProof, EntryLine, ErrorBody, InclusionProof, Receipt};

/// Append a dock's signed custody event.
///
/// The body is a DSSE envelope (payloadType `application/vnd.custos.event+json`)
/// signed by the key registered with the dock's token; its payload is the
/// canonical JSON `{"action","subject","details","time"}`. A `segment.ingested`
/// event carries the segment's signed manifest envelope in `details.manifest`.
/// The same envelope sent again answers 200 with the first entry's receipt.
#[utoipa::path(
    post,
    path = "/v1/events",
    tag = "log",
    request_body(content = Object, content_type = "application/json", description = "A DSSE envelope"),
    responses(
        (status = 201, description = "Appended and durable", body = Receipt),
        (status = 200, description = "The same envelope was already appended; nothing added", body = Receipt),
        (status = 400, description = "Malformed envelope, event or manifest", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not a dock, unknown key, bad signature, or a forbidden action", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
    )
)]
pub(super) async fn post_events(
    State(state): State<AppState>,
    Authed(caller): Authed,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let receipt = state.ledger.append_event(&caller, &body.0).await?;
    let status = if receipt.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(receipt)).into_response())
}

/// The latest signed checkpoint (C2SP tlog-checkpoint in a signed note).
#[utoipa::path(
    get,
    path = "/v1/checkpoint",
    tag = "log",
    responses(
        (status = 200, description = "The signed checkpoint", body = String, content_type = "text/plain"),
        (status = 503, description = "The ledger found its log tampered with and refuses to serve", body = ErrorBody),
    )
)]
pub(super) async fn get_checkpoint(State(state): State<AppState>) -> Response {
    let published = state.ledger.published();
    // The checkpoint the tiles carry, with the witnesses' cosignatures,
    // while no entry was appended after it; else the newest one.
    let cosigned = state.ledger.cosigned_checkpoint().filter(|note| {
        custos_core::note::SignedNote::parse(note.as_bytes())
            .ok()
            .and_then(|n| custos_core::checkpoint::Checkpoint::parse(n.text()).ok())
            .is_some_and(|c| c.size() == published.size)
    });
    let body = match cosigned {
        Some(note) => note.to_string(),
        None => published.checkpoint.to_string(),
    };
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// `start` and `end` of `/v1/entries`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct EntriesQuery {
    /// First entry (inclusive).
    start: u64,
    /// End (exclusive); clamped to the tree size and to 4096 entries after
    /// `start`. Absent: as far as allowed.
    end: Option<u64>,
}

/// Entries `[start, end)` as JSON lines `{"seq","raw","entry"}`.
///
/// `raw` is the base64 of the exact leaf bytes (hash these), `entry` the same
/// bytes as JSON. The answer may stop before `end` (tree size, page limit):
/// ask again from the last `seq` + 1.
#[utoipa::path(
    get,
    path = "/v1/entries",
    tag = "log",
    params(EntriesQuery),
    responses(
        (status = 200, description = "One EntryLine per line", body = EntryLine, content_type = "application/x-ndjson"),
        (status = 400, description = "start beyond the tree, end before start", body = ErrorBody),
    )
)]
pub(super) async fn get_entries(
    State(state): State<AppState>,
    Query(q): Query<EntriesQuery>,
) -> Result<Response, ApiError> {
    // The range is checked and the first chunk read before the answer
    // starts, so a bad range or a refusal there is a proper error answer;
    // the rest is read and sent a chunk at a time, never the whole page in
    // memory. A read that fails later (a tampered entry) ends the body
    // with an error, so the client sees a broken answer, never a short one
    // that looks whole.
    let range = state.ledger.entry_range(q.start, q.end)?;
    let ledger = state.ledger.clone();
    let (tx, mut rx) =
        tokio::sync::mpsc::channel::<Result<Bytes, ReadError>>(ENTRY_CHUNKS_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let mut chunk = Vec::with_capacity(ENTRIES_PER_CHUNK * 512);
        let mut in_chunk = 0;
        for seq in range {
            let line = match ledger.entry_line(seq) {
                Ok(line) => line,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            // INVARIANT: an EntryLine is a number, a string and valid raw JSON.
            serde_json::to_writer(&mut chunk, &line).expect("INVARIANT: entry lines serialise");
            chunk.push(b'\n');
            in_chunk += 1;
            if in_chunk == ENTRIES_PER_CHUNK {
                in_chunk = 0;
                let next = Vec::with_capacity(ENTRIES_PER_CHUNK * 512);
                let full = std::mem::replace(&mut chunk, next);
                if tx.blocking_send(Ok(Bytes::from(full))).is_err() {
                    return; // the client went away
                }
            }
        }
        if !chunk.is_empty() {
            let _ = tx.blocking_send(Ok(Bytes::from(chunk)));
        }
    });
    let first = match rx.recv().await {
        Some(Ok(bytes)) => Some(bytes),
        Some(Err(e)) => return Err(e.into()),
        None => None,
    };
    let rest = futures::stream::unfold(rx, |mut rx| async move {
        let item = rx.recv().await?;
        Some((item.map_err(|e| std::io::Error::other(e.to_string())), rx))
    });
    let body = futures::stream::iter(first.map(Ok::<Bytes, std::io::Error>)).chain(rest);
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(body),
    )
        .into_response())
}

/// Entries per chunk of a streamed `/v1/entries` answer: 64 lines of a few
/// hundred bytes to a few KiB are one or a few TCP segments' worth.
const ENTRIES_PER_CHUNK: usize = 64;
/// Chunks read ahead of the client: the memory one answer holds is about
/// this many chunks, whatever the page size.
const ENTRY_CHUNKS_IN_FLIGHT: usize = 4;

/// `index` and `size` of an inclusion proof.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct InclusionQuery {
    /// The entry.
    index: u64,
    /// The tree size (at most the checkpoint's).
    size: u64,
}

/// The inclusion proof of entry `index` in the tree of `size` entries
/// (RFC 9162 §2.1.3).
#[utoipa::path(
    get,
    path = "/v1/proof/inclusion",
    tag = "log",
    params(InclusionQuery),
    responses(
        (status = 200, description = "The audit path", body = InclusionProof),
        (status = 400, description = "index or size out of range", body = ErrorBody),
    )
)]
pub(super) async fn get_inclusion_proof(
    State(state): State<AppState>,
    Query(q): Query<InclusionQuery>,
) -> Result<Json<InclusionProof>, ApiError> {
    Ok(Json(state.ledger.inclusion_proof(q.index, q.size)?))
}

/// `from` and `to` of a consistency proof.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ConsistencyQuery {
    /// The older tree size.
    from: u64,
    /// The newer tree size (at most the checkpoint's).
    to: u64,
}

/// The consistency proof between the trees of `from` and `to` entries
/// (RFC 9162 §2.1.4).
#[utoipa::path(
    get,
    path = "/v1/proof/consistency",
    tag = "log",
    params(ConsistencyQuery),
    responses(
        (status = 200, description = "The proof", body = ConsistencyProof),
        (status = 400, description = "sizes out of range", body = ErrorBody),
    )
)]
pub(super) async fn get_consistency_proof(
    State(state): State<AppState>,
    Query(q): Query<ConsistencyQuery>,
) -> Result<Json<ConsistencyProof>, ApiError> {
    Ok(Json(state.ledger.consistency_proof(q.from, q.to)?))
}
