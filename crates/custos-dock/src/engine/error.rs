//! How a step of a segment fails ([`StepError`]: retry, stop for this
//! docking, or cancelled), and the mapping of the errors the steps meet
//! onto it. A failed step never changes the journal's step: it is retried
//! after a wait or left for the next docking.

use custos_ingest::object_store::path::Path as ObjectPath;
use custos_ingest::IngestError;

use crate::journal::JournalError;
use crate::outbox::OutboxError;
use crate::volume::VolumeError;

/// How a step failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum StepError {
    /// Worth retrying after a wait (store or ledger unreachable).
    #[error("{0}")]
    Retry(String),
    /// Not worth retrying in this docking.
    #[error("{0}")]
    Stop(String),
    /// The session was cancelled or ran out of time.
    #[error("{0}")]
    Cancelled(String),
}

impl From<JournalError> for StepError {
    fn from(e: JournalError) -> Self {
        StepError::Stop(e.to_string())
    }
}

impl From<OutboxError> for StepError {
    fn from(e: OutboxError) -> Self {
        StepError::Stop(e.to_string())
    }
}

pub(super) fn object_path(key: &str) -> Result<ObjectPath, StepError> {
    ObjectPath::parse(key).map_err(|e| StepError::Stop(format!("object key {key:?}: {e}")))
}

pub(super) fn volume_error(e: VolumeError) -> StepError {
    match e {
        VolumeError::Io { .. } => StepError::Retry(e.to_string()),
        other => StepError::Stop(other.to_string()),
    }
}

pub(super) fn ingest_error(e: IngestError) -> StepError {
    if e.is_retryable() {
        StepError::Retry(e.to_string())
    } else {
        StepError::Stop(e.to_string())
    }
}
