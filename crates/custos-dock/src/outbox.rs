//! The outbox: every signed event the dock produces goes through here to
//! the ledger, in the order it was produced, whether the ledger is up or not.
//!
//! Where events go is a [`LedgerLink`]: a remote ledger over HTTP
//! (`[dock] ledger_url` + `ledger_token`, custos-client's
//! [`LedgerClient`](custos_client::LedgerClient)) or the ledger in the same
//! process (the embedded default, wired in by the binary). Both are
//! [`EventSink`]s, so the dock does not care which.
//!
//! The protocol:
//!
//! 1. [`Outbox::emit`] takes the order lock, reads the dock's clock, builds
//!    and signs the event, lets the caller write the envelope into its
//!    journal record, records who owns it, and appends it to the durable
//!    queue (the [`OfflineQueue`] in the journal's sled database, which
//!    flushes before returning). Holding the lock across
//!    all of this makes queue order equal event-time order.
//! 2. The pump ([`Outbox::run`]) delivers the queue front to back. Each
//!    acknowledgement (the entry's index) is written into the owning record
//!    and announced on a watch channel, which the segments waiting to wipe
//!    listen to. Any failure but a final refusal stops delivery — the
//!    ledger down or failing (5xx), and the refusals a fix of the
//!    configuration or the ledger's load lifts (401 a wrong token, 403 a
//!    key not registered, 408, 413 a proxy's body limit, 429 a rate limit;
//!    see custos-client's `ClientError::is_final_refusal`): the pump
//!    retries with backoff, from the same event, and the event stays in the
//!    journal for the next run (a restart after the fix sends it again). A
//!    final refusal (the ledger names the event itself as invalid: a bad
//!    signature, an invalid event or manifest) is written into the owning
//!    record with the ledger's message (the segment then waits for an
//!    operator, shows the message in its slot, and is never wiped).
//! 3. After a restart, every journalled event without an acknowledgement is
//!    queued again ([`Outbox::requeue_unacknowledged`]): one a crash kept from the
//!    queue, and one whose acknowledgement a crash lost after delivery. The
//!    ledger answers a repeated envelope with the first entry's receipt.
//!
//! The outbox must never reorder events, drop one, or report an
//! acknowledgement the ledger did not give.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use custos_core::dsse::Envelope;
use custos_core::entry::{Details, Event};
use custos_core::keys::KeySet;
use custos_core::manifest::Timestamp;
use tokio::sync::{watch, Mutex, Notify};
use tokio_util::sync::CancellationToken;

use crate::journal::{EventKind, EventOwner, Journal, JournalError};
use crate::queue::{EventSink, OfflineQueue};

/// Where the dock's events go: a remote ledger (custos-client's
/// `LedgerClient`) or a ledger in the same process that the binary wires in.
pub type LedgerLink = Arc<dyn EventSink>;

/// Why an event could not be produced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxError {
    /// The event could not be built or signed (a bug or a bad key).
    #[error("cannot build the {action} event: {why}")]
    Build {
        /// The action.
        action: String,
        /// What failed.
        why: String,
    },
    /// The journal failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The durable queue failed.
    #[error("the dock's event queue failed: {0}")]
    Queue(String),
}

/// Shortest and longest wait between delivery attempts while the ledger
/// is unreachable or refuses for a reason a fix can lift.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(5));

/// The outbox (see the module documentation).
#[derive(Debug)]
pub struct Outbox {
    journal: Journal,
    queue: OfflineQueue,
    link: LedgerLink,
    key: Arc<KeySet>,
    /// Held while an event is built, signed, journalled and queued, so that
    /// queue order is event-time order. Created here, held only in `emit`.
    order: Mutex<()>,
    /// Wakes the pump when an event is queued.
    wake: Notify,
    /// Bumped after each delivery run that acknowledged something; segment
    /// tasks waiting for an acknowledgement watch it.
    acks: watch::Sender<u64>,
    /// The last delivery problem, for the status page (`None` when healthy).
    trouble: std::sync::Mutex<Option<String>>,
    /// Delivery runs that stopped on a failure (for `/metrics`).
    failed_deliveries: std::sync::atomic::AtomicU64,
    /// True from before the pump takes events off the queue until their
    /// acknowledgements are in the journal (see [`Outbox::settled`]).
    delivering: AtomicBool,
}

impl Outbox {
    /// An outbox over the journal's queue tree.
    pub fn new(
        journal: Journal,
        link: LedgerLink,
        key: Arc<KeySet>,
    ) -> Result<Outbox, OutboxError> {
        let queue = OfflineQueue::new(journal.outbox_tree()?);
        Ok(Outbox {
            journal,
            queue,
            link,
            key,
            order: Mutex::new(()),
            wake: Notify::new(),
            acks: watch::channel(0).0,
            trouble: std::sync::Mutex::new(None),
            failed_deliveries: std::sync::atomic::AtomicU64::new(0),
            delivering: AtomicBool::new(false),
        })
    }

    /// Events waiting for delivery.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// Whether every event queued so far is delivered *and* its answer
    /// written into the journal. An empty queue alone is not enough: the
    /// pump takes an event off the queue when the ledger answers, and
    /// records the answer just after.
    pub fn settled(&self) -> bool {
        // The order of the two reads matters: events leave the queue only
        // while `delivering` is set, and it is cleared only once their
        // answers are recorded; so an empty queue seen *before* a clear
        // flag means nothing taken off it is still unrecorded.
        self.queue.is_empty() && !self.delivering.load(Ordering::SeqCst)
    }

    /// Why delivery is stalled, if it is.
    pub fn trouble(&self) -> Option<String> {
        self.trouble
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// How many delivery runs stopped on a failure so far.
    pub fn failed_deliveries(&self) -> u64 {
        self.failed_deliveries.load(Ordering::Relaxed)
    }

    fn set_trouble(&self, t: Option<String>) {
        *self.trouble.lock().unwrap_or_else(|p| p.into_inner()) = t;
    }

    /// A receiver that changes whenever acknowledgements arrive.
    pub fn acknowledgements(&self) -> watch::Receiver<u64> {
        self.acks.subscribe()
    }

    /// Build, sign and queue an event (step 1 of the protocol). `record`
    /// writes the envelope into the caller's journal record before it is
    /// queued; after the queue's flush, `mark_queued` notes it was queued.
    pub async fn emit<R, Q>(
        &self,
        details: &Details,
        subject: &str,
        owner: EventOwner,
        record: R,
        mark_queued: Q,
    ) -> Result<Envelope, OutboxError>
    where
        R: FnOnce(&Envelope) -> Result<(), JournalError>,
        Q: FnOnce(&Envelope) -> Result<(), JournalError>,
    {
        let build = |why: String| OutboxError::Build {
            action: details.action().to_owned(),
            why,
        };
        let _order = self.order.lock().await;
        #[expect(
            clippy::disallowed_methods,
            reason = "an event carries the dock's wall-clock time when it is signed"
        )]
        let now = Timestamp::from_offset_datetime(time::OffsetDateTime::now_utc())
            .map_err(|e| build(e.to_string()))?;
        let event = Event::of(details, subject, now).map_err(|e| build(e.to_string()))?;
        let envelope = event.sign(&self.key).map_err(|e| build(e.to_string()))?;
        record(&envelope)?;
        self.journal.own_event(&envelope, &owner)?;
        self.queue
            .enqueue(&envelope)
            .await
            .map_err(|e| OutboxError::Queue(e.to_string()))?;
        mark_queued(&envelope)?;
        self.wake.notify_one();
        Ok(envelope)
    }

    /// Queue again an event built before a crash that may not have reached
    /// the queue (step 3 of the protocol).
    pub async fn requeue(&self, envelope: &Envelope) -> Result<(), OutboxError> {
        let _order = self.order.lock().await;
        self.queue
            .enqueue(envelope)
            .await
            .map_err(|e| OutboxError::Queue(e.to_string()))?;
        self.wake.notify_one();
        Ok(())
    }

    /// Queue again every journalled event the ledger has not acknowledged,
    /// segments' and sessions' alike, in the order of their event times.
    ///
    /// Events marked queued are queued again too: a crash between the
    /// queue's removal of a delivered event and the journal's note of its
    /// acknowledgement leaves an event that is neither queued nor
    /// acknowledged. The copies cost one duplicate send each, which the
    /// ledger answers with the first entry's receipt; the order at the
    /// ledger is kept, since everything already gone from the queue was
    /// delivered.
    pub async fn requeue_unacknowledged(&self) -> Result<usize, OutboxError> {
        let mut unsent: Vec<(i128, Envelope, EventOwner)> = Vec::new();
        let mut reopen = Vec::new();
        // An event refused for a reason a fix lifts (recorded as final by
        // an older dock) is sent again too.
        let mut wanted = |e: &crate::journal::EventState| match e.rejected.as_deref() {
            _ if e.seq.is_some() => false,
            None => true,
            Some(why) if liftable(why) => {
                reopen.push(e.envelope.clone());
                true
            }
            Some(_) => false,
        };
        for r in self.journal.all_segments()? {
            let kinds = r
                .events
                .iter()
                .map(|(k, e)| (*k, e))
                .chain(r.rewiped.iter().map(|e| (EventKind::Rewiped, e)));
            for (kind, e) in kinds {
                if wanted(e) {
                    unsent.push((
                        event_time(&e.envelope),
                        e.envelope.clone(),
                        EventOwner {
                            recorder_id: r.recorder_id.clone(),
                            segment_id: Some(r.segment_id.clone()),
                            kind,
                        },
                    ));
                }
            }
        }
        for s in self.journal.all_sessions()? {
            let kinds = [
                (EventKind::Docked, s.docked.as_ref()),
                (EventKind::Undocked, s.undocked.as_ref()),
            ];
            let clock = s.clock_set.iter().map(|e| (EventKind::ClockSet, Some(e)));
            for (kind, e) in kinds.into_iter().chain(clock) {
                if let Some(e) = e.filter(|e| wanted(e)) {
                    unsent.push((
                        event_time(&e.envelope),
                        e.envelope.clone(),
                        EventOwner {
                            recorder_id: s.recorder_id.clone(),
                            segment_id: None,
                            kind,
                        },
                    ));
                }
            }
        }
        for envelope in &reopen {
            self.journal.reopen(envelope)?;
        }
        unsent.sort_by_key(|u| u.0);
        let n = unsent.len();
        for (_, envelope, owner) in unsent {
            self.journal.own_event(&envelope, &owner)?;
            self.requeue(&envelope).await?;
        }
        Ok(n)
    }

    /// Deliver until `stop` is cancelled (step 2 of the protocol).
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut backoff = BACKOFF.0;
        loop {
            self.delivering.store(true, Ordering::SeqCst);
            let result = self.queue.deliver(&*self.link).await;
            let mut stalled = false;
            match result {
                Ok(delivery) => {
                    let mut acked = false;
                    for d in &delivery.delivered {
                        match self.journal.acknowledge(&d.envelope, Ok(d.receipt.seq)) {
                            Ok(_) => acked = true,
                            Err(e) => {
                                tracing::error!(error = %e, "cannot record an acknowledgement")
                            }
                        }
                    }
                    for r in &delivery.rejected {
                        if let Ok(env) = Envelope::parse(r.envelope.as_bytes()) {
                            let _ = self.journal.acknowledge(&env, Err(r.error.clone()));
                        }
                        tracing::error!(error = %r.error, "the ledger refused an event for good");
                        acked = true;
                    }
                    if acked {
                        let _ = self.journal.flush();
                        self.acks.send_modify(|n| *n += 1);
                    }
                    self.delivering.store(false, Ordering::SeqCst);
                    match delivery.stopped {
                        Some(e) => {
                            stalled = true;
                            self.failed_deliveries.fetch_add(1, Ordering::Relaxed);
                            if self.trouble().is_none() {
                                tracing::warn!(error = %e, waiting = delivery.remaining, "the ledger did not take the next event; events wait in the journal and are sent again");
                            }
                            self.set_trouble(Some(format!(
                                "{} events wait: {e}",
                                delivery.remaining
                            )));
                        }
                        None => {
                            if self.trouble().is_some() {
                                tracing::info!(
                                    "the ledger takes events again; queued events delivered"
                                );
                            }
                            self.set_trouble(None);
                            backoff = BACKOFF.0;
                        }
                    }
                }
                Err(e) => {
                    self.delivering.store(false, Ordering::SeqCst);
                    stalled = true;
                    self.failed_deliveries.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, "the dock's event queue failed");
                    self.set_trouble(Some(e.to_string()));
                }
            }
            let wait = if stalled {
                let w = backoff;
                backoff = (backoff * 2).min(BACKOFF.1);
                w
            } else {
                Duration::from_secs(1)
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.wake.notified(), if !stalled => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Whether a refusal, as the journal keeps it (custos-client's
/// `ClientError` text: `the ledger refused URL: STATUS CODE: message`), is
/// one a fix of the configuration or the ledger's load lifts (see
/// `ClientError::is_final_refusal`).
fn liftable(refusal: &str) -> bool {
    let Some((status, code)) = refusal.match_indices(": ").find_map(|(i, _)| {
        let rest = &refusal[i + 2..];
        let status: u16 = rest.get(..3)?.parse().ok()?;
        let code = rest.get(4..)?.split(':').next()?;
        (rest.as_bytes().get(3) == Some(&b' ')).then(|| (status, code.to_owned()))
    }) else {
        return false;
    };
    let e = custos_client::ClientError::answered("", status, code, "");
    (400..500).contains(&status) && !e.is_final_refusal()
}

/// The event's own time, for ordering re-queued events (unreadable → first).
fn event_time(envelope: &Envelope) -> i128 {
    Event::parse(&envelope.payload)
        .map(|e| e.time.unix_nanos())
        .unwrap_or(i128::MIN)
}

#[cfg(test)]
mod tests {
    use super::liftable;

    #[test]
    fn recorded_refusals_are_sorted_by_what_lifts_them() {
        for text in [
            "the ledger refused http://127.0.0.1:8700/v1/events: 401 invalid_token: the token is not valid",
            "the ledger refused http://l:1/v1/events: 403 forbidden: role auditor may not",
            "the ledger refused http://l/v1/events: 413 unknown: <html>",
            "the ledger refused in-process ledger: 429 unknown: slow down",
        ] {
            assert!(liftable(text), "{text}");
        }
        for text in [
            "the ledger refused http://l:1/v1/events: 403 bad_signature: bad signature: x",
            "the ledger refused http://l:1/v1/events: 400 bad_event: y",
            "the ledger refused http://l:1/v1/events: 409 segment_exists: z",
            "something else entirely",
        ] {
            assert!(!liftable(text), "{text}");
        }
    }
}
