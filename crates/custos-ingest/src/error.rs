//! The errors of the ingest pipeline, sorted by who is at fault: the source
//! (a recorder, a file), the store, the caller's options, or a bug.
//!
//! Every message names the object key (and, for reads, how far the source
//! got) so that one line in a dock log says what failed and where. This
//! module must never hide a store error behind a generic message: the
//! underlying `object_store` error is always kept as the `source`.

use std::io;

use custos_core::digest::Digest;

/// A multipart upload that could not be aborted after a failure.
///
/// Its parts stay on the store, invisible (the key holds no object) but
/// taking space, until someone aborts it: call
/// [`abort_orphan`](crate::abort_orphan) once the store is back, or rely on
/// a bucket lifecycle rule (`AbortIncompleteMultipartUpload`), which every
/// production bucket should have anyway since a power cut leaves the same
/// residue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrphanedUpload {
    /// The object key the upload was for.
    pub key: String,
    /// The store's upload id, when the store told us (stores reached
    /// through the low-level multipart interface, e.g. S3).
    pub upload_id: Option<String>,
    /// Why the abort failed.
    pub abort_error: String,
}

/// Why an ingest failed. Whatever the variant, no object is visible at the
/// key unless the variant says otherwise.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// The options cannot work (part size out of range, no parts in flight).
    #[error("invalid ingest options: {0}")]
    InvalidOptions(String),

    /// SM3 was asked for but this build has no SM3 support.
    #[error("this build of custos has no SM3 support (feature `sm3` of custos-core is off)")]
    Sm3Unavailable,

    /// Reading the source failed; nothing was stored.
    #[error("reading the source of {key} failed after {read} bytes: {source}")]
    Source {
        /// The object key.
        key: String,
        /// Bytes read successfully before the failure.
        read: u64,
        /// The I/O error from the source.
        #[source]
        source: io::Error,
        /// Set when the half-done multipart upload could not be aborted.
        orphan: Option<Box<OrphanedUpload>>,
    },

    /// The key already holds an object with other bytes; nothing was
    /// written and the existing object is unchanged (invariant 2).
    #[error(
        "object key {key} is already taken by other bytes ({reason}); refusing to overwrite it"
    )]
    KeyTaken {
        /// The object key.
        key: String,
        /// What differs: size or digest.
        reason: KeyTakenReason,
    },

    /// The store failed a request (after the retries of the policy) or
    /// refused it; nothing is visible at the key.
    #[error("object store failed to {during} for {key}: {source}")]
    Store {
        /// The object key.
        key: String,
        /// The operation that failed, e.g. "upload part 3".
        during: String,
        /// The store's error.
        #[source]
        source: Box<object_store::Error>,
        /// Set when the half-done multipart upload could not be aborted.
        orphan: Option<Box<OrphanedUpload>>,
    },

    /// The key holds an object that could not be read back to compare it
    /// with the segment; nothing was written.
    #[error(
        "could not read back the object already at {key} to compare it with the segment: {source}"
    )]
    Compare {
        /// The object key.
        key: String,
        /// Why reading it back failed.
        #[source]
        source: Box<VerifyError>,
    },

    /// The segment is larger than the store's 10 000-part limit allows at
    /// this part size.
    #[error(
        "segment for {key} exceeds {max_parts} parts of {part_size} bytes; raise the part size"
    )]
    TooManyParts {
        /// The object key.
        key: String,
        /// The part limit.
        max_parts: usize,
        /// The part size in use.
        part_size: usize,
    },

    /// A bug: the hashing thread or the ingest task died.
    #[error("internal error while ingesting {key}: {detail}")]
    Internal {
        /// The object key.
        key: String,
        /// What the runtime reported.
        detail: String,
    },
}

impl IngestError {
    /// The multipart upload left behind on the store, if the failure left one.
    pub fn orphaned_upload(&self) -> Option<&OrphanedUpload> {
        match self {
            IngestError::Source { orphan, .. } | IngestError::Store { orphan, .. } => {
                orphan.as_deref()
            }
            _ => None,
        }
    }

    /// Whether trying the same ingest again later may succeed (the store
    /// was unreachable or failed, or the source hiccupped), as opposed to a
    /// refusal or a bad option that will fail the same way again.
    pub fn is_retryable(&self) -> bool {
        match self {
            IngestError::Source { .. } => true,
            IngestError::Store { source, .. } => crate::retry::is_transient(source),
            IngestError::Compare { source, .. } => matches!(
                **source,
                VerifyError::Store { .. } | VerifyError::Changed { .. }
            ),
            _ => false,
        }
    }
}

/// What differs between the existing object and the segment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyTakenReason {
    /// The sizes differ.
    Size {
        /// Size of the object already stored.
        existing: u64,
        /// Size of the segment being ingested.
        segment: u64,
    },
    /// The sizes agree but the SHA-256 digests do not.
    Content {
        /// Digest of the object already stored.
        existing: Digest,
        /// Digest of the segment being ingested.
        segment: Digest,
    },
}

impl std::fmt::Display for KeyTakenReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyTakenReason::Size { existing, segment } => write!(
                f,
                "stored object has {existing} bytes, segment has {segment}"
            ),
            KeyTakenReason::Content { existing, segment } => {
                write!(f, "stored object is {existing}, segment is {segment}")
            }
        }
    }
}

/// Why verifying a stored object failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// No object at the key.
    #[error("no object at {key}")]
    NotFound {
        /// The object key.
        key: String,
    },

    /// The object has another size than expected.
    #[error("object {key} has {actual} bytes, expected {expected}")]
    SizeMismatch {
        /// The object key.
        key: String,
        /// Expected size.
        expected: u64,
        /// Size the store reports.
        actual: u64,
    },

    /// The bytes read back hash to another digest than expected.
    #[error("object {key} reads back as {actual}, expected {expected}")]
    DigestMismatch {
        /// The object key.
        key: String,
        /// Expected digest.
        expected: Digest,
        /// Digest of the bytes read back.
        actual: Digest,
    },

    /// The object changed while it was being read back.
    #[error("object {key} changed while it was read back")]
    Changed {
        /// The object key.
        key: String,
    },

    /// SM3 was expected but this build cannot compute it.
    #[error("this build of custos has no SM3 support (feature `sm3` of custos-core is off)")]
    Sm3Unavailable,

    /// The store failed a request.
    #[error("object store failed to read {key}: {source}")]
    Store {
        /// The object key.
        key: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },

    /// A bug: the hashing thread died.
    #[error("internal error while verifying {key}: {detail}")]
    Internal {
        /// The object key.
        key: String,
        /// What the runtime reported.
        detail: String,
    },
}

/// Why a store could not be opened from its URL or settings.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The URL is not `file://`, `s3://` or `memory://`, or is malformed.
    #[error("unsupported storage url {url:?}: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The local directory could not be created or opened.
    #[error("cannot use {path} as an object store directory: {source}")]
    LocalDir {
        /// The directory.
        path: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// object_store refused the configuration.
    #[error("cannot configure object store {url}: {source}")]
    Config {
        /// The store URL.
        url: String,
        /// The configuration error.
        #[source]
        source: object_store::Error,
    },
}
