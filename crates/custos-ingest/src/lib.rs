//! # custos-ingest: one read pass that hashes a segment and streams it into object storage
//!
//! The throughput-critical pipeline of the dock. A segment (one recording
//! file on a body-worn camera, up to 4 GiB) is read once, in large
//! buffers. Each buffer feeds SHA-256 (and SM3 when enabled) on a hashing
//! thread and, at the same time, the multipart upload: the two consumers
//! share the buffer (`Bytes` reference counts), nothing is copied per
//! consumer, and at most `parts_in_flight` buffers are alive, so memory
//! does not grow with segment size. A dock runs many segments at once
//! through an [`IngestPool`].
//!
//! The pieces:
//!
//! - [`ingest_segment`]: the pipeline for one segment from any async
//!   reader, and [`ingest_file`] for a local file (module `segment`
//!   explains the steps and what a failure at each leaves behind);
//! - [`IngestStore`]: the store, with what the pipeline must know about it
//!   (low-level multipart interface, store-side checksums);
//! - [`verify_object`]: read the stored object back through the same
//!   hasher, or accept the store's checksum receipt;
//! - [`check_object`]: the audit scrub's check of one stored object against
//!   what its manifest says (matches, missing, altered or unreadable);
//! - [`IngestPool`]: several segments at once, bounded;
//! - [`Progress`] and [`ProgressSink`]: reports for the dock's slot status
//!   and for progress bars;
//! - [`hash_sources`]: the same hashing core for local files and standard
//!   input, in parallel (`custos hash`).
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use custos_ingest::{ingest_segment, verify_object, IngestOptions, IngestStore, NoProgress, VerifyMode};
//! use object_store::path::Path;
//!
//! let store = IngestStore::in_memory();
//! let key = Path::from("rec-1/2024-05-01T08-00-00.mp4");
//! let segment: &[u8] = b"not much of a recording";
//! let out = ingest_segment(segment, &store, &key, &IngestOptions::default(), &NoProgress)
//!     .await
//!     .unwrap();
//! assert_eq!(out.size, 23);
//! let v = verify_object(&store, &key, &out.digests, VerifyMode::ReadBack).await.unwrap();
//! assert_eq!(v.digests.sha256, out.digests.sha256);
//! # });
//! ```
//!
//! ## What this crate must never do
//!
//! Re-read the recorder to retry an upload, or write an object key that
//! already holds other bytes (DESIGN.md invariant 2). It knows nothing of
//! manifests, the ledger or USB: it moves bytes and reports digests.
#![deny(missing_docs)]

mod buffers;
mod check;
mod error;
mod files;
mod hasher;
mod local;
mod multipart;
mod options;
mod pool;
mod progress;
mod retry;
mod segment;
mod split;
mod store;
mod taken;
mod verify;

pub use check::{check_object, ExpectedObject, ObjectCheck, UnreadableObject};
pub use error::{IngestError, KeyTakenReason, OrphanedUpload, StoreError, VerifyError};
pub use files::{
    hash_reader, hash_source, hash_sources, FileHashOptions, HashFileError, HashSource,
    DEFAULT_HASH_BUFFER,
};
pub use multipart::abort_orphan;
pub use options::{
    IngestOptions, RetryPolicy, DEFAULT_PARTS_IN_FLIGHT, DEFAULT_PART_SIZE, MAX_PART_SIZE,
    S3_MAX_PARTS, S3_MIN_PART_SIZE,
};
pub use pool::IngestPool;
pub use progress::{NoProgress, Progress, ProgressSink};
pub use segment::{ingest_file, ingest_segment, IngestOutcome, StoreReceipt, Timings};
pub use split::{Sm3Stream, SplitHasher, StreamHasher};
pub use store::IngestStore;
pub use verify::{hash_object, verify_object, Verified, VerifyMethod, VerifyMode, READ_BACK_BATCH};

/// Re-exported so that callers name keys and stores with the same version
/// of `object_store` this crate was built with.
pub use object_store;
