//! Properties of the tlog-tiles module: tiles rebuilt from a random tree
//! are exactly the tiles read from its stored nodes, name exactly the
//! tiles its size has, and give back the root `merkle.rs` computes, at the
//! tree's size and at every smaller size they cover; paths and bundles
//! round-trip; a changed byte is caught.

use std::collections::BTreeMap;

use custos_core::merkle::{leaf_hash, root, MemoryTree};
use custos_core::tiles::{
    encode_bundle, encode_tile, new_tiles, parse_bundle, parse_path, parse_tile, tile_hashes,
    tiles, BundleId, TileBuilder, TileId, TilePath, TileSet,
};
use proptest::prelude::*;

fn leaves(n: u64, salt: u8) -> Vec<custos_core::merkle::Hash> {
    (0..n)
        .map(|i| leaf_hash(format!("{salt}:{i}").as_bytes()))
        .collect()
}

/// Every tile the builder produces for `leaves`, by id.
fn built(leaves: &[custos_core::merkle::Hash]) -> BTreeMap<TileId, Vec<custos_core::merkle::Hash>> {
    let mut b = TileBuilder::new();
    let mut out = BTreeMap::new();
    for l in leaves {
        out.extend(b.push(*l));
    }
    out.extend(b.partial_tiles());
    assert_eq!(b.root(), root(leaves));
    out
}

fn check_tree(n: u64, salt: u8, smaller: u64) {
    let leaves = leaves(n, salt);
    let tree = MemoryTree::from_leaves(&leaves);
    let built = built(&leaves);
    let named: Vec<TileId> = tiles(n).collect();
    // The builder makes exactly the tiles the size names (full ones it
    // completed on the way, and the partial ones at the end)...
    let expected: Vec<TileId> = named.clone();
    let mut final_tiles: Vec<TileId> = built
        .keys()
        .copied()
        .filter(|id| expected.contains(id))
        .collect();
    final_tiles.sort();
    let mut sorted = expected.clone();
    sorted.sort();
    assert_eq!(final_tiles, sorted, "size {n}");
    // ... with the hashes the stored tree holds.
    let mut set = TileSet::new(n);
    for id in &named {
        let from_tree = tile_hashes(&tree, *id).unwrap();
        assert_eq!(&built[id], &from_tree, "tile {id} of size {n}");
        let bytes = encode_tile(&from_tree);
        assert_eq!(parse_tile(*id, &bytes).unwrap(), from_tree);
        set.insert(*id, from_tree).unwrap();
    }
    assert_eq!(set.root_at(n).unwrap(), tree.root(), "size {n}");
    let m = smaller.min(n);
    assert_eq!(
        set.root_at(m).unwrap(),
        root(&leaves[..m as usize]),
        "size {m} of {n}"
    );
    // Publishing m then n writes every tile of n exactly once.
    let mut union: Vec<TileId> = tiles(m).filter(|t| named.contains(t)).collect();
    let added: Vec<TileId> = new_tiles(m, n).collect();
    for t in &added {
        assert!(!union.contains(t), "{t} published twice");
    }
    union.extend(added);
    union.sort();
    assert_eq!(union, sorted, "{m} then {n}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn tiles_rebuilt_from_random_trees_give_merkle_rs_roots(
        n in 0u64..1400, salt in any::<u8>(), smaller in 0u64..1400,
    ) {
        check_tree(n, salt, smaller);
    }

    #[test]
    fn hash_tile_paths_round_trip(level in 0u8..=7, index in any::<u64>(), width in 1u16..=256) {
        let id = TileId::new(level, index, width).unwrap();
        prop_assert_eq!(parse_path(&id.path()).unwrap(), TilePath::Hashes(id));
    }

    #[test]
    fn bundle_paths_round_trip(index in any::<u64>(), width in 1u16..=256) {
        let id = BundleId::new(index, width).unwrap();
        prop_assert_eq!(parse_path(&id.path()).unwrap(), TilePath::Entries(id));
    }

    #[test]
    fn bundles_round_trip(entries in proptest::collection::vec(
        proptest::collection::vec(any::<u8>(), 0..300), 1..40)
    ) {
        let bytes = encode_bundle(entries.iter().map(Vec::as_slice)).unwrap();
        let id = BundleId::new(3, entries.len() as u16).unwrap();
        let back = parse_bundle(id, &bytes).unwrap();
        prop_assert_eq!(back, entries.iter().map(Vec::as_slice).collect::<Vec<_>>());
    }
}

#[test]
fn a_tree_with_three_tile_levels_rebuilds() {
    // 65536 + 300 leaves: two full levels of tiles below a third.
    check_tree(65_836, 7, 65_535);
}

#[test]
fn a_flipped_byte_in_a_tile_is_caught_by_rebuilding() {
    let leaves = leaves(600, 1);
    let tree = MemoryTree::from_leaves(&leaves);
    let rebuilt = built(&leaves);
    for flipped in tiles(600) {
        let mut set = TileSet::new(600);
        let mut caught = false;
        for id in tiles(600) {
            let mut bytes = encode_tile(&tile_hashes(&tree, id).unwrap());
            if id == flipped {
                bytes[33] ^= 1;
            }
            let hashes = parse_tile(id, &bytes).unwrap();
            caught |= hashes != rebuilt[&id];
            set.insert(id, hashes).unwrap();
        }
        assert!(caught, "{flipped}");
        // The root alone does not see a lower tile that a higher one covers
        // (tile/0/000 here): that is why a reader rebuilds every tile.
        let root_changed = set.root_at(600).unwrap() != tree.root();
        assert_eq!(
            root_changed,
            flipped.path() != "tile/0/000" && flipped.path() != "tile/0/001",
            "{flipped}"
        );
    }
}
