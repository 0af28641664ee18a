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
//!    leaves is the hash of its two stored children;
//! 6. every token row and dock-key row ([`check_tokens`]): a token row
//!    names its `token.created` entry (and, once revoked, its
//!    `token.revoked` entry), each entry is proven to be in the signed
//!    tree by an inclusion proof against the checkpoint's root, and the row
//!    says what the entry says (id, role, name, key, end, a check of the
//!    secret's hash); a dock-key row is its token's key. The cost grows
//!    with the number of tokens (a few reads each), not with the log.
//!
//! That catches a crash that left the store inconsistent (which sled's
//! atomic batches should make impossible) and any change to the recent
//! entries, where an intruder covering fresh tracks would act. An entry
//! changed further back is caught by [`verify_all`], which recomputes
//! every leaf hash, the whole hash chain and every stored node from the
//! entries, and names the first entry that does not match; it also
//! derives every token's state from the `token.created` and
//! `token.revoked` entries and compares the token rows with it (this
//! catches a revoked token whose row was set back, and rows written before
//! rows recorded their entries). The service runs
//! it in the background after every start (`verify_on_start`) and stops
//! serving the moment it fails; reading an entry also re-hashes it against
//! its stored leaf, so a changed entry is never served as proven.
//!
//! This module only reads; it must never repair anything.

use std::collections::BTreeMap;

use custos_core::entry::details::TokenRevoked;
use custos_core::entry::{actions, Details};
use custos_core::merkle::{
    inclusion_proof, leaf_hash, node_hash, root_at, verify_inclusion, CompactRange, Hash, NodeId,
};
use serde::Deserialize;
use serde_json::Value;

use crate::auth::{self, DockKeyRecord, TokenRecord, DOCK_KEYS, TOKENS};

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
    let mut tokens = DerivedTokens::default();
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
        tokens.add(seq, &bytes)?;
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
    tokens.compare(store)
}

// ---------------------------------------------------------------------------
// Tokens and dock keys

fn row_error(table: &str, key: &str, reason: impl Into<String>) -> CheckError {
    CheckError::Tampered(TamperError::Row {
        table: table.to_owned(),
        key: key.to_owned(),
        reason: reason.into(),
    })
}

/// Entry `seq`, proven to be leaf `seq` of the signed tree of `size`
/// leaves with root `root` (so that neither the entry nor its stored leaf
/// can have been changed), parsed as JSON.
fn proven_entry(store: &Store, seq: u64, size: u64, root: &Hash) -> Result<Value, CheckError> {
    if seq >= size {
        return Err(entry_error(
            seq,
            format!("a state row names it, but the signed tree has {size} entries"),
        ));
    }
    let bytes = store
        .entry(seq)?
        .ok_or_else(|| entry_error(seq, "it is missing, but the signed tree holds it"))?;
    let proof = inclusion_proof(&store.nodes(), seq, size).map_err(|e| match e {
        custos_core::merkle::ProofError::Source(r) => CheckError::from(r),
        other => entry_error(seq, other.to_string()),
    })?;
    verify_inclusion(&leaf_hash(&bytes), seq, size, &proof, root).map_err(|e| {
        entry_error(
            seq,
            format!("it is not the entry the signed tree holds: {e}"),
        )
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| entry_error(seq, format!("it is not a custody entry: {e}")))
}

/// What a token row must say, from its `token.created` entry `entry`.
fn compare_created(record: &TokenRecord, seq: u64, entry: &Value) -> Result<(), String> {
    let action = entry["action"].as_str().unwrap_or_default();
    if action != actions::TOKEN_CREATED {
        return Err(format!(
            "its action is {:?} but its token.created entry {seq} says {:?}",
            Some(actions::TOKEN_CREATED),
            Some(action)
        ));
    }
    let empty = serde_json::Map::new();
    let details = entry["details"].as_object().unwrap_or(&empty);
    let created = match Details::parse(action, details) {
        Ok(Details::TokenCreated(created)) => created,
        Ok(_) => unreachable!("token.created parses as TokenCreated"),
        Err(e) => return Err(format!("its token.created entry {seq} does not read: {e}")),
    };
    let checks: [(&str, Option<String>, Option<String>); 6] = [
        (
            "name",
            entry["subject"].as_str().map(str::to_owned),
            Some(record.name.clone()),
        ),
        ("id", Some(created.token_id), Some(record.id.clone())),
        (
            "role",
            Some(created.role),
            Some(record.role.as_str().to_owned()),
        ),
        ("key", created.key, record.key.clone()),
        (
            "further keys",
            Some(created.more_keys.join(" ")),
            Some(record.more_keys.join(" ")),
        ),
        (
            "expiry",
            created.expires_at,
            record.expires_at.map(|t| t.to_string()),
        ),
    ];
    for (what, logged, row) in checks {
        if logged != row {
            return Err(format!(
                "its {what} is {row:?} but its token.created entry {seq} says {logged:?}"
            ));
        }
    }
    // Entries written since rows record their entry carry the check of the
    // secret's hash; older ones do not, and their hash is not checked.
    if let Some(logged) = created.secret_check {
        if logged != record.secret_check() {
            return Err(format!(
                "its secret hash is not the one its token.created entry {seq} records"
            ));
        }
    }
    Ok(())
}

/// Whether `entry` is a `token.revoked` entry revoking token `id` of `name`.
fn revokes(entry: &Value, id: &str, name: &str) -> bool {
    let (Some(action), Some(details)) = (entry["action"].as_str(), entry["details"].as_object())
    else {
        return false;
    };
    entry["subject"].as_str() == Some(name)
        && matches!(
            Details::parse(action, details),
            Ok(Details::TokenRevoked(TokenRevoked { token_ids })) if token_ids.iter().any(|t| t == id)
        )
}

/// Step 6 of the start-up check (see the module documentation): every
/// token and dock-key row against the entries of the signed tree of `size`
/// leaves with root `root`.
pub fn check_tokens(store: &Store, size: u64, root: &Hash) -> Result<(), CheckError> {
    let mut rows: BTreeMap<String, TokenRecord> = BTreeMap::new();
    for row in store.table_scan(TOKENS, b"") {
        let (key, value) = row?;
        let key = String::from_utf8_lossy(&key).into_owned();
        let record: TokenRecord = serde_json::from_slice(&value)
            .map_err(|e| row_error(TOKENS, &key, format!("it is not a token row: {e}")))?;
        if record.id != key {
            return Err(row_error(TOKENS, &key, format!("it says id {}", record.id)));
        }
        if let Some(seq) = record.created_seq {
            let entry = proven_entry(store, seq, size, root)?;
            compare_created(&record, seq, &entry).map_err(|why| row_error(TOKENS, &key, why))?;
            if entry["details"]["secret_check"].is_null() {
                return Err(row_error(
                    TOKENS,
                    &key,
                    format!("its token.created entry {seq} records no check of its secret's hash"),
                ));
            }
        }
        match (record.revoked, record.revoked_seq) {
            (false, None) => {}
            (true, Some(seq)) => {
                let entry = proven_entry(store, seq, size, root)?;
                if !revokes(&entry, &record.id, &record.name) {
                    return Err(row_error(
                        TOKENS,
                        &key,
                        format!(
                            "entry {seq}, which it names as its revocation, does not revoke it"
                        ),
                    ));
                }
            }
            (true, None) => {
                return Err(row_error(
                    TOKENS,
                    &key,
                    "it is revoked, but names no token.revoked entry",
                ))
            }
            (false, Some(seq)) => {
                return Err(row_error(
                    TOKENS,
                    &key,
                    format!("it names token.revoked entry {seq} but is not revoked"),
                ))
            }
        }
        rows.insert(key, record);
    }
    for row in store.table_scan(DOCK_KEYS, b"") {
        let (key, value) = row?;
        let key = String::from_utf8_lossy(&key).into_owned();
        let record: DockKeyRecord = serde_json::from_slice(&value)
            .map_err(|e| row_error(DOCK_KEYS, &key, format!("it is not a dock-key row: {e}")))?;
        let key_id = record.key.split('+').take(2).collect::<Vec<_>>().join("+");
        let token = rows.get(&record.token_id);
        let agrees = key_id == key
            && token.is_some_and(|t| {
                (t.key.as_deref() == Some(record.key.as_str()) || t.more_keys.contains(&record.key))
                    && t.name == record.dock
            });
        if !agrees {
            return Err(row_error(
                DOCK_KEYS,
                &key,
                format!(
                    "it registers key {key_id} to dock {:?} with token {}, which does not hold that key",
                    record.dock, record.token_id
                ),
            ));
        }
    }
    Ok(())
}

/// Token state derived from the log's entries, for [`verify_all`].
#[derive(Default)]
struct DerivedTokens {
    /// token id → (its token.created entry, whether revoked).
    tokens: BTreeMap<String, (u64, Value, bool)>,
}

impl DerivedTokens {
    /// Take note of entry `seq` if it creates or revokes tokens.
    fn add(&mut self, seq: u64, bytes: &[u8]) -> Result<(), CheckError> {
        // Entries are RFC 8785 canonical JSON, whose keys are sorted:
        // `action` comes first. Only token entries are parsed in full.
        const MARK: &[u8] = b"{\"action\":\"token.";
        if !bytes.starts_with(MARK) {
            return Ok(());
        }
        let entry: Value = serde_json::from_slice(bytes)
            .map_err(|e| entry_error(seq, format!("it is not a custody entry: {e}")))?;
        match entry["action"].as_str() {
            Some(actions::TOKEN_CREATED) => {
                if let Some(id) = entry["details"]["token_id"].as_str() {
                    self.tokens
                        .insert(id.to_owned(), (seq, entry.clone(), false));
                }
            }
            Some(actions::TOKEN_REVOKED) => {
                let name = entry["subject"].as_str().unwrap_or_default();
                for id in entry["details"]["token_ids"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    if let Some(t) = self.tokens.get_mut(id) {
                        if t.1["subject"].as_str() == Some(name) {
                            t.2 = true;
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The token rows must be exactly the derived tokens.
    fn compare(self, store: &Store) -> Result<(), CheckError> {
        let mut seen = 0usize;
        for record in auth::list_tokens(store)? {
            let Some((seq, entry, revoked)) = self.tokens.get(&record.id) else {
                return Err(row_error(
                    TOKENS,
                    &record.id,
                    "no token.created entry made it",
                ));
            };
            compare_created(&record, *seq, entry)
                .map_err(|why| row_error(TOKENS, &record.id, why))?;
            if record.created_seq.is_some_and(|s| s != *seq) {
                return Err(row_error(
                    TOKENS,
                    &record.id,
                    format!(
                        "it names entry {:?}, but entry {seq} created it",
                        record.created_seq
                    ),
                ));
            }
            if record.revoked != *revoked {
                return Err(row_error(
                    TOKENS,
                    &record.id,
                    if *revoked {
                        "a token.revoked entry revoked it, but its row is in force"
                    } else {
                        "its row is revoked, but no token.revoked entry revoked it"
                    },
                ));
            }
            seen += 1;
        }
        if seen != self.tokens.len() {
            let missing = self
                .tokens
                .iter()
                .find(|(id, _)| {
                    store
                        .table_get(TOKENS, id.as_bytes())
                        .ok()
                        .flatten()
                        .is_none()
                })
                .map(|(id, _)| id.clone())
                .unwrap_or_default();
            return Err(row_error(
                TOKENS,
                &missing,
                "the log created it, but its row is missing",
            ));
        }
        Ok(())
    }
}
