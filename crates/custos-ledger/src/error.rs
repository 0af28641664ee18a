//! The ledger's error types, sorted by who is at fault.
//!
//! - [`StoreError`]: the machine (sled, the disk, a lock held by another
//!   process);
//! - [`TamperError`]: the stored log no longer agrees with itself: someone
//!   changed a value behind the ledger's back, or the disk corrupted it. The
//!   ledger refuses to serve once it sees one;
//! - [`OpenError`]: start-up refused, wrapping one of the above or a
//!   configuration mistake (wrong key, wrong origin);
//! - [`AppendError`] and [`ReadError`]: what an append or a read reports to
//!   its caller; the HTTP layer maps each variant to a status code.
//!
//! Request errors that are the client's fault (a bad envelope, a forbidden
//! action) live next to the code that finds them ([`crate::ledger::EventError`],
//! [`crate::auth::AuthError`]).
//!
//! No message here may contain a bearer token or key material.

use std::path::PathBuf;

use custos_core::checkpoint::CheckpointError;
use custos_core::entry::EntryError;
use custos_core::merkle::NodeId;

/// The store failed: I/O, sled, or a stored value of the wrong shape.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another process (usually a running `custos ledger serve`) holds the
    /// database's lock.
    #[error("the ledger database {path} is in use by another process (is `custos ledger serve` running? stop it, or use its API)")]
    Locked {
        /// The sled directory.
        path: PathBuf,
    },
    /// sled reported an error.
    #[error("ledger database: {0}")]
    Sled(sled::Error),
    /// A stored value could not be read back (not a tamper check: a row of a
    /// state table, a token record...).
    #[error("ledger database: {what} is malformed: {why}")]
    Malformed {
        /// Which value.
        what: String,
        /// What is wrong with it.
        why: String,
    },
}

/// The stored log does not agree with itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TamperError {
    /// An entry's bytes do not match the tree or the hash chain.
    #[error("ledger entry {index} does not match the stored log: {reason}")]
    Entry {
        /// The entry's index (seq).
        index: u64,
        /// What does not match.
        reason: String,
    },
    /// A stored tree node does not match its children or is missing.
    #[error(
        "ledger tree {node} (first entry {first_entry}) does not match the stored log: {reason}"
    )]
    Node {
        /// The node.
        node: NodeId,
        /// The first entry the node covers.
        first_entry: u64,
        /// What does not match.
        reason: String,
    },
    /// The stored tree state or checkpoint does not match the entries.
    #[error("ledger tree state does not match the stored log: {0}")]
    Tree(String),
    /// A state row that the log decides (a token, a dock key) does not
    /// match the entries that made it.
    #[error("ledger table {table} row {key:?} does not match the log: {reason}")]
    Row {
        /// The table.
        table: String,
        /// The row's key.
        key: String,
        /// What does not match.
        reason: String,
    },
}

impl TamperError {
    /// The first entry index the problem concerns, where there is one.
    pub fn index(&self) -> Option<u64> {
        match self {
            TamperError::Entry { index, .. } => Some(*index),
            TamperError::Node { first_entry, .. } => Some(*first_entry),
            TamperError::Tree(_) | TamperError::Row { .. } => None,
        }
    }
}

/// The ledger refused to open.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The store could not be opened or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored log failed the start-up check.
    #[error("refusing to start: {0}")]
    Tampered(TamperError),
    /// The stored checkpoint is not signed by the configured ledger key, or
    /// names another origin: the wrong `key_file` or `origin` is configured
    /// for this `data_dir`.
    #[error("refusing to start: the stored checkpoint does not open with the configured ledger key {key} and origin {origin:?}: {error}")]
    Checkpoint {
        /// The configured key's id.
        key: String,
        /// The configured origin.
        origin: String,
        /// Why it did not open (its message is part of this one's).
        error: CheckpointError,
    },
    /// The configured origin is not a valid checkpoint origin line.
    #[error("ledger origin {origin:?} is not a valid checkpoint origin: {error}")]
    Origin {
        /// The origin.
        origin: String,
        /// Why (its message is part of this one's).
        error: CheckpointError,
    },
    /// The directory holds a ledger of another storage format.
    #[error("the ledger database was written in format {found:?}; this build reads {expected:?}")]
    Format {
        /// What the store says.
        found: String,
        /// What this build writes.
        expected: String,
    },
    /// The writer thread could not be started.
    #[error("starting the ledger writer thread: {0}")]
    Thread(std::io::Error),
    /// The entries recording a change of the ledger's keys could not be
    /// appended.
    #[error("refusing to start: recording the change of ledger keys failed: {0}")]
    KeyChange(String),
}

/// An append failed; nothing was added.
#[derive(Debug, Clone, thiserror::Error)]
// Exhaustive on purpose: custos-server maps every variant to an HTTP answer.
pub enum AppendError {
    /// The entry could not be built (a bad action name, an empty subject, a
    /// number that cannot be written exactly...).
    #[error("invalid entry: {0}")]
    Invalid(String),
    /// The append's guard refused it (see [`crate::append::Guard`]).
    #[error(transparent)]
    Rejected(#[from] crate::append::Rejection),
    /// The ledger is shutting down.
    #[error("the ledger is shutting down")]
    Closed,
    /// The store failed while writing; the ledger stops accepting appends
    /// until it is restarted (the in-memory tree may be ahead of the disk).
    #[error("the ledger's store failed and it stopped accepting appends until restarted: {0}")]
    Storage(String),
    /// The ledger found its stored log tampered with and refuses to append.
    #[error("the ledger refuses to append: {0}")]
    Tampered(TamperError),
}

// The inner error's message is part of this one's; it is not also
// chained as a source, so `{:#}` prints it once.
impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Sled(e)
    }
}

impl From<TamperError> for OpenError {
    fn from(e: TamperError) -> Self {
        OpenError::Tampered(e)
    }
}

impl From<EntryError> for AppendError {
    fn from(e: EntryError) -> Self {
        AppendError::Invalid(e.to_string())
    }
}

/// A read failed.
#[derive(Debug, thiserror::Error)]
// Exhaustive on purpose: custos-server maps every variant to an HTTP answer.
pub enum ReadError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// What was read does not match the stored log.
    #[error(transparent)]
    Tampered(#[from] TamperError),
    /// A parameter is outside the published log.
    #[error("{0}")]
    OutOfRange(String),
    /// The ledger found its stored log tampered with earlier and refuses to serve.
    #[error("the ledger refuses to serve: {0}")]
    Refused(TamperError),
}
