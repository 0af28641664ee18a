//! Progress of one ingest, reported to whoever watches: the dock's slot
//! status, a progress bar on the command line.
//!
//! Reports are cheap snapshots sent after each part is read and after each
//! part is acknowledged, so a few per part. A sink must never block: it is
//! called from the pipeline's task, and a slow sink would slow the upload.

use std::fmt;

/// Where one ingest stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Bytes read from the source.
    pub read: u64,
    /// Bytes hashed.
    pub hashed: u64,
    /// Bytes the store acknowledged (or, for a segment already stored,
    /// bytes confirmed equal).
    pub stored: u64,
    /// The segment's size, when known in advance
    /// ([`IngestOptions::expected_size`](crate::IngestOptions::expected_size))
    /// or once the source is exhausted.
    pub total: Option<u64>,
    /// The ingest is over (successfully or not); no report follows.
    pub finished: bool,
}

impl Progress {
    /// Bytes both hashed and stored: the figure to show as "done".
    pub fn done(&self) -> u64 {
        self.hashed.min(self.stored)
    }
}

/// Receives [`Progress`] reports. Implemented for closures, for a
/// `tokio::sync::watch::Sender<Progress>` (the latest report wins, which is
/// what a status display wants) and for [`NoProgress`].
pub trait ProgressSink: Send + Sync {
    /// One report. Must return quickly.
    fn report(&self, progress: Progress);
}

impl<F> ProgressSink for F
where
    F: Fn(Progress) + Send + Sync,
{
    fn report(&self, progress: Progress) {
        self(progress)
    }
}

impl ProgressSink for tokio::sync::watch::Sender<Progress> {
    fn report(&self, progress: Progress) {
        self.send_replace(progress);
    }
}

/// A sink that drops every report.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl ProgressSink for NoProgress {
    fn report(&self, _progress: Progress) {}
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.total {
            Some(t) => write!(f, "{}/{} bytes", self.done(), t),
            None => write!(f, "{} bytes", self.done()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_sender_keeps_the_latest_report() {
        let (tx, rx) = tokio::sync::watch::channel(Progress::default());
        let sink: &dyn ProgressSink = &tx;
        sink.report(Progress {
            read: 10,
            hashed: 5,
            stored: 7,
            total: Some(20),
            finished: false,
        });
        let p = *rx.borrow();
        assert_eq!(p.done(), 5);
        assert_eq!(p.to_string(), "5/20 bytes");
    }
}
