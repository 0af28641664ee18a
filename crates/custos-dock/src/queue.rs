//! Where a dock's signed events go: the [`EventSink`] trait (a remote ledger
//! over HTTP through custos-client, or a ledger in the same process, which
//! the binary wires in), and the [`OfflineQueue`] that keeps events in the
//! dock's sled tree while the ledger is unreachable and delivers them, in
//! order, once it is back.
//!
//! # The queue's protocol
//!
//! 1. [`OfflineQueue::send`] first delivers whatever is already queued, in
//!    order; only if the queue is then empty does it send the new event
//!    directly. Otherwise (or if the direct send fails in a retryable way)
//!    the event is queued behind the others: events reach the ledger in the
//!    order the dock produced them.
//! 2. Queuing writes the envelope under the next position (a counter that
//!    never goes back) and flushes the caller's sled database before
//!    returning: a queued event survives a crash.
//! 3. Delivery ([`OfflineQueue::deliver`]) sends the oldest event; on
//!    success (including "already appended": the ledger de-duplicates
//!    envelopes) it removes it and moves on; on a final refusal (the ledger
//!    names the event itself as invalid,
//!    [`ClientError::is_final_refusal`]: this envelope will never be
//!    accepted) it moves it aside to the rejected list with the ledger's
//!    message, so that one bad event cannot block the dock forever, and
//!    reports it; on any other failure it stops and keeps it — an
//!    unreachable or failing ledger, and the refusals a fix of the
//!    configuration or of the ledger's load lifts (401 a wrong token, 403
//!    a key not registered yet, 408, 413 a proxy's body limit, 429 a rate
//!    limit): the same bytes are sent again later, after a restart too.
//!
//! A crash between a successful send and the removal leaves the event
//! queued; it is sent again, and the ledger answers with the first entry's
//! receipt. So every queued event is appended exactly once.
//!
//! The queue must never reorder events, drop one silently, or hold the
//! caller's sled lock across an await.

use std::future::Future;
use std::pin::Pin;

use custos_client::{ClientError, LedgerClient};
use custos_core::dsse::Envelope;
use custos_core::wire::Receipt;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

/// What [`EventSink::send_event`] returns: the ledger's receipt, or why it
/// was not appended, in the client's terms (an in-process ledger answers
/// with the same status codes and messages as over HTTP).
pub type SendEvent<'a> = Pin<Box<dyn Future<Output = Result<Receipt, ClientError>> + Send + 'a>>;

/// Something that appends a dock's signed events.
pub trait EventSink: Send + Sync + std::fmt::Debug {
    /// Append `envelope`; a duplicate answers with the first receipt.
    fn send_event<'a>(&'a self, envelope: &'a Envelope) -> SendEvent<'a>;
}

impl EventSink for LedgerClient {
    fn send_event<'a>(&'a self, envelope: &'a Envelope) -> SendEvent<'a> {
        Box::pin(self.append_envelope(envelope))
    }
}

/// What went wrong with the queue itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The caller's sled tree failed.
    #[error("offline event queue: {0}")]
    Sled(sled::Error),
    /// A queued value could not be read back.
    #[error("offline event queue: the event at position {position} is unreadable: {why}")]
    Corrupt {
        /// Its position.
        position: u64,
        /// What is wrong.
        why: String,
    },
}

impl From<sled::Error> for QueueError {
    fn from(e: sled::Error) -> Self {
        QueueError::Sled(e)
    }
}

/// An event the ledger refused for good, kept aside for the operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectedEvent {
    /// Its queue position.
    pub position: u64,
    /// The envelope (canonical JSON text).
    pub envelope: String,
    /// The ledger's refusal.
    pub error: String,
}

/// One event delivered from the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivered {
    /// Its queue position.
    pub position: u64,
    /// The envelope.
    pub envelope: Envelope,
    /// The ledger's receipt.
    pub receipt: Receipt,
}

/// The outcome of one delivery run.
#[derive(Debug, Default)]
pub struct Delivery {
    /// Delivered, in order.
    pub delivered: Vec<Delivered>,
    /// Refused for good and moved aside.
    pub rejected: Vec<RejectedEvent>,
    /// Still queued.
    pub remaining: usize,
    /// Why delivery stopped early (anything but a final refusal), if it did.
    pub stopped: Option<ClientError>,
}

/// What happened to an event given to [`OfflineQueue::send`].
#[derive(Debug)]
pub enum Sent {
    /// Appended (possibly as a duplicate of an earlier send).
    Delivered(Receipt),
    /// Queued at `position`, because the ledger is unreachable, failing or
    /// refused it for a reason a fix can lift, or older events wait before it.
    Queued {
        /// The queue position.
        position: u64,
        /// Why it was not delivered now.
        reason: String,
    },
    /// The ledger refused it for good ([`ClientError::is_final_refusal`]);
    /// it was not queued.
    Refused(ClientError),
}

const PENDING: u8 = b'q';
const REJECTED: u8 = b'x';
const COUNTER: &[u8] = b"n";

fn key(prefix: u8, position: u64) -> [u8; 9] {
    let mut k = [prefix; 9];
    k[1..].copy_from_slice(&position.to_be_bytes());
    k
}

/// An ordered, durable queue of signed events in the caller's sled tree.
#[derive(Debug)]
pub struct OfflineQueue {
    tree: sled::Tree,
    /// Serialises enqueue and delivery, so that two tasks of one dock can
    /// never interleave (and so reorder) deliveries. Held across the
    /// network call on purpose; never held with a sled lock.
    order: Mutex<()>,
}

impl OfflineQueue {
    /// A queue in `tree` (a tree of the dock's own sled database, used for
    /// nothing else).
    pub fn new(tree: sled::Tree) -> Self {
        OfflineQueue {
            tree,
            order: Mutex::new(()),
        }
    }

    /// Events waiting for delivery.
    pub fn len(&self) -> usize {
        self.tree.scan_prefix([PENDING]).count()
    }

    /// Whether no event waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The events refused for good.
    pub fn rejected(&self) -> Result<Vec<RejectedEvent>, QueueError> {
        let mut out = Vec::new();
        for row in self.tree.scan_prefix([REJECTED]) {
            let (k, v) = row?;
            let position = u64::from_be_bytes(k[1..].try_into().unwrap_or_default());
            out.push(serde_json::from_slice(&v).map_err(|e| QueueError::Corrupt {
                position,
                why: e.to_string(),
            })?);
        }
        Ok(out)
    }

    fn enqueue_locked(&self, envelope: &Envelope) -> Result<u64, QueueError> {
        let next = self
            .tree
            .update_and_fetch(COUNTER, |old| {
                let n = old
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map_or(0, u64::from_be_bytes);
                Some(n.saturating_add(1).to_be_bytes().to_vec())
            })?
            .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
            .map_or(0, u64::from_be_bytes);
        let position = next - 1;
        self.tree
            .insert(key(PENDING, position), envelope.to_json())?;
        self.tree.flush()?;
        Ok(position)
    }

    /// Queue `envelope` without trying to send it; returns its position.
    pub async fn enqueue(&self, envelope: &Envelope) -> Result<u64, QueueError> {
        let _order = self.order.lock().await;
        self.enqueue_locked(envelope)
    }

    /// Deliver what is queued (see the module documentation), then send
    /// `envelope` directly if nothing waits before it, else queue it.
    pub async fn send<S: EventSink + ?Sized>(
        &self,
        sink: &S,
        envelope: &Envelope,
    ) -> Result<(Sent, Delivery), QueueError> {
        let _order = self.order.lock().await;
        let delivery = self.deliver_locked(sink).await?;
        if delivery.remaining > 0 {
            let reason = match &delivery.stopped {
                Some(e) => format!("{} older events wait: {e}", delivery.remaining),
                None => format!("{} older events wait", delivery.remaining),
            };
            let position = self.enqueue_locked(envelope)?;
            return Ok((Sent::Queued { position, reason }, delivery));
        }
        match sink.send_event(envelope).await {
            Ok(receipt) => Ok((Sent::Delivered(receipt), delivery)),
            // Refused for good: not queued; the caller sees why now.
            Err(e) if e.is_final_refusal() => Ok((Sent::Refused(e), delivery)),
            Err(e) => {
                let position = self.enqueue_locked(envelope)?;
                Ok((
                    Sent::Queued {
                        position,
                        reason: e.to_string(),
                    },
                    delivery,
                ))
            }
        }
    }

    /// Deliver queued events in order until the queue is empty or an error
    /// other than a final refusal stops it.
    pub async fn deliver<S: EventSink + ?Sized>(&self, sink: &S) -> Result<Delivery, QueueError> {
        let _order = self.order.lock().await;
        self.deliver_locked(sink).await
    }

    async fn deliver_locked<S: EventSink + ?Sized>(
        &self,
        sink: &S,
    ) -> Result<Delivery, QueueError> {
        let mut delivery = Delivery::default();
        loop {
            let Some((k, v)) = self.tree.scan_prefix([PENDING]).next().transpose()? else {
                break;
            };
            let position = u64::from_be_bytes(k[1..].try_into().unwrap_or_default());
            let envelope = Envelope::parse(&v).map_err(|e| QueueError::Corrupt {
                position,
                why: e.to_string(),
            })?;
            match sink.send_event(&envelope).await {
                Ok(receipt) => {
                    self.tree.remove(&k)?;
                    delivery.delivered.push(Delivered {
                        position,
                        envelope,
                        receipt,
                    });
                }
                Err(e) if !e.is_final_refusal() => {
                    delivery.stopped = Some(e);
                    break;
                }
                Err(e) => {
                    tracing::error!(position, error = %e, "the ledger refused a queued event for good; moved aside");
                    let rejected = RejectedEvent {
                        position,
                        envelope: String::from_utf8_lossy(&v).into_owned(),
                        error: e.to_string(),
                    };
                    // INVARIANT: a struct of a number and strings serialises.
                    let json = serde_json::to_vec(&rejected).expect("INVARIANT: serialisable");
                    let mut batch = sled::Batch::default();
                    batch.remove(&k);
                    batch.insert(&key(REJECTED, position), json);
                    self.tree.apply_batch(batch)?;
                    delivery.rejected.push(rejected);
                }
            }
        }
        self.tree.flush()?;
        delivery.remaining = self.len();
        Ok(delivery)
    }
}
