//! The custody log as C2SP tlog-tiles (<https://c2sp.org/tlog-tiles>): the
//! static files anyone can fetch from the object store to check the log
//! without the ledger's API.
//!
//! # The layout
//!
//! The RFC 6962 tree of [`crate::merkle`] is cut into *tiles* of height 8:
//! a hash tile at tile level `L` holds, left to right, the hashes of the
//! tree's nodes at Merkle level `8·L` (level 0 tiles hold the leaf hashes),
//! at most [`TILE_WIDTH`] = 256 of them. Tile `N` of level `L` holds the
//! nodes `N·256 … N·256 + W - 1` of that Merkle level. A tile holding all
//! 256 is *full* and never changes again; the rightmost tile of a level
//! may be *partial* (width `W` in 1…255), and a later tree publishes a
//! wider one beside it under another name. So every name is written once,
//! with one content: tiles are immutable.
//!
//! The entries themselves are published in *entry bundles*, one per
//! level-0 tile: each entry's exact leaf bytes behind a two-byte
//! big-endian length, which bounds an entry to [`MAX_ENTRY_LEN`] bytes.
//!
//! Paths ([`TileId::path`], [`BundleId::path`]):
//!
//! - `tile/<L>/<N>` for a full hash tile, `tile/<L>/<N>.p/<W>` for a
//!   partial one;
//! - `tile/entries/<N>` and `tile/entries/<N>.p/<W>` for entry bundles;
//! - `<N>` in groups of three decimal digits from the most significant,
//!   each group but the last prefixed with `x`: 1234067 is
//!   `x001/x234/067`, 5 is `005`;
//! - `checkpoint` ([`CHECKPOINT_PATH`]) for the signed checkpoint
//!   ([`crate::checkpoint`]).
//!
//! # Writing and reading
//!
//! A writer asks which tiles a tree of a given size adds to an older one
//! ([`new_tiles`], [`new_bundles`]), reads each tile's hashes from its
//! stored tree ([`tile_hashes`]: the ledger keeps every perfect-subtree
//! node) and encodes them ([`encode_tile`], [`encode_bundle`]).
//!
//! A reader that does not trust the files rebuilds them: it decodes each
//! entry bundle ([`parse_bundle`]), feeds the leaf hashes to a
//! [`TileBuilder`], which hands back every tile the tree must hold with the
//! hashes it must hold, and compares them with the published bytes; the
//! builder's root is the one the checkpoint must name. [`TileSet`] answers
//! node lookups from published tiles, for a root or a proof at any size
//! the tiles cover.
//!
//! # What this module must never do
//!
//! It does no I/O (bytes come and go as slices), never accepts a path in a
//! non-canonical form (one tile, one name), and never trusts a tile's length,
//! a bundle's length prefixes or a width it was handed without checking them
//! against the tree size.

use std::collections::HashMap;
use std::fmt::{self, Write as _};

use crate::merkle::{self, Hash, NodeId, NodeSource, HASH_LEN};

/// Merkle levels per tile level (C2SP tlog-tiles' tile height).
pub const TILE_HEIGHT: u8 = 8;
/// Hashes in a full tile, entries in a full bundle: `2^TILE_HEIGHT`.
pub const TILE_WIDTH: u16 = 1 << TILE_HEIGHT;
/// The highest hash-tile level: Merkle levels go up to 63, and `8·7 = 56`
/// is the last multiple of 8 among them.
pub const MAX_TILE_LEVEL: u8 = 7;
/// Longest entry an entry bundle can hold: its length prefix is two bytes.
pub const MAX_ENTRY_LEN: usize = u16::MAX as usize;
/// The path of the signed checkpoint, beside `tile/`.
pub const CHECKPOINT_PATH: &str = "checkpoint";

const TILE_WIDTH_U64: u64 = TILE_WIDTH as u64;

/// Why a path, a tile or an entry bundle was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TileError {
    /// The path is not a tile or bundle path in canonical form.
    #[error("{path:?} is not a tlog-tiles path: {reason}")]
    BadPath {
        /// The path as given (truncated to 200 characters).
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A hash tile's length is not its width times 32 bytes.
    #[error("tile {tile} is {len} bytes long; {width} hashes are {} bytes", usize::from(*width) * HASH_LEN)]
    TileLength {
        /// The tile's path.
        tile: String,
        /// Its length.
        len: usize,
        /// The width its name gives.
        width: u16,
    },
    /// An entry bundle is cut short, holds more than its width or has
    /// bytes after its last entry.
    #[error("entry bundle {bundle}: {reason}")]
    BadBundle {
        /// The bundle's path.
        bundle: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An entry is too long for a bundle's two-byte length prefix.
    #[error("an entry of {len} bytes is longer than the {MAX_ENTRY_LEN} bytes a tlog-tiles entry bundle can hold")]
    EntryTooLong {
        /// The entry's length.
        len: usize,
    },
    /// A tile was given whose name does not belong to the tree's size.
    #[error("tile {tile} is not one of the tiles of a tree of size {size}")]
    NotInTree {
        /// The tile's path.
        tile: String,
        /// The tree size.
        size: u64,
    },
    /// A node was asked for that no tile given holds.
    #[error("no tile holds {0}")]
    MissingNode(NodeId),
}

// ---------------------------------------------------------------------------
// Names

/// A hash tile: tile level, index within the level, and width (256 for a
/// full tile).
// INVARIANT: level <= MAX_TILE_LEVEL, 1 <= width <= TILE_WIDTH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    level: u8,
    index: u64,
    width: u16,
}

/// An entry bundle: index (the level-0 tile it goes with) and width.
// INVARIANT: 1 <= width <= TILE_WIDTH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BundleId {
    index: u64,
    width: u16,
}

/// A parsed tlog-tiles path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TilePath {
    /// `tile/<L>/<N>[.p/<W>]`.
    Hashes(TileId),
    /// `tile/entries/<N>[.p/<W>]`.
    Entries(BundleId),
}

impl TileId {
    /// The tile at `level`, `index`, `width`; `None` if the level is above
    /// [`MAX_TILE_LEVEL`] or the width not in 1…256.
    pub fn new(level: u8, index: u64, width: u16) -> Option<TileId> {
        (level <= MAX_TILE_LEVEL && (1..=TILE_WIDTH).contains(&width)).then_some(TileId {
            level,
            index,
            width,
        })
    }

    /// The tile level (0: leaf hashes).
    pub fn level(&self) -> u8 {
        self.level
    }

    /// The index within the level.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// How many hashes it holds.
    pub fn width(&self) -> u16 {
        self.width
    }

    /// Whether it holds fewer than 256 hashes.
    pub fn is_partial(&self) -> bool {
        self.width < TILE_WIDTH
    }

    /// The Merkle node its `i`-th hash is (`i < width`).
    pub fn node(&self, i: u16) -> NodeId {
        NodeId {
            level: self.level * TILE_HEIGHT,
            index: self.index * TILE_WIDTH_U64 + u64::from(i),
        }
    }

    /// Its path, `tile/<L>/<N>[.p/<W>]`.
    pub fn path(&self) -> String {
        let mut out = format!("tile/{}/", self.level);
        push_index_and_width(&mut out, self.index, self.width);
        out
    }
}

impl BundleId {
    /// The bundle at `index` with `width` entries; `None` unless the width
    /// is in 1…256.
    pub fn new(index: u64, width: u16) -> Option<BundleId> {
        (1..=TILE_WIDTH)
            .contains(&width)
            .then_some(BundleId { index, width })
    }

    /// The index (entries `index·256 …`).
    pub fn index(&self) -> u64 {
        self.index
    }

    /// How many entries it holds.
    pub fn width(&self) -> u16 {
        self.width
    }

    /// The seq of its first entry.
    pub fn first_seq(&self) -> u64 {
        self.index * TILE_WIDTH_U64
    }

    /// Its path, `tile/entries/<N>[.p/<W>]`.
    pub fn path(&self) -> String {
        let mut out = String::from("tile/entries/");
        push_index_and_width(&mut out, self.index, self.width);
        out
    }
}

impl fmt::Display for TileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

impl fmt::Display for BundleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

/// `<N>[.p/<W>]`: N in three-digit groups, all but the last with `x`.
fn push_index_and_width(out: &mut String, index: u64, width: u16) {
    let mut groups = Vec::with_capacity(7);
    let mut n = index;
    loop {
        groups.push(n % 1000);
        n /= 1000;
        if n == 0 {
            break;
        }
    }
    for (i, group) in groups.iter().rev().enumerate() {
        if i > 0 {
            out.push('/');
        }
        if i + 1 < groups.len() {
            out.push('x');
        }
        // Writing to a String cannot fail.
        let _ = write!(out, "{group:03}");
    }
    if width < TILE_WIDTH {
        let _ = write!(out, ".p/{width}");
    }
}

/// Read a tile or bundle path; only the canonical form of each name is
/// accepted, so one tile has one name.
pub fn parse_path(path: &str) -> Result<TilePath, TileError> {
    let bad = |reason| TileError::BadPath {
        path: path.chars().take(200).collect(),
        reason,
    };
    let rest = path
        .strip_prefix("tile/")
        .ok_or(bad("it does not start with tile/"))?;
    let (level, rest) = rest.split_once('/').ok_or(bad("it has no index"))?;
    let (index, width) = parse_index_and_width(rest).map_err(bad)?;
    if level == "entries" {
        return Ok(TilePath::Entries(BundleId { index, width }));
    }
    let level = parse_decimal(level, 2).ok_or(bad("the level is not a decimal number"))?;
    let level = u8::try_from(level)
        .ok()
        .filter(|l| *l <= MAX_TILE_LEVEL)
        .ok_or(bad("the level is above 7"))?;
    Ok(TilePath::Hashes(TileId {
        level,
        index,
        width,
    }))
}

/// A decimal number of at most `max_digits` digits without leading zeros.
fn parse_decimal(text: &str, max_digits: usize) -> Option<u64> {
    let ok = !text.is_empty()
        && text.len() <= max_digits
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    ok.then(|| text.parse().ok()).flatten()
}

fn parse_index_and_width(text: &str) -> Result<(u64, u16), &'static str> {
    let (index, width) = match text.split_once(".p/") {
        Some((index, width)) => {
            let w = parse_decimal(width, 3).ok_or("the partial width is not a decimal number")?;
            let w = u16::try_from(w)
                .ok()
                .filter(|w| (1..TILE_WIDTH).contains(w))
                .ok_or("a partial width is 1 to 255")?;
            (index, w)
        }
        None => (text, TILE_WIDTH),
    };
    let groups: Vec<&str> = index.split('/').collect();
    let mut n: u64 = 0;
    for (i, group) in groups.iter().enumerate() {
        let last = i + 1 == groups.len();
        let digits = if last {
            *group
        } else {
            group
                .strip_prefix('x')
                .ok_or("an index group before the last lacks its x")?
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err("an index group is not three digits");
        }
        if i == 0 && !last && digits == "000" {
            return Err("the index has a leading zero group");
        }
        let value: u64 = digits
            .parse()
            .map_err(|_| "an index group is not three digits")?;
        n = n
            .checked_mul(1000)
            .and_then(|n| n.checked_add(value))
            .ok_or("the index does not fit in 64 bits")?;
    }
    Ok((n, width))
}

// ---------------------------------------------------------------------------
// Which tiles a tree has

/// The nodes at Merkle level `8·level` of a tree of `size` leaves.
fn nodes_at(size: u64, level: u8) -> u64 {
    size.checked_shr(u32::from(level) * u32::from(TILE_HEIGHT))
        .unwrap_or(0)
}

/// The hash tiles a tree of `new_size` has that one of `old_size` did not
/// have, level by level, left to right. `old_size = 0` gives every tile.
///
/// A full tile of the old tree is never listed again; a partial one is
/// replaced by the wider (or full) tile of the new tree. Nothing is listed
/// when `new_size <= old_size`.
pub fn new_tiles(old_size: u64, new_size: u64) -> impl Iterator<Item = TileId> {
    (0..=MAX_TILE_LEVEL).flat_map(move |level| {
        let old = nodes_at(old_size, level);
        let new = nodes_at(new_size, level);
        let (first, full_end, partial) = if new <= old {
            (0, 0, 0)
        } else {
            (
                old / TILE_WIDTH_U64,
                new / TILE_WIDTH_U64,
                (new % TILE_WIDTH_U64) as u16,
            )
        };
        let full = (first..full_end).map(move |index| TileId {
            level,
            index,
            width: TILE_WIDTH,
        });
        let partial = (partial > 0).then_some(TileId {
            level,
            index: full_end,
            width: partial,
        });
        full.chain(partial)
    })
}

/// Every hash tile of a tree of `size` leaves.
pub fn tiles(size: u64) -> impl Iterator<Item = TileId> {
    new_tiles(0, size)
}

/// The entry bundles a tree of `new_size` has that one of `old_size` did
/// not have (as [`new_tiles`] for level 0).
pub fn new_bundles(old_size: u64, new_size: u64) -> impl Iterator<Item = BundleId> {
    new_tiles(old_size, new_size)
        .take_while(|t| t.level == 0)
        .map(|t| BundleId {
            index: t.index,
            width: t.width,
        })
}

/// Every entry bundle of a tree of `size` leaves.
pub fn bundles(size: u64) -> impl Iterator<Item = BundleId> {
    new_bundles(0, size)
}

// ---------------------------------------------------------------------------
// Contents

/// The hashes tile `id` holds, read from a tree's stored nodes.
pub fn tile_hashes<S: NodeSource + ?Sized>(src: &S, id: TileId) -> Result<Vec<Hash>, S::Error> {
    (0..id.width).map(|i| src.node(id.node(i))).collect()
}

/// A hash tile's bytes: its hashes, one after another.
pub fn encode_tile(hashes: &[Hash]) -> Vec<u8> {
    hashes.iter().flat_map(|h| h.to_bytes()).collect()
}

/// A hash tile's hashes, from bytes that must hold exactly its width.
pub fn parse_tile(id: TileId, bytes: &[u8]) -> Result<Vec<Hash>, TileError> {
    if bytes.len() != usize::from(id.width) * HASH_LEN {
        return Err(TileError::TileLength {
            tile: id.path(),
            len: bytes.len(),
            width: id.width,
        });
    }
    Ok(bytes
        .chunks_exact(HASH_LEN)
        .map(|c| {
            let mut h = [0u8; HASH_LEN];
            h.copy_from_slice(c);
            Hash::from_bytes(h)
        })
        .collect())
}

/// An entry bundle's bytes: each entry behind its length as two big-endian
/// bytes. Refuses an entry longer than [`MAX_ENTRY_LEN`].
pub fn encode_bundle<'a>(
    entries: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<u8>, TileError> {
    let mut out = Vec::new();
    for entry in entries {
        let len =
            u16::try_from(entry.len()).map_err(|_| TileError::EntryTooLong { len: entry.len() })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(entry);
    }
    Ok(out)
}

/// The entries of bundle `id`, from bytes that must hold exactly its width
/// of entries and nothing after them.
pub fn parse_bundle(id: BundleId, bytes: &[u8]) -> Result<Vec<&[u8]>, TileError> {
    let bad = |reason: String| TileError::BadBundle {
        bundle: id.path(),
        reason,
    };
    let mut entries = Vec::with_capacity(usize::from(id.width));
    let mut rest = bytes;
    while !rest.is_empty() {
        if entries.len() == usize::from(id.width) {
            return Err(bad(format!(
                "{} bytes follow its {} entries",
                rest.len(),
                id.width
            )));
        }
        let seq = id.first_seq() + entries.len() as u64;
        let (len, tail) = rest
            .split_first_chunk::<2>()
            .ok_or_else(|| bad(format!("entry {seq}'s length is cut short")))?;
        let len = usize::from(u16::from_be_bytes(*len));
        if tail.len() < len {
            return Err(bad(format!(
                "entry {seq} is {len} bytes long but only {} remain",
                tail.len()
            )));
        }
        let (entry, tail) = tail.split_at(len);
        entries.push(entry);
        rest = tail;
    }
    if entries.len() != usize::from(id.width) {
        return Err(bad(format!(
            "it holds {} entries, its name says {}",
            entries.len(),
            id.width
        )));
    }
    Ok(entries)
}

// ---------------------------------------------------------------------------
// Rebuilding tiles from leaves

/// Builds every tile of a tree from its leaf hashes, in order, as a reader
/// does to check published tiles: [`push`](Self::push) hands back each tile
/// the leaf completes, [`partial_tiles`](Self::partial_tiles) the partial
/// ones of the current size, [`root`](Self::root) the root.
///
/// Memory is bounded: at most 255 hashes per tile level are held.
#[derive(Debug, Clone, Default)]
pub struct TileBuilder {
    /// Per tile level, the hashes of its rightmost, not yet full tile.
    pending: Vec<Vec<Hash>>,
    /// The tree's right edge, for the root.
    range: merkle::CompactRange,
}

impl TileBuilder {
    /// A builder for the empty tree.
    pub fn new() -> TileBuilder {
        TileBuilder::default()
    }

    /// Leaves pushed so far.
    pub fn size(&self) -> u64 {
        self.range.size()
    }

    /// The root of the tree pushed so far.
    pub fn root(&self) -> Hash {
        self.range.root()
    }

    /// Add the next leaf; returns the full tiles it completes, lowest level
    /// first, with their hashes.
    pub fn push(&mut self, leaf: Hash) -> Vec<(TileId, Vec<Hash>)> {
        self.range.push(leaf);
        let size = self.range.size();
        let mut done = Vec::new();
        let mut hash = leaf;
        for level in 0..=MAX_TILE_LEVEL {
            let l = usize::from(level);
            if self.pending.len() <= l {
                self.pending
                    .push(Vec::with_capacity(usize::from(TILE_WIDTH)));
            }
            self.pending[l].push(hash);
            if self.pending[l].len() < usize::from(TILE_WIDTH) {
                break;
            }
            let hashes = std::mem::take(&mut self.pending[l]);
            // A full tile's 256 hashes are the bottom of a perfect subtree
            // eight levels high; its root is the next tile level's hash.
            hash = merkle::root(&hashes);
            let index = nodes_at(size, level) / TILE_WIDTH_U64 - 1;
            done.push((
                TileId {
                    level,
                    index,
                    width: TILE_WIDTH,
                },
                hashes,
            ));
        }
        done
    }

    /// The partial tiles of the tree pushed so far, with their hashes.
    pub fn partial_tiles(&self) -> Vec<(TileId, Vec<Hash>)> {
        let size = self.range.size();
        self.pending
            .iter()
            .enumerate()
            .filter(|(_, hashes)| !hashes.is_empty())
            .map(|(l, hashes)| {
                // INVARIANT: pending has at most MAX_TILE_LEVEL + 1 levels and
                // each holds fewer than TILE_WIDTH hashes.
                let level = l as u8;
                let id = TileId {
                    level,
                    index: nodes_at(size, level) / TILE_WIDTH_U64,
                    width: hashes.len() as u16,
                };
                (id, hashes.clone())
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Reading nodes from tiles

/// Published tiles of a tree of a given size, answering node lookups
/// ([`NodeSource`]) so that roots and proofs can be computed from them.
///
/// A node at a Merkle level between two tile levels is computed from the
/// lower tile's hashes (at most 128 of them). The set trusts its tiles: a
/// lower tile covered by a higher one is never read for a root, so a reader
/// that does not trust the files checks them with a [`TileBuilder`] first.
#[derive(Debug, Clone)]
pub struct TileSet {
    size: u64,
    tiles: HashMap<(u8, u64), Vec<Hash>>,
}

impl TileSet {
    /// An empty set for a tree of `size` leaves.
    pub fn new(size: u64) -> TileSet {
        TileSet {
            size,
            tiles: HashMap::new(),
        }
    }

    /// The tree size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Add tile `id` with its `hashes`: the tile must be one of the tree's
    /// and the hashes as many as its width.
    pub fn insert(&mut self, id: TileId, hashes: Vec<Hash>) -> Result<(), TileError> {
        let count = nodes_at(self.size, id.level);
        let expected = count
            .checked_sub(id.index * TILE_WIDTH_U64)
            .filter(|n| *n > 0)
            .map(|n| n.min(TILE_WIDTH_U64) as u16);
        if expected != Some(id.width) || hashes.len() != usize::from(id.width) {
            return Err(TileError::NotInTree {
                tile: id.path(),
                size: self.size,
            });
        }
        self.tiles.insert((id.level, id.index), hashes);
        Ok(())
    }

    /// The root of the tree (or of any smaller tree the tiles cover).
    pub fn root_at(&self, size: u64) -> Result<Hash, TileError> {
        merkle::root_at(self, size)
    }
}

impl NodeSource for TileSet {
    type Error = TileError;

    fn node(&self, id: NodeId) -> Result<Hash, TileError> {
        let level = id.level / TILE_HEIGHT;
        let rise = id.level % TILE_HEIGHT;
        // The node covers 2^rise consecutive hashes of its tile level,
        // which all lie in one tile (2^rise divides 256).
        let first = id
            .index
            .checked_shl(u32::from(rise))
            .ok_or(TileError::MissingNode(id))?;
        let count = 1usize << rise;
        let tile = self
            .tiles
            .get(&(level, first / TILE_WIDTH_U64))
            .ok_or(TileError::MissingNode(id))?;
        let start = (first % TILE_WIDTH_U64) as usize;
        let hashes = tile
            .get(start..start + count)
            .ok_or(TileError::MissingNode(id))?;
        Ok(merkle::root(hashes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_path(level: u8, index: u64, width: u16, expect: &str) {
        let id = TileId::new(level, index, width).unwrap();
        assert_eq!(id.path(), expect);
        assert_eq!(parse_path(expect).unwrap(), TilePath::Hashes(id));
    }

    #[test]
    fn paths_follow_the_spec_examples() {
        check_path(0, 0, 256, "tile/0/000");
        check_path(1, 5, 256, "tile/1/005");
        check_path(0, 1234067, 256, "tile/0/x001/x234/067");
        check_path(2, 1000, 7, "tile/2/x001/000.p/7");
        check_path(
            7,
            u64::MAX,
            255,
            "tile/7/x018/x446/x744/x073/x709/x551/615.p/255",
        );
        let b = BundleId::new(1234067, 1).unwrap();
        assert_eq!(b.path(), "tile/entries/x001/x234/067.p/1");
        assert_eq!(parse_path(&b.path()).unwrap(), TilePath::Entries(b));
    }

    #[test]
    fn non_canonical_paths_are_refused() {
        for bad in [
            "tile/0/0",
            "tile/0/0000",
            "tile/0/x000/001",
            "tile/0/001/002",
            "tile/0/x001",
            "tile/00/000",
            "tile/8/000",
            "tile/0/000.p/0",
            "tile/0/000.p/256",
            "tile/0/000.p/07",
            "tile/0/000.p/",
            "tile/entries/000/",
            "tile/0/x018/x446/x744/x073/x709/x551/616",
            "tiles/0/000",
            "tile/0/+12",
        ] {
            assert!(parse_path(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn new_tiles_replace_partial_ones() {
        let names = |a, b| new_tiles(a, b).map(|t| t.path()).collect::<Vec<_>>();
        assert_eq!(names(0, 0), Vec::<String>::new());
        assert_eq!(names(0, 1), ["tile/0/000.p/1"]);
        assert_eq!(names(0, 256), ["tile/0/000", "tile/1/000.p/1"]);
        assert_eq!(names(256, 257), ["tile/0/001.p/1"]);
        assert_eq!(
            names(300, 513),
            ["tile/0/001", "tile/0/002.p/1", "tile/1/000.p/2"]
        );
        assert_eq!(names(5, 5), Vec::<String>::new());
        assert_eq!(names(6, 5), Vec::<String>::new());
        let b = new_bundles(255, 257).map(|b| b.path()).collect::<Vec<_>>();
        assert_eq!(b, ["tile/entries/000", "tile/entries/001.p/1"]);
    }

    #[test]
    fn bundles_round_trip_and_refuse_bad_lengths() {
        let entries: [&[u8]; 3] = [b"a", b"", b"xyz"];
        let bytes = encode_bundle(entries).unwrap();
        assert_eq!(bytes, b"\x00\x01a\x00\x00\x00\x03xyz");
        let id = BundleId::new(0, 3).unwrap();
        assert_eq!(parse_bundle(id, &bytes).unwrap(), entries);
        assert!(parse_bundle(BundleId::new(0, 2).unwrap(), &bytes).is_err());
        assert!(parse_bundle(BundleId::new(0, 4).unwrap(), &bytes).is_err());
        assert!(parse_bundle(id, &bytes[..bytes.len() - 1]).is_err());
        let long = vec![0u8; MAX_ENTRY_LEN + 1];
        assert_eq!(
            encode_bundle([long.as_slice()]),
            Err(TileError::EntryTooLong {
                len: MAX_ENTRY_LEN + 1
            })
        );
        assert!(encode_bundle([&long[..MAX_ENTRY_LEN]]).is_ok());
    }
}
