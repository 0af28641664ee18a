//! Checking that the stored log agrees with itself: the start-up check and
//! the full verification.
//!
//! # Why two checks
//!
//! Start-up must be O(1) in the log's size (under a second at a million
//! entries), so it cannot re-hash every entry. It checks everything whose
//! cost does not grow with the log, plus a window of the most recent
//! entries ([`quick_check`]):
//!
//! 1. the stored checkpoint opens with the configured key and origin (done
//!    by the caller, before this module);
//! 2. the stored compact range has the checkpoint's size and root;
//! 3. the last stored entry is exactly entry `size - 1` (nothing missing at
//!    the end, nothing stored beyond the tree);
//! 4. the root recomputed from the stored perfect-subtree nodes is the
//!    checkpoint's root;
//! 5. for the last `window` entries (default [`DEFAULT_WINDOW`]): each entry's
//!    leaf hash is its stored leaf node, its `seq` is its key, its `prev` is
//!    the previous leaf hash, and every stored node built only from those
//!    leaves is the hash of its two stored children.
//!
//! That catches a crash that left the store inconsistent (which sled's
//! atomic batches should make impossible) and any change to the recent
//! entries, where an intruder covering fresh tracks would act. An entry
//! changed further back is caught by [`verify_all`], which recomputes
//! every leaf hash, the whole hash chain and every stored node from the
//! entries, and names the first entry that does not match. The service runs
//! it in the background after every start (`verify_on_start`) and stops
//! serving the moment it fails; reading an entry also re-hashes it against
//! its stored leaf, so a changed entry is never served as proven.
//!
//! This module only reads; it must never repair anything.

use custos_core::merkle::{leaf_hash, node_hash, root_at, CompactRange, Hash, NodeId};
use serde::Deserialize;

use crate::error::{ReadError, StoreError, TamperError};
use crate::layout;
use crate::store::Store;

/// Entries the start-up check re-hashes: the most recent 1024. At about
/// 2 µs per entry (one SHA-256, two lookups, a partial JSON parse) that is
/// a few milliseconds, whatever the log's size.
pub const DEFAULT_WINDOW: u64 = 1024;

/// The fields of an entry the checks read without parsing all of it.
#[derive(Deserialize)]
struct Head {
    seq: u64,
    #[serde(default)]
    prev: Option<Hash>,
}

fn tamper_read(e: ReadError) -> Result<TamperError, StoreError> {
    match e {
        ReadError::Tampered(t) | ReadError::Refused(t) => Ok(t),
        ReadError::Store(s) => Err(s),
        ReadError::OutOfRange(m) => Ok(TamperError::Tree(m)),
    }
}

/// The outcome of a check: the store failed, or the log is tampered with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// The store failed while checking.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The log does not agree with itself.
    #[error(transparent)]
    Tampered(#[from] TamperError),
}

impl From<ReadError> for CheckError {
    fn from(e: ReadError) -> Self {
        match tamper_read(e) {
            Ok(t) => CheckError::Tampered(t),
            Err(s) => CheckError::Store(s),
        }
    }
}

fn entry_error(index: u64, reason: impl Into<String>) -> CheckError {
    CheckError::Tampered(TamperError::Entry {
        index,
        reason: reason.into(),
    })
}

fn node_error(node: NodeId, reason: impl Into<String>) -> CheckError {
    CheckError::Tampered(TamperError::Node {
        node,
        first_entry: node.first_leaf(),
        reason: reason.into(),
    })
}

/// Check one entry's bytes: its key's seq, its leaf against `stored_leaf`,
/// its `prev` against `prev_leaf`. Returns its leaf hash.
fn check_entry(
    seq: u64,
    bytes: &[u8],
    stored_leaf: Option<Hash>,
    prev_leaf: Option<Hash>,
) -> Result<Hash, CheckError> {
    let leaf = leaf_hash(bytes);
    match stored_leaf {
        None => return Err(entry_error(seq, "its leaf node is missing from the tree")),
        Some(stored) if stored != leaf => {
            return Err(entry_error(
                seq,
                format!("its bytes hash to leaf {leaf}, but the tree holds leaf {stored}"),
            ))
        }
        Some(_) => {}
    }
    let head: Head = serde_json::from_slice(bytes)
        .map_err(|e| entry_error(seq, format!("it is not a custody entry: {e}")))?;
    if head.seq != seq {
        return Err(entry_error(
            seq,
            format!("it is stored as entry {seq} but says seq {}", head.seq),
        ));
    }
    if head.prev != prev_leaf {
        return Err(entry_error(
            seq,
            match (head.prev, prev_leaf) {
                (Some(p), Some(expected)) => {
                    format!(
                        "its prev {p} is not the leaf hash {expected} of entry {}",
                        seq - 1
                    )
                }
                (None, Some(_)) => "its prev is missing".to_owned(),
                (Some(_), None) => "entry 0 must have no prev".to_owned(),
                (None, None) => unreachable!("equal"),
            },
        ));
    }
    Ok(leaf)
}

/// The start-up check (see the module documentation, steps 2 to 5) of a
/// store whose signed checkpoint says `size` and `root`. Returns the leaf
/// hash of the last entry.
pub fn quick_check(
    store: &Store,
    range: &CompactRange,
    root: &Hash,
    window: u64,
) -> Result<Option<Hash>, CheckError> {
    let size = range.size();
    // Step 2.
    if range.root() != *root {
        return Err(TamperError::Tree(format!(
            "the stored tree state (size {size}, root {}) does not match the signed checkpoint's root {root}",
            range.root()
        ))
        .into());
    }
    // Step 3.
    let last = store.last_entry_seq()?;
    match (last, size) {
        (None, 0) => return Ok(None),
        (Some(l), s) if s > 0 && l == s - 1 => {}
        (Some(l), s) if l >= s => {
            return Err(entry_error(
                s,
                format!("entries {s}..={l} are stored but not in the signed tree of size {s}"),
            ))
        }
        (_, s) => {
            return Err(entry_error(
                s - 1,
                "it is missing, but the signed tree holds it",
            ))
        }
    }
    // Step 4.
    let from_nodes = root_at(&store.nodes(), size)?;
    if from_nodes != *root {
        return Err(TamperError::Tree(format!(
            "the stored tree nodes give root {from_nodes}, the signed checkpoint says {root}"
        ))
        .into());
    }
    // Step 5: leaves and the chain.
    let lo = size.saturating_sub(window);
    let mut prev = match lo {
        0 => None,
        _ => Some(
            store
                .node(NodeId::leaf(lo - 1))?
                .ok_or_else(|| node_error(NodeId::leaf(lo - 1), "the node is missing"))?,
        ),
    };
    for seq in lo..size {
        let bytes = store
            .entry(seq)?
            .ok_or_else(|| entry_error(seq, "it is missing, but the signed tree holds it"))?;
        let stored = store.node(NodeId::leaf(seq))?;
        prev = Some(check_entry(seq, &bytes, stored, prev)?);
    }
    // Step 5: interior nodes made only of the window's leaves.
    for level in 1..64u8 {
        let width = 1u64 << level;
        if width > size - lo {
            break;
        }
        let first = lo.div_ceil(width);
        let end = size / width;
        for index in first..end {
            let id = NodeId { level, index };
            let left = NodeId {
                level: level - 1,
                index: 2 * index,
            };
            let right = NodeId {
                level: level - 1,
                index: 2 * index + 1,
            };
            let get = |n: NodeId| -> Result<Hash, CheckError> {
                store
                    .node(n)?
                    .ok_or_else(|| node_error(n, "the node is missing"))
            };
            let expected = node_hash(&get(left)?, &get(right)?);
            if get(id)? != expected {
                return Err(node_error(id, "it is not the hash of its two children"));
            }
        }
    }
    Ok(prev)
}

/// The full verification: every entry of the tree of `size` leaves is
/// re-hashed, its chain link checked, every perfect-subtree node recomputed
/// and compared with the stored one, and the final root compared with
/// `root`. Reports the first entry (or node) that does not match.
pub fn verify_all(store: &Store, size: u64, root: &Hash) -> Result<(), CheckError> {
    let mut range = CompactRange::new();
    let mut prev: Option<Hash> = None;
    for row in store
        .tree()
        .range(layout::entry_key(0)..layout::entry_key(size))
    {
        let (key, bytes) = row.map_err(StoreError::from)?;
        let expected = range.size();
        let seq =
            layout::entry_seq(&key).ok_or_else(|| entry_error(expected, "malformed entry key"))?;
        if seq != expected {
            return Err(entry_error(
                expected,
                "it is missing, but the signed tree holds it",
            ));
        }
        let stored = store.node(NodeId::leaf(seq))?;
        let leaf = check_entry(seq, &bytes, stored, prev)?;
        for (id, hash) in range.append(leaf).into_iter().skip(1) {
            match store.node(id)? {
                Some(stored) if stored == hash => {}
                Some(_) => return Err(node_error(id, "it does not match the entries below it")),
                None => return Err(node_error(id, "the node is missing")),
            }
        }
        prev = Some(leaf);
    }
    if range.size() != size {
        return Err(entry_error(
            range.size(),
            "it is missing, but the signed tree holds it",
        ));
    }
    if range.root() != *root {
        return Err(TamperError::Tree(format!(
            "the entries give root {}, the signed checkpoint says {root}",
            range.root()
        ))
        .into());
    }
    Ok(())
}
