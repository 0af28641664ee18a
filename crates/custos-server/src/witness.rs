//! `custos witness serve`: a C2SP tlog-witness (<https://c2sp.org/tlog-witness>)
//! over HTTP, `POST /add-checkpoint`.
//!
//! The decision is custos-core's ([`custos_core::witness::decide`]); this
//! module holds the witness's state and its durability:
//!
//! - the state is, per log origin, the latest checkpoint this witness
//!   cosigned, one file per origin in `state_dir` (named by the SHA-256 of
//!   the origin), holding that checkpoint's signed note;
//! - a request is checked and its new tree head written **under one lock**,
//!   so two concurrent requests cannot roll the state back (the race the
//!   spec describes);
//! - the new state is written to a temporary file, `fsync`ed, renamed over
//!   the old one and the directory `fsync`ed **before** the cosignature is
//!   returned: a witness killed at any moment restarts with either the old
//!   or the new tree head, never with a cosignature it does not remember.
//!
//! Refusals follow the spec's status codes (400 malformed, 403 not signed by
//! the log, 404 unknown log, 409 stale size — its body the witness's size,
//! `text/x.tlog.size` — or another root at the same size, 422 a consistency
//! proof that does not verify), each with one line saying why. A 409 for a
//! conflicting root and a 422 are logged as `warn` with the checkpoint: they
//! are evidence of a forked log or a broken one.
//!
//! # What this module must never do
//!
//! Answer with a cosignature before the new tree head is durable, or cosign
//! a checkpoint that does not extend the one it last cosigned.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use custos_core::checkpoint::Checkpoint;
use custos_core::cosignature::{cosign, CosignerKey};
use custos_core::keys::SigningKey;
use custos_core::note::SignedNote;
use custos_core::witness::{decide, AddCheckpoint, Refusal, TreeHead, WitnessedLog};
use sha2::{Digest as _, Sha256};
use tokio::task::JoinHandle;

/// The largest request body accepted (a checkpoint with its signatures and
/// 63 proof lines fit many times over).
const MAX_BODY: usize = 64 * 1024;

/// What a witness needs to run.
#[derive(Debug)]
pub struct WitnessOptions {
    /// Listen address.
    pub listen: String,
    /// The witness's Ed25519 key.
    pub key: SigningKey,
    /// Where the state lives.
    pub state_dir: PathBuf,
    /// The logs witnessed.
    pub logs: Vec<WitnessedLog>,
}

/// Why the witness could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessError {
    /// The state directory or a state file.
    #[error("witness state {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A state file does not hold a checkpoint.
    #[error("witness state {path}: {reason}")]
    BadState {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The key is not Ed25519.
    #[error("witness key: {0}")]
    Key(String),
    /// Binding the listen address.
    #[error("listening on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
}

struct Inner {
    key: SigningKey,
    cosigner: CosignerKey,
    state_dir: PathBuf,
    logs: Vec<WitnessedLog>,
    /// The cosignatures' time.
    clock: custos_ledger::clock::SharedClock,
    /// Per origin, the tree head last cosigned. The lock is held from the
    /// check to the durable write.
    heads: Mutex<HashMap<String, TreeHead>>,
}

/// A running witness.
#[derive(Debug)]
pub struct WitnessServer {
    addr: SocketAddr,
    cosigner: CosignerKey,
    stop: tokio::sync::oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witness")
            .field("cosigner", &self.cosigner)
            .finish_non_exhaustive()
    }
}

/// The state file of `origin`.
fn state_file(dir: &Path, origin: &str) -> PathBuf {
    dir.join(format!(
        "{}.checkpoint",
        hex::encode(Sha256::digest(origin.as_bytes()))
    ))
}

/// Read the tree heads of the witnessed logs from `dir` (created if
/// missing).
fn load_heads(
    dir: &Path,
    logs: &[WitnessedLog],
) -> Result<HashMap<String, TreeHead>, WitnessError> {
    std::fs::create_dir_all(dir).map_err(|source| WitnessError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut heads = HashMap::new();
    for log in logs {
        let path = state_file(dir, &log.origin);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(WitnessError::Io { path, source }),
        };
        let bad = |reason: String| WitnessError::BadState {
            path: path.clone(),
            reason,
        };
        let note = SignedNote::parse(&bytes).map_err(|e| bad(e.to_string()))?;
        let cp = Checkpoint::parse(note.text()).map_err(|e| bad(e.to_string()))?;
        if cp.origin() != log.origin {
            return Err(bad(format!(
                "holds a checkpoint of {:?}, not {:?}",
                cp.origin(),
                log.origin
            )));
        }
        heads.insert(
            log.origin.clone(),
            TreeHead {
                size: cp.size(),
                root: cp.root(),
            },
        );
    }
    Ok(heads)
}

/// Write `bytes` to `path` durably: temporary file, fsync, rename, fsync of
/// the directory.
fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("checkpoint.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

fn text(status: StatusCode, line: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{line}\n"),
    )
        .into_response()
}

fn refusal_response(refusal: &Refusal) -> Response {
    let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let size = match refusal {
        Refusal::StaleSize { size, .. } => Some(*size),
        Refusal::RootConflict { size } => Some(*size),
        _ => None,
    };
    match size {
        Some(size) => (
            status,
            [(header::CONTENT_TYPE, "text/x.tlog.size")],
            format!("{size}\n"),
        )
            .into_response(),
        None => text(status, refusal.to_string()),
    }
}

/// The request's whole life, on a blocking thread: decide, persist, cosign.
fn add_checkpoint(inner: &Inner, body: &[u8]) -> Response {
    let request = match AddCheckpoint::parse(body) {
        Ok(r) => r,
        Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
    };
    // INVARIANT: no other thread panics while holding the lock (the only
    // code under it is below, which does not panic); a poisoned lock is
    // still the state last written.
    let mut heads = inner.heads.lock().unwrap_or_else(|p| p.into_inner());
    let decided = decide(&inner.logs, |origin| heads.get(origin).copied(), &request);
    let (log, checkpoint) = match decided {
        Ok(ok) => ok,
        Err(refusal) => {
            if matches!(
                refusal,
                Refusal::RootConflict { .. } | Refusal::BadProof { .. }
            ) {
                tracing::warn!(%refusal, checkpoint = %request.checkpoint.text(), "witness: refused a checkpoint that does not extend the one cosigned (a forked or broken log)");
            } else {
                tracing::info!(%refusal, "witness: refused");
            }
            return refusal_response(&refusal);
        }
    };
    let now = u64::try_from(inner.clock.now().unix_seconds()).unwrap_or(0);
    let sig = match cosign(&inner.key, request.checkpoint.text(), now) {
        Ok(sig) => sig,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let mut stored = request.checkpoint.clone();
    if let Err(e) = stored.push_signature(sig.clone()) {
        return text(StatusCode::BAD_REQUEST, e.to_string());
    }
    let path = state_file(&inner.state_dir, &log.origin);
    if let Err(e) = write_durably(&path, &stored.to_bytes()) {
        tracing::error!(path = %path.display(), error = %e, "witness: could not store the new tree head; not cosigning");
        // The rename may have happened before the error (a failed
        // directory sync): keep in memory what the file now says, so that
        // this process and the next one after a restart agree.
        if let Ok(on_disk) = load_heads(&inner.state_dir, std::slice::from_ref(log)) {
            match on_disk.get(&log.origin) {
                Some(head) => heads.insert(log.origin.clone(), *head),
                None => heads.remove(&log.origin),
            };
        }
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the witness could not store its state: {e}"),
        );
    }
    heads.insert(
        log.origin.clone(),
        TreeHead {
            size: checkpoint.size(),
            root: checkpoint.root(),
        },
    );
    drop(heads);
    tracing::debug!(origin = %log.origin, size = checkpoint.size(), "witness: cosigned");
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{sig}\n"),
    )
        .into_response()
}

async fn add_checkpoint_route(State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    match tokio::task::spawn_blocking(move || add_checkpoint(&inner, &body)).await {
        Ok(r) => r,
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The witness's router.
fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint_route))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(inner)
}

impl WitnessServer {
    /// Load the state and start serving.
    pub async fn start(options: WitnessOptions) -> Result<WitnessServer, WitnessError> {
        let cosigner =
            CosignerKey::of(&options.key).map_err(|e| WitnessError::Key(e.to_string()))?;
        let heads = load_heads(&options.state_dir, &options.logs)?;
        let inner = Arc::new(Inner {
            key: options.key,
            cosigner: cosigner.clone(),
            state_dir: options.state_dir,
            logs: options.logs,
            heads: Mutex::new(heads),
            clock: Arc::new(custos_ledger::clock::SystemClock),
        });
        let listener = tokio::net::TcpListener::bind(&options.listen)
            .await
            .map_err(|source| WitnessError::Bind {
                addr: options.listen.clone(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| WitnessError::Bind {
            addr: options.listen.clone(),
            source,
        })?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = router(inner);
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(WitnessServer {
            addr,
            cosigner,
            stop,
            task,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://addr`, the submission prefix.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The witness's cosigner key.
    pub fn cosigner(&self) -> &CosignerKey {
        &self.cosigner
    }

    /// Stop serving.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}
