//! The custody log's Merkle tree: RFC 6962 / RFC 9162 §2.1 hashing, inclusion
//! and consistency proofs, and a compact range for O(log n) appends.
//!
//! Every ledger entry is a leaf. The tree over entries `D[0..n)` is the one of
//! RFC 9162 §2.1.1 ("Definition of the Merkle Tree"):
//!
//! - leaf hash `SHA-256(0x00 || entry)` ([`leaf_hash`]),
//! - interior node `SHA-256(0x01 || left || right)` ([`node_hash`]),
//! - the empty tree's root `SHA-256("")` ([`empty_root`]),
//! - for `n > 1`, `MTH(D[n]) = node(MTH(D[0:k]), MTH(D[k:n]))` with `k` the
//!   largest power of two smaller than `n` ([`root`]).
//!
//! # How a ledger uses this module
//!
//! The tree is made of *perfect subtrees*: the node at `(level, index)` covers
//! leaves `[index·2^level, (index+1)·2^level)` ([`NodeId`]). A perfect subtree's
//! hash never changes once its last leaf exists, so a ledger can store it for
//! good. [`CompactRange`] is the append side: it keeps only the O(log n)
//! roots of the perfect subtrees along the right edge (the *frontier*), and
//! [`CompactRange::append`] reports every perfect-subtree node an append
//! completes, so the ledger can persist them next to the entry. The read side
//! takes anything that can look such nodes up ([`NodeSource`]): with every
//! completed node stored, [`inclusion_proof`], [`consistency_proof`] and
//! [`root_at`] each cost O(log n) lookups, whatever the log's size.
//! [`MemoryTree`] is that pattern in memory, for tests and small tools.
//!
//! Verification ([`verify_inclusion`], [`verify_consistency`]) follows the
//! algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2 step by step, so an auditor can
//! hold the code against the RFC.
//!
//! # What this module must never do
//!
//! It never does I/O (stored nodes come through [`NodeSource`]), never trusts
//! a proof's length or shape without checking it against the sizes, and never
//! compares hashes with a short-circuiting comparison: equality of
//! [`Hash`](struct@Hash) values is constant-time.
//!
//! Leaf indexes and tree sizes are plain `u64`: an index `i` names the
//! `i`-th entry (its ledger `seq`), a size `n` counts entries, and every
//! function that takes both requires `i < n`. They travel as JSON numbers in the
//! `/v1/proof/*` API, so a newtype would only be unwrapped at every edge.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// Length in bytes of every hash in the tree (SHA-256).
pub const HASH_LEN: usize = 32;

/// Domain-separation prefix of a leaf hash (RFC 9162 §2.1.1).
const LEAF_PREFIX: u8 = 0x00;
/// Domain-separation prefix of an interior node hash (RFC 9162 §2.1.1).
const NODE_PREFIX: u8 = 0x01;

/// The largest tree size this module accepts from serialised state: `2^63`.
///
/// No log reaches it; the bound only guarantees that appending to a state read
/// back from bytes can never overflow a `u64`.
pub const MAX_TREE_SIZE: u64 = 1 << 63;

// ---------------------------------------------------------------------------
// Hash
// ---------------------------------------------------------------------------

/// A 32-byte tree hash: a leaf hash, an interior node or a root.
///
/// Shown and parsed as standard padded base64 (RFC 4648 §4), the form used in
/// checkpoints, in entries' `prev` field and in the proof API; serialised by
/// serde as that string. Equality is constant-time.
#[derive(Clone, Copy)]
pub struct Hash([u8; HASH_LEN]);

/// Why a string or byte slice is not a [`Hash`](struct@Hash).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HashParseError {
    /// The text is not standard padded base64.
    #[error("hash {0:?} is not valid standard base64")]
    BadBase64(String),
    /// The text is not 64 hex digits.
    #[error("hash {0:?} is not 64 hex digits")]
    BadHex(String),
    /// The bytes are not 32 long.
    #[error("hash is {0} bytes long; a SHA-256 tree hash is 32")]
    BadLength(usize),
}

impl Hash {
    /// A hash from its 32 bytes.
    pub const fn from_bytes(bytes: [u8; HASH_LEN]) -> Self {
        Hash(bytes)
    }

    /// The 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; HASH_LEN] {
        &self.0
    }

    /// The 32 bytes, by value.
    pub const fn to_bytes(self) -> [u8; HASH_LEN] {
        self.0
    }

    /// Lower-case hex, as RFC 6962 test vectors and `sha256sum` print hashes.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parse 64 hex digits (either case).
    pub fn from_hex(text: &str) -> Result<Self, HashParseError> {
        let mut out = [0u8; HASH_LEN];
        hex::decode_to_slice(text, &mut out)
            .map_err(|_| HashParseError::BadHex(text.to_owned()))?;
        Ok(Hash(out))
    }
}

impl PartialEq for Hash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for Hash {}

impl std::hash::Hash for Hash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl AsRef<[u8]> for Hash {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<[u8; HASH_LEN]> for Hash {
    fn from(bytes: [u8; HASH_LEN]) -> Self {
        Hash(bytes)
    }
}

impl TryFrom<&[u8]> for Hash {
    type Error = HashParseError;
    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        let arr: [u8; HASH_LEN] = bytes
            .try_into()
            .map_err(|_| HashParseError::BadLength(bytes.len()))?;
        Ok(Hash(arr))
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&B64.encode(self.0))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({self})")
    }
}

impl FromStr for Hash {
    type Err = HashParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // The STANDARD engine insists on padding and on zero trailing bits,
        // so each hash has exactly one accepted spelling.
        let bytes = B64
            .decode(s)
            .map_err(|_| HashParseError::BadBase64(s.to_owned()))?;
        Hash::try_from(bytes.as_slice())
    }
}

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------
// Hashing (RFC 9162 §2.1.1)
// ---------------------------------------------------------------------------

/// The leaf hash of an entry: `SHA-256(0x00 || entry)` (RFC 9162 §2.1.1).
///
/// `entry` is the entry's exact bytes, as `/v1/entries` serves them.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([LEAF_PREFIX]);
    h.update(entry);
    Hash(h.finalize().into())
}

/// An interior node: `SHA-256(0x01 || left || right)` (RFC 9162 §2.1.1).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([NODE_PREFIX]);
    h.update(left.0);
    h.update(right.0);
    Hash(h.finalize().into())
}

/// The root of the empty tree: `SHA-256("")` (RFC 9162 §2.1.1).
pub fn empty_root() -> Hash {
    Hash(Sha256::digest([]).into())
}

/// The largest power of two strictly smaller than `n`; `n` must be at least 2.
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// The Merkle Tree Hash `MTH(D[n])` of a list of leaf hashes (RFC 9162
/// §2.1.1), computed in one pass with O(log n) memory.
pub fn root(leaf_hashes: &[Hash]) -> Hash {
    let mut range = CompactRange::new();
    for leaf in leaf_hashes {
        range.push(*leaf);
    }
    range.root()
}

// ---------------------------------------------------------------------------
// Stored nodes
// ---------------------------------------------------------------------------

/// A perfect subtree: the node at `level` (0 = a leaf) and position `index`
/// within that level, covering leaves `[index·2^level, (index+1)·2^level)`.
///
/// Its hash is fixed as soon as the tree holds its last leaf, so a ledger can
/// store it under [`NodeId::to_key`] and never touch it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Height above the leaves: 0 for a leaf, 1 for a pair of leaves, ...
    /// At most 63.
    pub level: u8,
    /// Position among the nodes of that level, from the left.
    pub index: u64,
}

impl NodeId {
    /// The node of leaf `index`.
    pub const fn leaf(index: u64) -> Self {
        NodeId { level: 0, index }
    }

    /// The first leaf the subtree covers.
    pub const fn first_leaf(&self) -> u64 {
        self.index << self.level
    }

    /// How many leaves the subtree covers: `2^level`.
    pub const fn width(&self) -> u64 {
        1 << self.level
    }

    /// A 9-byte key, `level || index` (big-endian), that sorts nodes by level
    /// then position: suitable as a key in an ordered store.
    pub fn to_key(&self) -> [u8; 9] {
        let mut key = [0u8; 9];
        key[0] = self.level;
        key[1..].copy_from_slice(&self.index.to_be_bytes());
        key
    }

    /// Read back a key written by [`NodeId::to_key`]; `None` if it is not 9
    /// bytes or names a level above 63.
    pub fn from_key(key: &[u8]) -> Option<Self> {
        let key: &[u8; 9] = key.try_into().ok()?;
        if key[0] > 63 {
            return None;
        }
        let mut index = [0u8; 8];
        index.copy_from_slice(&key[1..]);
        Some(NodeId {
            level: key[0],
            index: u64::from_be_bytes(index),
        })
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node (level {}, index {})", self.level, self.index)
    }
}

/// Anything that can give the hash of a completed perfect subtree: the
/// ledger's node store, a [`MemoryTree`], or a closure
/// `Fn(NodeId) -> Result<Hash, E>`.
///
/// The proof functions only ask for nodes whose last leaf is below the tree
/// size they were given, and at most O(log n) of them per call.
pub trait NodeSource {
    /// Why a lookup failed (a storage error, a missing node).
    type Error;

    /// The hash of the perfect subtree `id` (for level 0, the leaf hash).
    fn node(&self, id: NodeId) -> Result<Hash, Self::Error>;
}

impl<F, E> NodeSource for F
where
    F: Fn(NodeId) -> Result<Hash, E>,
{
    type Error = E;
    fn node(&self, id: NodeId) -> Result<Hash, E> {
        self(id)
    }
}

/// A [`NodeSource`] was asked for a node it does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the tree holds no {0}: it is beyond the tree's size")]
pub struct MissingNode(pub NodeId);

/// Why a proof or a historical root could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError<E> {
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is not in a tree of size {size}")]
    IndexOutOfRange {
        /// The requested leaf.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// A consistency proof was asked from a larger tree to a smaller one.
    #[error("no consistency proof from size {old_size} to the smaller size {new_size}")]
    OldSizeLarger {
        /// The first (older) size.
        old_size: u64,
        /// The second (newer) size.
        new_size: u64,
    },
    /// The node source failed.
    #[error("reading a tree node failed: {0}")]
    Source(#[source] E),
}

/// `MTH(D[lo:hi])`, from perfect subtrees of the source; `lo < hi`.
///
/// The ranges the RFC's recursions produce start at a multiple of the
/// largest power of two not above their width, so this touches one node per
/// set bit of `hi - lo`: O(log n) lookups.
fn subtree_root<S: NodeSource + ?Sized>(src: &S, lo: u64, hi: u64) -> Result<Hash, S::Error> {
    let n = hi - lo;
    if n.is_power_of_two() && lo & (n - 1) == 0 {
        let level = n.trailing_zeros() as u8;
        return src.node(NodeId {
            level,
            index: lo >> level,
        });
    }
    let k = split_point(n);
    let left = subtree_root(src, lo, lo + k)?;
    let right = subtree_root(src, lo + k, hi)?;
    Ok(node_hash(&left, &right))
}

/// The root of the tree's first `size` leaves, `MTH(D[0:size])`, from stored
/// nodes: O(log size) lookups. Size 0 gives [`empty_root`].
pub fn root_at<S: NodeSource + ?Sized>(src: &S, size: u64) -> Result<Hash, S::Error> {
    if size == 0 {
        return Ok(empty_root());
    }
    subtree_root(src, 0, size)
}

/// The inclusion proof (audit path) of leaf `index` in the tree of size
/// `size`: `PATH(m, D[n])` of RFC 9162 §2.1.3.1, ordered from the leaf's
/// sibling up to the root's child. O(log size) node lookups.
pub fn inclusion_proof<S: NodeSource + ?Sized>(
    src: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofError<S::Error>> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut proof = Vec::with_capacity(64);
    path(src, index, 0, size, &mut proof).map_err(ProofError::Source)?;
    Ok(proof)
}

/// `PATH(m, D[lo:hi])` with `m` an absolute index in `[lo, hi)`; appends the
/// path to `out` in the RFC's order (deepest sibling first).
fn path<S: NodeSource + ?Sized>(
    src: &S,
    m: u64,
    lo: u64,
    hi: u64,
    out: &mut Vec<Hash>,
) -> Result<(), S::Error> {
    let n = hi - lo;
    if n == 1 {
        return Ok(());
    }
    let k = split_point(n);
    if m - lo < k {
        path(src, m, lo, lo + k, out)?;
        out.push(subtree_root(src, lo + k, hi)?);
    } else {
        path(src, m, lo + k, hi, out)?;
        out.push(subtree_root(src, lo, lo + k)?);
    }
    Ok(())
}

/// The consistency proof from the tree of size `old_size` to the tree of size
/// `new_size`: `PROOF(m, D[n])` of RFC 9162 §2.1.4.1. Empty when the sizes
/// are equal or `old_size` is 0. O(log new_size) node lookups.
pub fn consistency_proof<S: NodeSource + ?Sized>(
    src: &S,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, ProofError<S::Error>> {
    if old_size > new_size {
        return Err(ProofError::OldSizeLarger { old_size, new_size });
    }
    let mut proof = Vec::with_capacity(64);
    if old_size > 0 && old_size < new_size {
        subproof(src, old_size, 0, new_size, true, &mut proof).map_err(ProofError::Source)?;
    }
    Ok(proof)
}

/// `SUBPROOF(m, D[lo:hi], b)` of RFC 9162 §2.1.4.1, with `m` the absolute
/// old size (`lo < m <= hi`).
fn subproof<S: NodeSource + ?Sized>(
    src: &S,
    m: u64,
    lo: u64,
    hi: u64,
    whole_old_tree: bool,
    out: &mut Vec<Hash>,
) -> Result<(), S::Error> {
    if m == hi {
        // The old tree's subtree is this whole range: the verifier knows its
        // hash already if it is the old root (b = true), else it is sent.
        if !whole_old_tree {
            out.push(subtree_root(src, lo, hi)?);
        }
        return Ok(());
    }
    let k = split_point(hi - lo);
    if m - lo <= k {
        subproof(src, m, lo, lo + k, whole_old_tree, out)?;
        out.push(subtree_root(src, lo + k, hi)?);
    } else {
        subproof(src, m, lo + k, hi, false, out)?;
        out.push(subtree_root(src, lo, lo + k)?);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Verification (RFC 9162 §2.1.3.2 and §2.1.4.2)
// ---------------------------------------------------------------------------

/// Why an inclusion proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InclusionError {
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is not in a tree of size {size}")]
    IndexOutOfRange {
        /// The claimed leaf index.
        index: u64,
        /// The claimed tree size.
        size: u64,
    },
    /// The proof has the wrong number of hashes for the index and size.
    #[error("inclusion proof of leaf {index} in a tree of size {size} must hold {expected} hashes, it holds {got}")]
    WrongProofLength {
        /// The claimed leaf index.
        index: u64,
        /// The claimed tree size.
        size: u64,
        /// The length RFC 9162 §2.1.3.1 gives.
        expected: usize,
        /// The proof's length.
        got: usize,
    },
    /// The root computed from the leaf and the proof is not the expected root.
    #[error(
        "inclusion proof of leaf {index} does not lead to the root of the tree of size {size}"
    )]
    RootMismatch {
        /// The claimed leaf index.
        index: u64,
        /// The claimed tree size.
        size: u64,
    },
}

/// Why a consistency proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConsistencyError {
    /// The old size is larger than the new size.
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    OldSizeLarger {
        /// The claimed old size.
        old_size: u64,
        /// The claimed new size.
        new_size: u64,
    },
    /// The proof has the wrong number of hashes for the two sizes.
    #[error("consistency proof from size {old_size} to {new_size} must hold {expected} hashes, it holds {got}")]
    WrongProofLength {
        /// The claimed old size.
        old_size: u64,
        /// The claimed new size.
        new_size: u64,
        /// The length RFC 9162 §2.1.4.1 gives.
        expected: usize,
        /// The proof's length.
        got: usize,
    },
    /// The proof does not reproduce the old root.
    #[error(
        "consistency proof from size {old_size} to {new_size} does not reproduce the old root"
    )]
    OldRootMismatch {
        /// The claimed old size.
        old_size: u64,
        /// The claimed new size.
        new_size: u64,
    },
    /// The proof does not reproduce the new root.
    #[error(
        "consistency proof from size {old_size} to {new_size} does not reproduce the new root"
    )]
    NewRootMismatch {
        /// The claimed old size.
        old_size: u64,
        /// The claimed new size.
        new_size: u64,
    },
}

/// How many hashes the inclusion proof of `index` in a tree of `size` holds
/// (`index < size`): the number of steps of the RFC 9162 §2.1.3.2 loop.
pub fn inclusion_proof_len(index: u64, size: u64) -> usize {
    debug_assert!(index < size);
    let (mut fnode, mut snode) = (index, size - 1);
    let mut len = 0;
    while snode != 0 {
        len += 1;
        if fnode & 1 == 0 && fnode == snode {
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        }
        fnode >>= 1;
        snode >>= 1;
    }
    len
}

/// How many hashes the consistency proof from `old_size` to `new_size` holds
/// (`0 < old_size < new_size`), following the RFC 9162 §2.1.4.2 loop.
pub fn consistency_proof_len(old_size: u64, new_size: u64) -> usize {
    debug_assert!(0 < old_size && old_size < new_size);
    // The seed is sent unless the old tree is a perfect subtree (step 2).
    let mut len = usize::from(!old_size.is_power_of_two());
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    while snode != 0 {
        len += 1;
        if fnode & 1 == 1 || fnode == snode {
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        }
        fnode >>= 1;
        snode >>= 1;
    }
    len
}

/// Verify that `leaf` is leaf `index` of the tree of size `size` whose root is
/// `root`, by the algorithm of RFC 9162 §2.1.3.2.
///
/// The tree size is bound to the root only by whoever vouches for the root
/// (a signed checkpoint): check the two together.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), InclusionError> {
    // Step 1.
    if index >= size {
        return Err(InclusionError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_len(index, size);
    if proof.len() != expected {
        return Err(InclusionError::WrongProofLength {
            index,
            size,
            expected,
            got: proof.len(),
        });
    }
    // Steps 2 and 3.
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    // Step 4.
    for p in proof {
        // 4a: cannot happen after the length check, kept as the RFC writes it.
        if snode == 0 {
            return Err(InclusionError::WrongProofLength {
                index,
                size,
                expected,
                got: proof.len(),
            });
        }
        // 4b.
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        // 4c.
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 5.
    if snode == 0 && r == *root {
        Ok(())
    } else {
        Err(InclusionError::RootMismatch { index, size })
    }
}

/// Verify that the tree of size `old_size` with root `old_root` is a prefix of
/// the tree of size `new_size` with root `new_root`, by the algorithm of
/// RFC 9162 §2.1.4.2.
///
/// Two edge cases the RFC leaves to the caller: equal sizes need an empty
/// proof and equal roots; an old size of 0 needs an empty proof and the
/// [`empty_root`] as old root (every tree extends the empty one).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    proof: &[Hash],
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), ConsistencyError> {
    let wrong_len = |expected: usize| ConsistencyError::WrongProofLength {
        old_size,
        new_size,
        expected,
        got: proof.len(),
    };
    if old_size > new_size {
        return Err(ConsistencyError::OldSizeLarger { old_size, new_size });
    }
    if old_size == new_size || old_size == 0 {
        if !proof.is_empty() {
            return Err(wrong_len(0));
        }
        if old_size == 0 && *old_root != empty_root() {
            return Err(ConsistencyError::OldRootMismatch { old_size, new_size });
        }
        if old_size == new_size && old_root != new_root {
            return Err(ConsistencyError::NewRootMismatch { old_size, new_size });
        }
        return Ok(());
    }
    let expected = consistency_proof_len(old_size, new_size);
    // Step 1 (an empty path fails) is part of this check: expected >= 1.
    if proof.len() != expected {
        return Err(wrong_len(expected));
    }
    // Step 2: a perfect old tree is its own first path element.
    let (seed, rest) = if old_size.is_power_of_two() {
        (*old_root, proof)
    } else {
        (proof[0], &proof[1..])
    };
    // Step 3.
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    // Step 4.
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 5.
    let (mut fr, mut sr) = (seed, seed);
    // Step 6.
    for c in rest {
        // 6a: cannot happen after the length check, kept as the RFC writes it.
        if snode == 0 {
            return Err(wrong_len(expected));
        }
        // 6b.
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        // 6c.
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 7.
    if snode != 0 {
        return Err(wrong_len(expected));
    }
    if fr != *old_root {
        return Err(ConsistencyError::OldRootMismatch { old_size, new_size });
    }
    if sr != *new_root {
        return Err(ConsistencyError::NewRootMismatch { old_size, new_size });
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Compact range
// ---------------------------------------------------------------------------

/// The append side of the tree: its size and the roots of the perfect
/// subtrees along its right edge, largest first (one per set bit of the size).
///
/// That is all an append needs, and all the root needs: O(log n) hashes, which
/// the ledger persists (as [`CompactRange::to_bytes`] or through serde) to
/// restart in O(1) instead of re-reading every entry.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct CompactRange {
    // INVARIANT: size <= MAX_TREE_SIZE and frontier.len() == size.count_ones();
    // frontier[i] is the root of the i-th perfect subtree of the size's
    // binary decomposition, from the left.
    size: u64,
    frontier: Vec<Hash>,
}

/// Why bytes or a serialised value are not a [`CompactRange`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompactRangeError {
    /// Fewer than the 8 bytes of the size.
    #[error("compact range is {0} bytes long; it needs at least the 8-byte tree size")]
    Truncated(usize),
    /// The size exceeds [`MAX_TREE_SIZE`].
    #[error("compact range claims tree size {0}, above the maximum 2^63")]
    TooLarge(u64),
    /// The number of hashes does not match the size.
    #[error("a tree of size {size} has {expected} frontier hashes, the compact range holds {got}")]
    WrongHashCount {
        /// The stored size.
        size: u64,
        /// `size.count_ones()`.
        expected: usize,
        /// What was found (for bytes: whole hashes, rounded down).
        got: usize,
    },
    /// The bytes after the size are not a whole number of hashes.
    #[error("compact range has {0} trailing bytes that are not a whole hash")]
    TrailingBytes(usize),
}

impl fmt::Debug for CompactRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompactRange")
            .field("size", &self.size)
            .field("frontier", &self.frontier)
            .finish()
    }
}

impl CompactRange {
    /// The empty tree.
    pub fn new() -> Self {
        CompactRange::default()
    }

    /// How many leaves the tree holds.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The tree's root, `MTH(D[0:size])`; [`empty_root`] when empty.
    pub fn root(&self) -> Hash {
        let mut iter = self.frontier.iter().rev();
        let Some(last) = iter.next() else {
            return empty_root();
        };
        iter.fold(*last, |right, left| node_hash(left, &right))
    }

    /// The frontier: each perfect subtree root along the right edge with its
    /// [`NodeId`], largest (leftmost) first.
    pub fn frontier(&self) -> Vec<(NodeId, Hash)> {
        frontier_ids(self.size)
            .into_iter()
            .zip(self.frontier.iter().copied())
            .collect()
    }

    /// Append the leaf with hash `leaf` (see [`leaf_hash`]) and return every
    /// perfect-subtree node this append completed, lowest level first: the
    /// leaf itself at `(0, old size)`, then each new interior node. A ledger
    /// that stores them all can serve any proof in O(log n) lookups.
    pub fn append(&mut self, leaf: Hash) -> Vec<(NodeId, Hash)> {
        let mut created = Vec::with_capacity(1 + self.size.trailing_ones() as usize);
        let index = self.size;
        created.push((NodeId::leaf(index), leaf));
        let mut hash = leaf;
        let mut level = 0u8;
        // Each set low bit of the old size is a perfect subtree of that
        // level ending right before the new leaf: merge them bottom up.
        while (index >> level) & 1 == 1 {
            // INVARIANT: the frontier holds one hash per set bit of the size,
            // so there is one to pop for every set bit walked here.
            let left = self
                .frontier
                .pop()
                .expect("INVARIANT: frontier has one hash per set bit of size");
            hash = node_hash(&left, &hash);
            level += 1;
            created.push((
                NodeId {
                    level,
                    index: index >> level,
                },
                hash,
            ));
        }
        self.frontier.push(hash);
        // INVARIANT: sizes are capped at MAX_TREE_SIZE = 2^63 on the way in and
        // a log cannot append 2^63 entries, so this cannot overflow.
        self.size += 1;
        created
    }

    /// Append without reporting the created nodes.
    pub fn push(&mut self, leaf: Hash) {
        self.append(leaf);
    }

    /// Rebuild the compact range of the tree's first `size` leaves from stored
    /// nodes: one lookup per set bit of `size`.
    pub fn from_source<S: NodeSource + ?Sized>(src: &S, size: u64) -> Result<Self, S::Error> {
        let mut frontier = Vec::with_capacity(size.count_ones() as usize);
        for id in frontier_ids(size) {
            frontier.push(src.node(id)?);
        }
        Ok(CompactRange { size, frontier })
    }

    /// Build from a size and its frontier hashes (largest subtree first), as
    /// [`CompactRange::frontier`] lists them.
    pub fn from_parts(size: u64, frontier: Vec<Hash>) -> Result<Self, CompactRangeError> {
        if size > MAX_TREE_SIZE {
            return Err(CompactRangeError::TooLarge(size));
        }
        let expected = size.count_ones() as usize;
        if frontier.len() != expected {
            return Err(CompactRangeError::WrongHashCount {
                size,
                expected,
                got: frontier.len(),
            });
        }
        Ok(CompactRange { size, frontier })
    }

    /// The persistent form: the size as 8 big-endian bytes, then the frontier
    /// hashes (32 bytes each, largest subtree first).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + HASH_LEN * self.frontier.len());
        out.extend_from_slice(&self.size.to_be_bytes());
        for h in &self.frontier {
            out.extend_from_slice(&h.0);
        }
        out
    }

    /// Read back [`CompactRange::to_bytes`], checking the hash count.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CompactRangeError> {
        let Some((size, rest)) = bytes.split_first_chunk::<8>() else {
            return Err(CompactRangeError::Truncated(bytes.len()));
        };
        let size = u64::from_be_bytes(*size);
        if size > MAX_TREE_SIZE {
            return Err(CompactRangeError::TooLarge(size));
        }
        if rest.len() % HASH_LEN != 0 {
            return Err(CompactRangeError::TrailingBytes(rest.len() % HASH_LEN));
        }
        let frontier = rest
            .chunks_exact(HASH_LEN)
            .map(|c| {
                let mut h = [0u8; HASH_LEN];
                h.copy_from_slice(c);
                Hash(h)
            })
            .collect();
        CompactRange::from_parts(size, frontier)
    }
}

/// The [`NodeId`]s of the frontier of a tree of `size` leaves, largest first.
pub fn frontier_ids(size: u64) -> Vec<NodeId> {
    let mut ids = Vec::with_capacity(size.count_ones() as usize);
    let mut start = 0u64;
    for level in (0..64u8).rev() {
        if (size >> level) & 1 == 1 {
            ids.push(NodeId {
                level,
                index: start >> level,
            });
            start += 1 << level;
        }
    }
    ids
}

/// The serde form of a [`CompactRange`]: `{"size": n, "frontier": [base64...]}`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompactRangeRepr {
    size: u64,
    frontier: Vec<Hash>,
}

impl Serialize for CompactRange {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        CompactRangeRepr {
            size: self.size,
            frontier: self.frontier.clone(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for CompactRange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let repr = CompactRangeRepr::deserialize(deserializer)?;
        CompactRange::from_parts(repr.size, repr.frontier).map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------
// In-memory tree
// ---------------------------------------------------------------------------

/// A whole tree in memory: every perfect-subtree node, stored as a ledger
/// would store them from [`CompactRange::append`]. For tests, the offline
/// verifier and other small trees; about 64 bytes per leaf.
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    /// `levels[l][i]` is the node `(l, i)`.
    levels: Vec<Vec<Hash>>,
    range: CompactRange,
}

impl MemoryTree {
    /// An empty tree.
    pub fn new() -> Self {
        MemoryTree::default()
    }

    /// A tree over these leaf hashes.
    pub fn from_leaves<'a>(leaves: impl IntoIterator<Item = &'a Hash>) -> Self {
        let mut tree = MemoryTree::new();
        for leaf in leaves {
            tree.push(*leaf);
        }
        tree
    }

    /// Append a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        for (id, hash) in self.range.append(leaf) {
            let level = usize::from(id.level);
            if self.levels.len() <= level {
                self.levels.resize_with(level + 1, Vec::new);
            }
            debug_assert_eq!(self.levels[level].len() as u64, id.index);
            self.levels[level].push(hash);
        }
    }

    /// How many leaves the tree holds.
    pub fn size(&self) -> u64 {
        self.range.size()
    }

    /// The current root.
    pub fn root(&self) -> Hash {
        self.range.root()
    }

    /// The compact range of the whole tree.
    pub fn compact_range(&self) -> &CompactRange {
        &self.range
    }

    /// The hash of leaf `index`, if the tree holds it.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.node(NodeId::leaf(index)).ok()
    }
}

impl NodeSource for MemoryTree {
    type Error = MissingNode;
    fn node(&self, id: NodeId) -> Result<Hash, MissingNode> {
        usize::try_from(id.index)
            .ok()
            .and_then(|i| self.levels.get(usize::from(id.level))?.get(i))
            .copied()
            .ok_or(MissingNode(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_point_is_largest_smaller_power_of_two() {
        for (n, k) in [
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 4),
            (8, 4),
            (9, 8),
            (1 << 40, 1 << 39),
        ] {
            assert_eq!(split_point(n), k, "n = {n}");
        }
    }

    #[test]
    fn frontier_ids_cover_the_tree_left_to_right() {
        let ids = frontier_ids(13); // 8 + 4 + 1
        assert_eq!(
            ids,
            vec![
                NodeId { level: 3, index: 0 },
                NodeId { level: 2, index: 2 },
                NodeId {
                    level: 0,
                    index: 12
                },
            ]
        );
        assert!(frontier_ids(0).is_empty());
    }

    #[test]
    fn node_key_round_trip_and_order() {
        let a = NodeId {
            level: 1,
            index: 300,
        };
        let b = NodeId { level: 2, index: 0 };
        assert_eq!(NodeId::from_key(&a.to_key()), Some(a));
        assert!(a.to_key() < b.to_key());
        assert_eq!(NodeId::from_key(&[64, 0, 0, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(NodeId::from_key(&[1, 2]), None);
    }

    #[test]
    fn hash_text_forms() {
        let h = leaf_hash(b"");
        let text = h.to_string();
        assert_eq!(text.parse::<Hash>().unwrap(), h);
        assert_eq!(Hash::from_hex(&h.to_hex()).unwrap(), h);
        assert!("AAAA".parse::<Hash>().is_err());
        assert!("not base64!".parse::<Hash>().is_err());
        assert!(Hash::from_hex("00").is_err());
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json, format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<Hash>(&json).unwrap(), h);
        assert!(serde_json::from_str::<Hash>("\"AAAA\"").is_err());
    }
}
