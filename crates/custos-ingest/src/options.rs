//! Tuning knobs of one ingest: part size, parts in flight, SM3, retries.
//!
//! The values bound memory: at most `parts_in_flight` buffers of
//! `part_size` bytes are alive per segment, whatever the segment's size.
//! This module must never let a caller pick a part size that a real S3
//! store would reject at the end of a long upload; the only way below the
//! S3 minimum is the explicit, test-only [`IngestOptions::allow_small_parts_for_tests`].

use std::time::Duration;

use crate::error::IngestError;

const MIB: usize = 1024 * 1024;

/// Default part size: 16 MiB. Large enough that per-request overhead is
/// noise at 300 MB/s, small enough that three in flight stay under the
/// 64 MiB memory budget of one segment.
pub const DEFAULT_PART_SIZE: usize = 16 * MIB;

/// S3's smallest allowed part (every part but the last): 5 MiB.
pub const S3_MIN_PART_SIZE: usize = 5 * MIB;

/// Largest part size accepted: 512 MiB. A part is held in memory until the
/// store acknowledges it, so this is a memory bound, well below S3's 5 GiB.
pub const MAX_PART_SIZE: usize = 512 * MIB;

/// S3's largest part count per multipart upload.
pub const S3_MAX_PARTS: usize = 10_000;

/// Default number of parts alive at once (being read, hashed or uploaded): 3,
/// so one part is read while two are on the wire.
pub const DEFAULT_PARTS_IN_FLIGHT: usize = 3;

/// Options of one ingest. Start from [`IngestOptions::default`] and set
/// fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IngestOptions {
    /// Bytes per buffer and per multipart part. Segments shorter than this
    /// are stored with a single put.
    pub part_size: usize,
    /// At most this many part buffers are alive at once; reading waits for
    /// a free one. Memory per segment is about `part_size * parts_in_flight`.
    pub parts_in_flight: usize,
    /// Compute SM3 as well as SHA-256.
    pub with_sm3: bool,
    /// The segment's size when known (a file on a recorder): used for
    /// progress totals and to refuse a taken key without reading.
    pub expected_size: Option<u64>,
    /// Retries of store requests.
    pub retry: RetryPolicy,
    /// Allow parts below S3's 5 MiB minimum. For tests only, against stores
    /// that accept them (the local store, in-memory, Garage).
    pub allow_small_parts_for_tests: bool,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            part_size: DEFAULT_PART_SIZE,
            parts_in_flight: DEFAULT_PARTS_IN_FLIGHT,
            with_sm3: false,
            expected_size: None,
            retry: RetryPolicy::default(),
            allow_small_parts_for_tests: false,
        }
    }
}

impl IngestOptions {
    /// Check the options before any byte is read.
    pub fn validate(&self) -> Result<(), IngestError> {
        if self.part_size == 0 {
            return Err(IngestError::InvalidOptions("part size is 0".into()));
        }
        if self.part_size < S3_MIN_PART_SIZE && !self.allow_small_parts_for_tests {
            return Err(IngestError::InvalidOptions(format!(
                "part size {} is below the S3 minimum of {S3_MIN_PART_SIZE} bytes",
                self.part_size
            )));
        }
        if self.part_size > MAX_PART_SIZE {
            return Err(IngestError::InvalidOptions(format!(
                "part size {} is above the maximum of {MAX_PART_SIZE} bytes",
                self.part_size
            )));
        }
        if self.parts_in_flight == 0 {
            return Err(IngestError::InvalidOptions(
                "parts in flight is 0; at least 1 is needed".into(),
            ));
        }
        if self.retry.max_attempts == 0 {
            return Err(IngestError::InvalidOptions(
                "retry policy allows 0 attempts; at least 1 is needed".into(),
            ));
        }
        Ok(())
    }
}

/// How store requests are retried.
///
/// These retries sit above the store client's own (object_store retries
/// each HTTP request per its `RetryConfig`); they resend a part from the
/// buffer kept until the store acknowledges it, never by reading the
/// source again.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts per request, the first included (1 = no retry).
    pub max_attempts: u32,
    /// Wait before the first retry; doubled for each further one.
    pub initial_backoff: Duration,
    /// Upper bound of one wait.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// No retries at all: the first failure is final.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// A policy with `max_attempts` attempts and the given first backoff.
    pub fn new(max_attempts: u32, initial_backoff: Duration, max_backoff: Duration) -> Self {
        RetryPolicy {
            max_attempts,
            initial_backoff,
            max_backoff,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_small_parts_need_the_test_switch() {
        IngestOptions::default().validate().unwrap();
        let mut o = IngestOptions {
            part_size: 64 * 1024,
            ..IngestOptions::default()
        };
        assert!(matches!(o.validate(), Err(IngestError::InvalidOptions(_))));
        o.allow_small_parts_for_tests = true;
        o.validate().unwrap();
        o.parts_in_flight = 0;
        assert!(matches!(o.validate(), Err(IngestError::InvalidOptions(_))));
        let big = IngestOptions {
            part_size: MAX_PART_SIZE + 1,
            ..IngestOptions::default()
        };
        assert!(big.validate().is_err());
    }
}
