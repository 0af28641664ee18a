//! Where everything lives in sled: one tree, keys with a one-byte prefix.
//!
//! Everything the ledger writes for an append (the entry, the tree nodes it
//! completes, the new tree state and signed checkpoint, the de-duplication
//! key, catalogue and state-table changes) goes into **one** sled tree, so
//! that one `apply_batch` makes it all visible, or none of it, even across a
//! crash. The prefixes:
//!
//! | key | value |
//! | --- | --- |
//! | `E` seq (u64 BE) | the entry's exact canonical bytes (the Merkle leaf) |
//! | `N` level (u8) chunk (u64 BE) | the hashes of perfect subtrees `(level, 64·chunk ..)`, 32 bytes each, in order ([`node_chunk`]) |
//! | `M` name | ledger metadata: [`META_TREE`], [`META_CHECKPOINT`], [`META_FORMAT`] |
//! | `D` SHA-256 of an envelope's canonical JSON | the seq (u64 BE) of the entry that carries it |
//! | `T` table `0x00` key | a state-table row (catalogue, tokens, keys, cases...) |
//!
//! Tree nodes are stored [`CHUNK_NODES`] to a value rather than one per
//! key: the nodes of a level are completed left to right, so a chunk only
//! ever grows at its end, and a batch of appends rewrites a handful of
//! chunk values instead of inserting two keys per entry. That halves the
//! sled work per append (sled's batch apply blocks its readers while it
//! runs), and a node lookup is still one point read.
//!
//! Big-endian numbers keep sled's byte order equal to numeric order, so
//! `E` keys iterate in log order and the last `E` key is the last entry.
//! Table names are lower-case ASCII, so the `0x00` after the name cannot be
//! part of it. Composite row keys are built with [`composite`]: each part is
//! length-prefixed, so no part can run into the next.
//!
//! This module is pure key arithmetic; it must never touch sled.

use custos_core::merkle::NodeId;

/// Prefix of entry keys.
pub const ENTRY: u8 = b'E';
/// Prefix of tree node keys.
pub const NODE: u8 = b'N';
/// Prefix of metadata keys.
pub const META: u8 = b'M';
/// Prefix of envelope de-duplication keys.
pub const DEDUP: u8 = b'D';
/// Prefix of state-table rows.
pub const TABLE: u8 = b'T';

/// Metadata: the compact range (`CompactRange::to_bytes`) of the whole tree.
pub const META_TREE: &[u8] = b"Mtree";
/// Metadata: the signed checkpoint (C2SP note text) for the tree in [`META_TREE`].
pub const META_CHECKPOINT: &[u8] = b"Mcheckpoint";
/// Metadata: the storage format version, [`FORMAT_VERSION`].
pub const META_FORMAT: &[u8] = b"Mformat";
/// The storage format this code writes and reads.
pub const FORMAT_VERSION: &[u8] = b"custos-ledger/1";

/// The name of the sled tree that holds everything.
pub const TREE_NAME: &[u8] = b"custos-ledger";

/// The key of entry `seq`.
pub fn entry_key(seq: u64) -> [u8; 9] {
    let mut key = [ENTRY; 9];
    key[1..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// The seq of an entry key, if it is one.
pub fn entry_seq(key: &[u8]) -> Option<u64> {
    match key {
        [ENTRY, rest @ ..] => Some(u64::from_be_bytes(rest.try_into().ok()?)),
        _ => None,
    }
}

/// How many node hashes one chunk value holds: 64 (2 KiB).
pub const CHUNK_NODES: u64 = 64;

/// The key of the chunk that holds tree node `id`, and the byte offset of
/// its hash in the chunk's value.
pub fn node_chunk(id: NodeId) -> ([u8; 10], usize) {
    let mut key = [NODE; 10];
    key[1] = id.level;
    key[2..].copy_from_slice(&(id.index / CHUNK_NODES).to_be_bytes());
    // INVARIANT: the remainder is below 64, so the offset is below 2048.
    let offset = (id.index % CHUNK_NODES) as usize * custos_core::merkle::HASH_LEN;
    (key, offset)
}

/// The de-duplication key of an envelope whose canonical JSON hashes to `digest`.
pub fn dedup_key(digest: &[u8; 32]) -> [u8; 33] {
    let mut key = [DEDUP; 33];
    key[1..].copy_from_slice(digest);
    key
}

/// Whether `name` may name a state table: 1 to 32 bytes of `a-z` and `_`.
pub fn valid_table(name: &str) -> bool {
    (1..=32).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

/// The prefix of every row of `table`.
pub fn table_prefix(table: &str) -> Vec<u8> {
    debug_assert!(valid_table(table), "table name {table:?}");
    let mut key = Vec::with_capacity(2 + table.len());
    key.push(TABLE);
    key.extend_from_slice(table.as_bytes());
    key.push(0);
    key
}

/// The key of row `key` in `table`.
pub fn table_key(table: &str, key: &[u8]) -> Vec<u8> {
    let mut out = table_prefix(table);
    out.extend_from_slice(key);
    out
}

/// A row key made of several parts, each prefixed by its length (u32 BE), so
/// that `composite(&[a, b])` starts with `composite(&[a])` and no two lists of
/// parts give the same bytes.
pub fn composite(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| 4 + p.len()).sum());
    for part in parts {
        // INVARIANT: every part is an id or a fixed-width number from a
        // request or manifest capped far below 4 GiB (bodies are limited).
        let len = u32::try_from(part.len()).expect("INVARIANT: key part shorter than 4 GiB");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// Split a [`composite`] key back into its parts; `None` if malformed.
pub fn split_composite(mut key: &[u8]) -> Option<Vec<&[u8]>> {
    let mut parts = Vec::new();
    while !key.is_empty() {
        let (len, rest) = key.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        if rest.len() < len {
            return None;
        }
        let (part, rest) = rest.split_at(len);
        parts.push(part);
        key = rest;
    }
    Some(parts)
}

/// A UTC instant as 16 big-endian bytes that sort like the instant:
/// nanoseconds since the Unix epoch, sign bit flipped.
pub fn time_key(unix_nanos: i128) -> [u8; 16] {
    ((unix_nanos as u128) ^ (1u128 << 127)).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_keys_sort_numerically_and_round_trip() {
        assert!(entry_key(255) < entry_key(256));
        assert_eq!(entry_seq(&entry_key(1 << 40)), Some(1 << 40));
        assert_eq!(entry_seq(&node_chunk(NodeId::leaf(3)).0), None);
    }

    #[test]
    fn node_chunks() {
        let (k0, o0) = node_chunk(NodeId {
            level: 2,
            index: 63,
        });
        let (k1, o1) = node_chunk(NodeId {
            level: 2,
            index: 64,
        });
        assert_eq!((o0, o1), (63 * 32, 0));
        assert!(k0 < k1);
        assert_eq!(k0[1], 2);
        assert!(
            node_chunk(NodeId {
                level: 1,
                index: 1 << 40
            })
            .0 < k0
        );
    }

    #[test]
    fn composite_keys_are_prefix_free_and_split_back() {
        let ab = composite(&[b"a", b"b"]);
        assert!(ab.starts_with(&composite(&[b"a"])));
        assert_ne!(composite(&[b"ab", b""]), composite(&[b"a", b"b"]));
        assert_eq!(split_composite(&ab).unwrap(), vec![&b"a"[..], &b"b"[..]]);
        assert!(split_composite(&[0, 0, 0, 9, 1]).is_none());
    }

    #[test]
    fn time_keys_sort_like_time() {
        assert!(time_key(-5) < time_key(0));
        assert!(time_key(0) < time_key(7));
        assert!(time_key(i128::from(i64::MIN)) < time_key(-1));
    }

    #[test]
    fn table_names() {
        assert!(valid_table("segments"));
        assert!(valid_table("by_case"));
        assert!(!valid_table(""));
        assert!(!valid_table("Cases"));
        assert!(!valid_table("a/b"));
        assert_eq!(table_key("x", b"k"), b"Tx\0k");
    }
}
