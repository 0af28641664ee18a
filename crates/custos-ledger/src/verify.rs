//! Batched verification of docks' event signatures across concurrent
//! requests.
//!
//! Checking the Ed25519 signature of each `POST /v1/events` envelope is
//! the largest single cost of an append. Verifying many signatures with one
//! batch equation ([`custos_core::keys::verify_batch`]) costs about half as
//! much per signature once there are eight or more, so requests that are
//! admitted at the same time share one check:
//!
//! 1. A request hands its envelope's candidate signatures (those that name
//!    the dock's registered key, or no key) to the [`Batcher`]. If a batch
//!    is open it joins it and waits for the verdict.
//! 2. Otherwise it opens one and yields to the runtime (a few times, while
//!    others keep joining), so that the requests that are ready on this
//!    runtime can join; then it closes the batch, verifies all of it at
//!    once and tells every member.
//! 3. Each request then runs the envelope rules as before
//!    ([`custos_core::entry::Event::open_with`]): a signature the batch
//!    passed counts as verified; every other one is verified alone.
//!
//! So a batch that fails (one bad signature among good ones) costs its
//! members one single verification each, done by each member in its own
//! task: the bad signature is found by, and reported to, the request that
//! sent it, with the error a single verification gives, and is never
//! admitted; the good ones are admitted. A batch of one is not batched.
//!
//! Keys with a small-order component are never batched (checked once per
//! key and remembered). The batch equation differs from the single check
//! only for a signature that the key's own holder built with a small-order
//! component in `R` (see [`custos_core::keys::verify_batch`]).

use std::collections::HashMap;
use std::sync::Mutex;

use custos_core::dsse::Envelope;
use custos_core::keys::{verify_batch, SignatureError, VerifierKey};
use tokio::sync::oneshot;

use crate::metrics::Metrics;

/// Largest batch; a request that finds the open batch full verifies alone.
const MAX_BATCH: usize = 256;
/// Most times the request that opened a batch yields to let others join.
const MAX_YIELDS: usize = 4;
/// Most dock keys whose subgroup check is remembered.
const MAX_KEYS: usize = 4096;

/// The signatures of one envelope that its verification will check with
/// the dock's key, and whether a batch already verified them.
#[derive(Debug, Default)]
pub(crate) struct Preverified {
    key: Option<VerifierKey>,
    message: Vec<u8>,
    signatures: Vec<Vec<u8>>,
    passed: bool,
}

impl Preverified {
    /// The single-signature check for [`Envelope::verify_with`]: a
    /// signature the batch passed, under the key and over the message it
    /// was batched with, is verified; anything else is verified alone.
    pub(crate) fn check(
        &self,
        key: &VerifierKey,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureError> {
        let batched = self.passed
            && self.key.as_ref() == Some(key)
            && self.message == message
            && self.signatures.iter().any(|s| s == signature);
        if batched {
            Ok(())
        } else {
            key.verify(message, signature)
        }
    }
}

/// One request's part of a batch.
struct Member {
    key: VerifierKey,
    message: Vec<u8>,
    signatures: Vec<Vec<u8>>,
    /// Where the request waits; the verdict carries its signatures back.
    verdict: oneshot::Sender<Preverified>,
}

/// The open batch (if any) and what is known about keys.
#[derive(Default)]
pub(crate) struct Batcher {
    open: Mutex<Option<Vec<Member>>>,
    torsion_free: Mutex<HashMap<[u8; 32], bool>>,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

/// Closes the open batch if the request that opened it is dropped before
/// verifying it (a client that went away): the members then see no verdict
/// and verify alone.
struct OpenGuard<'a> {
    batcher: &'a Batcher,
    armed: bool,
}

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            drop(self.batcher.take_open());
        }
    }
}

impl Batcher {
    fn take_open(&self) -> Option<Vec<Member>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Whether `key` may be batched (no small-order component), remembered.
    fn batchable(&self, key: &VerifierKey) -> bool {
        // SM2 keys are never batched: their signatures are verified one by one.
        let Some(&public) = key.ed25519_public() else {
            return false;
        };
        if let Some(&known) = self
            .torsion_free
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&public)
        {
            return known;
        }
        let free = key.is_torsion_free();
        let mut known = self.torsion_free.lock().unwrap_or_else(|p| p.into_inner());
        if known.len() >= MAX_KEYS {
            known.clear();
        }
        known.insert(public, free);
        free
    }

    /// Steps 1 and 2 of the module documentation for `envelope`, signed
    /// (it claims) by `key`.
    pub(crate) async fn preverify(
        &self,
        key: &VerifierKey,
        envelope: &Envelope,
        metrics: &Metrics,
    ) -> Preverified {
        let key_id = key.key_id();
        let signatures: Vec<Vec<u8>> = envelope
            .signatures
            .iter()
            .filter(|s| (s.keyid.is_empty() || s.keyid == key_id) && s.sig.len() == 64)
            .map(|s| s.sig.clone())
            .collect();
        if signatures.is_empty() || !self.batchable(key) {
            return Preverified::default();
        }
        let message = envelope.pae();
        let (verdict, wait) = oneshot::channel();
        let member = Member {
            key: key.clone(),
            message,
            signatures,
            verdict,
        };
        let opened = {
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            match open.as_mut() {
                Some(members) if members.len() < MAX_BATCH => {
                    members.push(member);
                    None
                }
                Some(_) => Some(None),
                None => {
                    *open = Some(Vec::new());
                    Some(Some(member))
                }
            }
        };
        let own = match opened {
            // Joined an open batch: wait for its verdict (none if the
            // request that opened it went away).
            None => {
                return wait.await.unwrap_or_default();
            }
            // The open batch is full: verify alone.
            Some(None) => return Preverified::default(),
            Some(Some(member)) => member,
        };
        let mut guard = OpenGuard {
            batcher: self,
            armed: true,
        };
        let mut seen = 0;
        for _ in 0..MAX_YIELDS {
            tokio::task::yield_now().await;
            let now = self
                .open
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .map_or(0, Vec::len);
            if now == seen {
                break;
            }
            seen = now;
        }
        guard.armed = false;
        let members = self.take_open().unwrap_or_default();
        if members.is_empty() {
            // Nobody joined: the single check in Event::open_with does it.
            return Preverified::default();
        }
        let mut items: Vec<(&VerifierKey, &[u8], &[u8])> = Vec::new();
        for m in members.iter().chain(std::iter::once(&own)) {
            for s in &m.signatures {
                items.push((&m.key, &m.message, s));
            }
        }
        // The weights come from the operating system: a dock that could
        // predict them could make a bad signature pass in a batch.
        let passed = verify_batch(&items, &mut rand_core::OsRng);
        metrics.signature_batch_size.observe(items.len() as f64);
        metrics
            .signature_batches
            .with_label_values(&[if passed { "passed" } else { "failed" }])
            .inc();
        drop(items);
        for m in members {
            let _ = m.verdict.send(Preverified {
                key: Some(m.key),
                message: m.message,
                signatures: m.signatures,
                passed,
            });
        }
        Preverified {
            key: Some(own.key),
            message: own.message,
            signatures: own.signatures,
            passed,
        }
    }
}
