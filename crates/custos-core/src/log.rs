//! The auditor's check of a whole custody log, entry by entry, against a
//! checkpoint: what `custos verify log` decides, without the fetching.
//!
//! A [`LogVerifier`] is fed the `/v1/entries` lines of a log in order
//! ([`LogVerifier::push`]) and, at the end, compares the tree it recomputed
//! with the checkpoint's ([`LogVerifier::finish`]). For each entry it checks
//!
//! 1. that the line is the entry it claims to be: its `seq`, the `seq` inside
//!    its bytes, `raw` decoding to a canonical entry and `entry` showing the
//!    same JSON;
//! 2. the prev chain: each entry carries the leaf hash of the one before it,
//!    and entry 0 none;
//! 3. a dock-signed event: it verifies under a key registered for that dock
//!    by an earlier `token.created` entry (role dock), and the entry says
//!    exactly what the dock signed.
//!
//! Given an older checkpoint the auditor kept, it also remembers the root of
//! the first `old.size()` entries, so that [`check_consistency`] can prove
//! the log only grew since (the recomputed prefix root and the ledger's RFC
//! 9162 consistency proof must both agree).
//!
//! Every problem is a [`LogProblem`] whose text names the entry or
//! checkpoint at fault. This module must never accept an entry it could not
//! check, nor trust a key that the log did not register before the entry.

use std::collections::{BTreeMap, BTreeSet};

use crate::checkpoint::Checkpoint;
use crate::entry::details::TokenCreated;
use crate::entry::{ActorKind, Details, Entry, Event};
use crate::keys::VerifierKey;
use crate::merkle::{self, CompactRange, Hash};
use crate::wire::EntryLine;

/// What is wrong with one served entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryProblem {
    /// The line carries another `seq` than its position.
    #[error("the ledger served seq {served} in its place")]
    WrongSeq {
        /// The `seq` the line carries.
        served: u64,
    },
    /// `raw` is not standard base64.
    #[error("raw is not standard base64")]
    BadBase64,
    /// `raw` does not parse as a canonical entry.
    #[error("raw is not a canonical entry: {0}")]
    NotCanonical(String),
    /// The bytes carry another `seq` than the position.
    #[error("its bytes say seq {0}")]
    BytesSaySeq(u64),
    /// The `entry` field is not JSON.
    #[error("the entry field is not JSON: {0}")]
    EntryFieldNotJson(String),
    /// `raw` is not JSON.
    #[error("raw is not JSON: {0}")]
    RawNotJson(String),
    /// `entry` shows other JSON than `raw` holds.
    #[error("the entry field does not match the bytes in raw")]
    EntryFieldMismatch,
    /// Entry 0 carries a prev.
    #[error("entry 0 carries a prev")]
    PrevOnFirst,
    /// The prev is not the leaf hash of the entry before.
    #[error("prev does not match leaf hash of entry {previous}")]
    PrevMismatch {
        /// The entry before.
        previous: u64,
    },
    /// A signed event whose actor has no dock key registered before it.
    #[error("carries a signed event, but no dock key was registered for {kind} {id:?} before it")]
    UnregisteredSigner {
        /// The actor's kind.
        kind: ActorKind,
        /// The actor's id.
        id: String,
    },
    /// The signed event does not verify under the dock's keys.
    #[error("signed event does not verify under the keys registered for dock {dock:?}: {why}")]
    EventDoesNotVerify {
        /// The dock.
        dock: String,
        /// Why.
        why: String,
    },
    /// The entry's action, subject or details differ from the signed event.
    #[error("the entry differs from the event the dock signed")]
    DiffersFromEvent,
    /// A `token.created` entry registers a key that does not parse.
    #[error("token.created registers a malformed dock key: {0}")]
    MalformedDockKey(String),
}

/// Why a log does not verify against its checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogProblem {
    /// The checkpoint is smaller than the older one kept.
    #[error("checkpoint: size {size} is smaller than {old_size}: the log shrank")]
    Shrank {
        /// The checkpoint's size.
        size: u64,
        /// The older checkpoint's.
        old_size: u64,
    },
    /// The ledger serves no entry where its checkpoint says there is one.
    #[error(
        "entries: the ledger serves nothing from seq {start}, but its checkpoint has size {size}"
    )]
    NothingServed {
        /// The first seq asked for.
        start: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// One entry is at fault.
    #[error("entry {seq}: {problem}")]
    Entry {
        /// Its seq.
        seq: u64,
        /// What is wrong.
        problem: EntryProblem,
    },
    /// The entries served hash to another root than the checkpoint's.
    #[error("the {size} entries served hash to root {got}, not the checkpoint's {want}: the log served is not the one signed")]
    RootMismatch {
        /// The size.
        size: u64,
        /// The recomputed root.
        got: Hash,
        /// The checkpoint's root.
        want: Hash,
    },
    /// The first entries hash to another root than the older checkpoint's.
    #[error("the log's first {old_size} entries hash to {}, not this checkpoint's root {want}: the log was rewritten (a fork)", got.map(|r| r.to_string()).unwrap_or_default())]
    Fork {
        /// The older checkpoint's size.
        old_size: u64,
        /// The recomputed root at that size (none if never reached).
        got: Option<Hash>,
        /// The older checkpoint's root.
        want: Hash,
    },
    /// The ledger's consistency proof does not verify.
    #[error("the ledger's consistency proof fails: {0}")]
    ConsistencyProof(String),
}

/// What a verified log held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSummary {
    /// Entries checked (the checkpoint's size).
    pub size: u64,
    /// Entries that carried a dock-signed event, each verified.
    pub signed_events: u64,
    /// The root of the first `n` entries for each older size `n` given to
    /// [`LogVerifier::new`] (for [`check_consistency`]; see
    /// [`LogSummary::root_at`]).
    pub roots_at_old: BTreeMap<u64, Hash>,
}

impl LogSummary {
    /// The recomputed root of the first `size` entries, if `size` was one
    /// of the older sizes given to [`LogVerifier::new`].
    pub fn root_at(&self, size: u64) -> Option<Hash> {
        self.roots_at_old.get(&size).copied()
    }
}

/// The check of one log against one checkpoint (see the module docs).
#[derive(Debug)]
pub struct LogVerifier {
    size: u64,
    root: Hash,
    /// The sizes of older checkpoints whose roots are wanted.
    old_sizes: BTreeSet<u64>,
    range: CompactRange,
    roots_at_old: BTreeMap<u64, Hash>,
    previous: Option<Vec<u8>>,
    /// Dock id -> keys registered for it so far.
    dock_keys: BTreeMap<String, Vec<VerifierKey>>,
    signed_events: u64,
}

impl LogVerifier {
    /// A check of the log `checkpoint` signs; `old_sizes` are the sizes of
    /// older checkpoints kept by the auditor, if any (refused if one is
    /// larger: the log shrank).
    pub fn new(checkpoint: &Checkpoint, old_sizes: &[u64]) -> Result<Self, LogProblem> {
        let size = checkpoint.size();
        if let Some(&old_size) = old_sizes.iter().filter(|o| **o > size).max() {
            return Err(LogProblem::Shrank { size, old_size });
        }
        let old_sizes: BTreeSet<u64> = old_sizes.iter().copied().collect();
        let mut roots_at_old = BTreeMap::new();
        if old_sizes.contains(&0) {
            roots_at_old.insert(0, merkle::empty_root());
        }
        Ok(LogVerifier {
            size,
            root: checkpoint.root(),
            old_sizes,
            range: CompactRange::new(),
            roots_at_old,
            previous: None,
            dock_keys: BTreeMap::new(),
            signed_events: 0,
        })
    }

    /// The next seq wanted, or `None` once every entry has been checked.
    pub fn next_seq(&self) -> Option<u64> {
        (self.range.size() < self.size).then(|| self.range.size())
    }

    /// The problem of a page of entries from [`LogVerifier::next_seq`] that
    /// came back empty.
    pub fn nothing_served(&self) -> LogProblem {
        LogProblem::NothingServed {
            start: self.range.size(),
            size: self.size,
        }
    }

    /// Check the next entry. Lines past the checkpoint's size are ignored.
    pub fn push(&mut self, line: &EntryLine) -> Result<(), LogProblem> {
        let Some(seq) = self.next_seq() else {
            return Ok(());
        };
        let raw = self
            .check_entry(seq, line)
            .map_err(|problem| LogProblem::Entry { seq, problem })?;
        self.range.push(merkle::leaf_hash(&raw));
        self.previous = Some(raw);
        if self.old_sizes.contains(&self.range.size()) {
            self.roots_at_old
                .insert(self.range.size(), self.range.root());
        }
        Ok(())
    }

    /// Entries checked so far.
    pub fn checked(&self) -> u64 {
        self.range.size()
    }

    /// After the last entry: the recomputed root must be the checkpoint's.
    pub fn finish(self) -> Result<LogSummary, LogProblem> {
        if self.next_seq().is_some() {
            return Err(self.nothing_served());
        }
        let got = self.range.root();
        if got != self.root {
            return Err(LogProblem::RootMismatch {
                size: self.size,
                got,
                want: self.root,
            });
        }
        Ok(LogSummary {
            size: self.size,
            signed_events: self.signed_events,
            roots_at_old: self.roots_at_old,
        })
    }

    /// Check one served entry; returns its leaf bytes. Records dock keys
    /// registered by `token.created` entries.
    fn check_entry(&mut self, seq: u64, line: &EntryLine) -> Result<Vec<u8>, EntryProblem> {
        if line.seq != seq {
            return Err(EntryProblem::WrongSeq { served: line.seq });
        }
        let raw = line.raw_bytes().map_err(|_| EntryProblem::BadBase64)?;
        let entry = Entry::parse(&raw).map_err(|e| EntryProblem::NotCanonical(e.to_string()))?;
        if entry.seq != seq {
            return Err(EntryProblem::BytesSaySeq(entry.seq));
        }
        let shown: serde_json::Value = serde_json::from_str(line.entry.get())
            .map_err(|e| EntryProblem::EntryFieldNotJson(e.to_string()))?;
        let actual: serde_json::Value =
            serde_json::from_slice(&raw).map_err(|e| EntryProblem::RawNotJson(e.to_string()))?;
        if shown != actual {
            return Err(EntryProblem::EntryFieldMismatch);
        }
        if entry.verify_prev(self.previous.as_deref()).is_err() {
            return Err(match seq {
                0 => EntryProblem::PrevOnFirst,
                _ => EntryProblem::PrevMismatch { previous: seq - 1 },
            });
        }
        if let Some(envelope) = &entry.envelope {
            let keys = self
                .dock_keys
                .get(&entry.actor.id)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            if entry.actor.kind != ActorKind::Dock || keys.is_empty() {
                return Err(EntryProblem::UnregisteredSigner {
                    kind: entry.actor.kind,
                    id: entry.actor.id.clone(),
                });
            }
            // As the ledger admits them: every signature by a key
            // registered to the dock, and each one verifying.
            envelope
                .check_signers(keys)
                .map_err(|e| EntryProblem::EventDoesNotVerify {
                    dock: entry.actor.id.clone(),
                    why: e.to_string(),
                })?;
            let event =
                Event::open(envelope, keys).map_err(|e| EntryProblem::EventDoesNotVerify {
                    dock: entry.actor.id.clone(),
                    why: e.to_string(),
                })?;
            let e = event.event;
            if e.action != entry.action || e.subject != entry.subject || e.details != entry.details
            {
                return Err(EntryProblem::DiffersFromEvent);
            }
            self.signed_events += 1;
        }
        if let Ok(Details::TokenCreated(TokenCreated {
            role,
            key: Some(text),
            more_keys,
            ..
        })) = entry.parsed_details()
        {
            if role == "dock" {
                for text in std::iter::once(&text).chain(&more_keys) {
                    let key: VerifierKey = text.parse().map_err(|e: crate::keys::KeyError| {
                        EntryProblem::MalformedDockKey(e.to_string())
                    })?;
                    self.dock_keys
                        .entry(entry.subject.clone())
                        .or_default()
                        .push(key);
                }
            }
        }
        Ok(raw)
    }
}

/// The older checkpoint's tree must be a prefix of the new one: the root
/// recomputed from the entries at the old size (`root_at_old`, from
/// [`LogSummary::root_at`]) must be the old checkpoint's, and the ledger's
/// consistency proof `hashes` (RFC 9162 §2.1.4.2; empty when the sizes are
/// equal or the old tree is empty) must verify.
pub fn check_consistency(
    old: &Checkpoint,
    new: &Checkpoint,
    root_at_old: Option<Hash>,
    hashes: &[Hash],
) -> Result<(), LogProblem> {
    if root_at_old != Some(old.root()) {
        return Err(LogProblem::Fork {
            old_size: old.size(),
            got: root_at_old,
            want: old.root(),
        });
    }
    merkle::verify_consistency(old.size(), new.size(), hashes, &old.root(), &new.root())
        .map_err(|e| LogProblem::ConsistencyProof(e.to_string()))
}

/// Whether [`check_consistency`] needs a proof from the ledger for these
/// sizes (not when the old tree is empty or the sizes are equal).
pub fn needs_consistency_proof(old: &Checkpoint, new: &Checkpoint) -> bool {
    old.size() != 0 && old.size() != new.size()
}

#[cfg(test)]
mod tests {
    use serde_json::Map;

    use super::*;
    use crate::entry::{Action, Actor, EntryBody};
    use crate::keys::SigningKey;
    use crate::manifest::Timestamp;

    /// `n` entries by a supervisor, chained, as a ledger writes them.
    fn log_of(n: u64) -> Vec<Vec<u8>> {
        let actor = Actor {
            kind: ActorKind::Supervisor,
            id: "sup-1".into(),
        };
        let action = Action::new("case.created").unwrap();
        let time = Timestamp::parse("2026-03-01T08:00:00Z").unwrap();
        let mut out: Vec<Vec<u8>> = Vec::new();
        for seq in 0..n {
            let body =
                EntryBody::new(&actor, &action, &format!("c-{seq}"), &Map::new(), None).unwrap();
            let prev = out.last().map(|b| merkle::leaf_hash(b));
            out.push(body.to_bytes(seq, prev, time).unwrap());
        }
        out
    }

    fn checkpoint_of(leaves: &[Vec<u8>]) -> Checkpoint {
        let mut range = CompactRange::new();
        for leaf in leaves {
            range.push(merkle::leaf_hash(leaf));
        }
        let key = SigningKey::from_seed("ledger", &[1; 32]).unwrap();
        let signed = Checkpoint::new("test/log", range.size(), range.root())
            .unwrap()
            .sign(&key);
        Checkpoint::open(signed.as_bytes(), &key.verifier_key(), None).unwrap()
    }

    fn lines(leaves: &[Vec<u8>]) -> Vec<EntryLine> {
        (0u64..)
            .zip(leaves)
            .map(|(seq, raw)| EntryLine::new(seq, raw).unwrap())
            .collect()
    }

    fn run(
        checkpoint: &Checkpoint,
        old: Option<u64>,
        served: &[EntryLine],
    ) -> Result<LogSummary, LogProblem> {
        let mut v = LogVerifier::new(checkpoint, old.as_slice())?;
        for line in served {
            v.push(line)?;
        }
        v.finish()
    }

    #[test]
    fn an_intact_log_verifies_and_remembers_the_older_root() {
        let leaves = log_of(7);
        let summary = run(&checkpoint_of(&leaves), Some(3), &lines(&leaves)).unwrap();
        assert_eq!(summary.size, 7);
        assert_eq!(summary.signed_events, 0);
        let old = checkpoint_of(&leaves[..3]);
        assert_eq!(summary.root_at(3), Some(old.root()));
        let new = checkpoint_of(&leaves);
        let hashes: Vec<Hash> = leaves.iter().map(|l| merkle::leaf_hash(l)).collect();
        let tree = merkle::MemoryTree::from_leaves(&hashes);
        let proof = merkle::consistency_proof(&tree, 3, 7).unwrap();
        assert!(needs_consistency_proof(&old, &new));
        check_consistency(&old, &new, summary.root_at(old.size()), &proof).unwrap();
        // A proof that does not fit is refused.
        assert!(matches!(
            check_consistency(&old, &new, summary.root_at(old.size()), &proof[1..]),
            Err(LogProblem::ConsistencyProof(_))
        ));

        // Several kept checkpoints at once: each size's own root, the empty
        // tree's too, and none for a size that was not asked for.
        let mut v = LogVerifier::new(&new, &[5, 0, 2, 5]).unwrap();
        for line in lines(&leaves) {
            v.push(&line).unwrap();
        }
        let summary = v.finish().unwrap();
        for n in [0, 2, 5] {
            let want = if n == 0 {
                merkle::empty_root()
            } else {
                checkpoint_of(&leaves[..n]).root()
            };
            assert_eq!(summary.root_at(n as u64), Some(want), "size {n}");
        }
        assert_eq!(summary.root_at(3), None);
    }

    #[test]
    fn each_kind_of_doctored_log_is_named() {
        let leaves = log_of(4);
        let cp = checkpoint_of(&leaves);
        // A missing entry at the end.
        assert_eq!(
            run(&cp, None, &lines(&leaves[..3])),
            Err(LogProblem::NothingServed { start: 3, size: 4 })
        );
        // An entry served out of place.
        let mut swapped = lines(&leaves);
        swapped.swap(1, 2);
        assert_eq!(
            run(&cp, None, &swapped),
            Err(LogProblem::Entry {
                seq: 1,
                problem: EntryProblem::WrongSeq { served: 2 }
            })
        );
        // Another log (a different subject) under the same checkpoint.
        let mut other = log_of(4);
        other[3] = String::from_utf8(other[3].clone())
            .unwrap()
            .replace("c-3", "c-9")
            .into_bytes();
        assert!(matches!(
            run(&cp, None, &lines(&other)),
            Err(LogProblem::RootMismatch { size: 4, .. })
        ));
        // A broken prev chain: entry 1 replaced, entry 2 still names the old.
        let mut fork = log_of(2);
        fork[1] = String::from_utf8(fork[1].clone())
            .unwrap()
            .replace("c-1", "c-x")
            .into_bytes();
        let mut relinked = lines(&leaves);
        relinked[1] = EntryLine::new(1, &fork[1]).unwrap();
        assert_eq!(
            run(&cp, None, &relinked),
            Err(LogProblem::Entry {
                seq: 2,
                problem: EntryProblem::PrevMismatch { previous: 1 }
            })
        );
        // A shrunk log.
        assert_eq!(
            LogVerifier::new(&checkpoint_of(&leaves[..2]), &[1, 3]).unwrap_err(),
            LogProblem::Shrank {
                size: 2,
                old_size: 3
            }
        );
        // A rewritten prefix: the older checkpoint saw other first entries.
        let mut prefix_fork = log_of(2);
        prefix_fork[0] = String::from_utf8(prefix_fork[0].clone())
            .unwrap()
            .replace("c-0", "c-z")
            .into_bytes();
        let forked_old = checkpoint_of(&prefix_fork);
        let summary = run(&cp, Some(2), &lines(&leaves)).unwrap();
        assert!(matches!(
            check_consistency(&forked_old, &cp, summary.root_at(forked_old.size()), &[]),
            Err(LogProblem::Fork { old_size: 2, .. })
        ));
    }
}
