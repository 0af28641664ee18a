//! Properties of the Merkle module, checked against a naive transcription of
//! RFC 9162 §2.1 (recursion over slices, no stored nodes): proofs equal the
//! RFC's, every proof verifies, and any change to a proof, leaf, root, index or
//! size makes verification fail.

use std::cell::Cell;

use custos_core::merkle::{
    consistency_proof, empty_root, frontier_ids, inclusion_proof, leaf_hash, node_hash, root_at,
    verify_consistency, verify_inclusion, CompactRange, CompactRangeError, ConsistencyError, Hash,
    InclusionError, MemoryTree, MissingNode, NodeId, NodeSource, ProofError,
};
use proptest::prelude::*;

// --- The RFC, transcribed naively -------------------------------------------

fn k_of(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// MTH(D[n]), RFC 9162 §2.1.1.
fn ref_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = k_of(n);
            node_hash(&ref_root(&leaves[..k]), &ref_root(&leaves[k..]))
        }
    }
}

/// PATH(m, D[n]), RFC 9162 §2.1.3.1.
fn ref_path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    let n = leaves.len();
    if n == 1 {
        return vec![];
    }
    let k = k_of(n);
    if m < k {
        let mut p = ref_path(m, &leaves[..k]);
        p.push(ref_root(&leaves[k..]));
        p
    } else {
        let mut p = ref_path(m - k, &leaves[k..]);
        p.push(ref_root(&leaves[..k]));
        p
    }
}

/// SUBPROOF(m, D[n], b), RFC 9162 §2.1.4.1.
fn ref_subproof(m: usize, leaves: &[Hash], b: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if b { vec![] } else { vec![ref_root(leaves)] };
    }
    let k = k_of(n);
    if m <= k {
        let mut p = ref_subproof(m, &leaves[..k], b);
        p.push(ref_root(&leaves[k..]));
        p
    } else {
        let mut p = ref_subproof(m - k, &leaves[k..], false);
        p.push(ref_root(&leaves[..k]));
        p
    }
}

// --- Helpers -----------------------------------------------------------------

fn leaves(n: u64, salt: u64) -> Vec<Hash> {
    (0..n)
        .map(|i| {
            let mut entry = salt.to_be_bytes().to_vec();
            entry.extend_from_slice(&i.to_be_bytes());
            leaf_hash(&entry)
        })
        .collect()
}

fn flip(h: &Hash, bit: usize) -> Hash {
    let mut b = h.to_bytes();
    b[(bit / 8) % 32] ^= 1 << (bit % 8);
    Hash::from_bytes(b)
}

// --- Exhaustive agreement with the RFC on small trees -----------------------

#[test]
fn proofs_equal_the_rfc_definitions_for_all_small_trees() {
    let all = leaves(40, 7);
    let tree = MemoryTree::from_leaves(&all);
    for n in 1..=all.len() {
        let d = &all[..n];
        let r = ref_root(d);
        assert_eq!(root_at(&tree, n as u64).unwrap(), r, "root {n}");
        for m in 0..n {
            let p = inclusion_proof(&tree, m as u64, n as u64).unwrap();
            assert_eq!(p, ref_path(m, d), "PATH({m}, D[{n}])");
            verify_inclusion(&d[m], m as u64, n as u64, &p, &r).unwrap();
        }
        for m in 1..=n {
            let p = consistency_proof(&tree, m as u64, n as u64).unwrap();
            assert_eq!(p, ref_subproof(m, d, true), "PROOF({m}, D[{n}])");
            verify_consistency(m as u64, n as u64, &p, &ref_root(&d[..m]), &r).unwrap();
        }
    }
}

#[test]
fn compact_range_root_and_nodes_at_every_size() {
    let all = leaves(300, 3);
    let mut range = CompactRange::new();
    for (i, leaf) in all.iter().enumerate() {
        for (id, hash) in range.append(*leaf) {
            // Every node reported is the MTH of the leaves it covers, and
            // ends at the leaf just appended.
            let lo = id.first_leaf() as usize;
            let hi = lo + id.width() as usize;
            assert_eq!(hi, i + 1, "{id} reported after leaf {i}");
            assert_eq!(hash, ref_root(&all[lo..hi]), "{id}");
        }
        assert_eq!(range.root(), ref_root(&all[..=i]), "size {}", i + 1);
        assert_eq!(range.size(), i as u64 + 1);
        let ids: Vec<NodeId> = range.frontier().into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, frontier_ids(range.size()));
    }
}

// --- Errors ------------------------------------------------------------------

#[test]
fn generation_errors() {
    let tree = MemoryTree::from_leaves(&leaves(5, 1));
    assert!(matches!(
        inclusion_proof(&tree, 5, 5),
        Err(ProofError::IndexOutOfRange { index: 5, size: 5 })
    ));
    assert!(matches!(
        inclusion_proof(&tree, 0, 0),
        Err(ProofError::IndexOutOfRange { .. })
    ));
    assert!(matches!(
        consistency_proof(&tree, 4, 3),
        Err(ProofError::OldSizeLarger {
            old_size: 4,
            new_size: 3
        })
    ));
    // Asking for a tree larger than the source holds names the missing node.
    let err = inclusion_proof(&tree, 0, 8).unwrap_err();
    assert_eq!(
        err,
        ProofError::Source(MissingNode(NodeId { level: 2, index: 1 }))
    );
    assert!(err.to_string().contains("level 2, index 1"), "{err}");
    assert!(root_at(&tree, 6).is_err());
    assert_eq!(consistency_proof(&tree, 0, 5).unwrap(), vec![]);
    assert_eq!(consistency_proof(&tree, 5, 5).unwrap(), vec![]);
}

#[test]
fn verification_errors_say_what_is_wrong() {
    let all = leaves(6, 2);
    let tree = MemoryTree::from_leaves(&all);
    let r = tree.root();
    let p = inclusion_proof(&tree, 2, 6).unwrap();
    assert_eq!(
        verify_inclusion(&all[2], 6, 6, &p, &r),
        Err(InclusionError::IndexOutOfRange { index: 6, size: 6 })
    );
    let err = verify_inclusion(&all[2], 2, 6, &p[..1], &r).unwrap_err();
    assert_eq!(
        err,
        InclusionError::WrongProofLength {
            index: 2,
            size: 6,
            expected: 3,
            got: 1
        }
    );
    assert!(err.to_string().contains("must hold 3 hashes"), "{err}");
    assert_eq!(
        verify_inclusion(&all[3], 2, 6, &p, &r),
        Err(InclusionError::RootMismatch { index: 2, size: 6 })
    );

    let r3 = root_at(&tree, 3).unwrap();
    let c = consistency_proof(&tree, 3, 6).unwrap();
    assert_eq!(
        verify_consistency(6, 3, &c, &r, &r3),
        Err(ConsistencyError::OldSizeLarger {
            old_size: 6,
            new_size: 3
        })
    );
    assert!(matches!(
        verify_consistency(3, 6, &[], &r3, &r),
        Err(ConsistencyError::WrongProofLength {
            expected: 4,
            got: 0,
            ..
        })
    ));
    assert!(matches!(
        verify_consistency(3, 6, &c, &r, &r),
        Err(ConsistencyError::OldRootMismatch { .. })
    ));
    assert!(matches!(
        verify_consistency(3, 6, &c, &r3, &r3),
        Err(ConsistencyError::NewRootMismatch { .. })
    ));
    // Equal sizes: empty proof and equal roots.
    verify_consistency(6, 6, &[], &r, &r).unwrap();
    assert!(verify_consistency(6, 6, &[], &r, &r3).is_err());
    assert!(verify_consistency(6, 6, &c, &r, &r).is_err());
    // From the empty tree: empty proof and the empty root.
    verify_consistency(0, 6, &[], &empty_root(), &r).unwrap();
    assert!(verify_consistency(0, 6, &[], &r3, &r).is_err());
    assert!(verify_consistency(0, 6, &c, &empty_root(), &r).is_err());
}

#[test]
fn compact_range_rejects_bad_state() {
    let mut range = CompactRange::new();
    for leaf in leaves(11, 4) {
        range.push(leaf);
    }
    let bytes = range.to_bytes();
    assert_eq!(bytes.len(), 8 + 32 * 3);
    assert_eq!(CompactRange::from_bytes(&bytes).unwrap(), range);
    assert_eq!(
        CompactRange::from_bytes(&bytes[..5]),
        Err(CompactRangeError::Truncated(5))
    );
    assert_eq!(
        CompactRange::from_bytes(&bytes[..bytes.len() - 1]),
        Err(CompactRangeError::TrailingBytes(31))
    );
    assert!(matches!(
        CompactRange::from_bytes(&bytes[..bytes.len() - 32]),
        Err(CompactRangeError::WrongHashCount {
            size: 11,
            expected: 3,
            got: 2
        })
    ));
    let mut huge = bytes.clone();
    huge[..8].copy_from_slice(&u64::MAX.to_be_bytes());
    assert_eq!(
        CompactRange::from_bytes(&huge),
        Err(CompactRangeError::TooLarge(u64::MAX))
    );
    let json = serde_json::to_string(&range).unwrap();
    assert!(json.starts_with("{\"size\":11,\"frontier\":[\""), "{json}");
    let mut bad: serde_json::Value = serde_json::from_str(&json).unwrap();
    bad["size"] = 12.into();
    assert!(serde_json::from_value::<CompactRange>(bad).is_err());
}

// --- Cost: a million-leaf log answers in O(log n) lookups -------------------

/// A tree whose leaves are all the same hash, so the node at level `l` is
/// known without storing anything: an honest tree of any size.
struct UniformTree {
    levels: Vec<Hash>,
    lookups: Cell<usize>,
}

impl UniformTree {
    fn new() -> Self {
        let mut levels = vec![leaf_hash(b"uniform")];
        for l in 0..63 {
            let h = levels[l];
            levels.push(node_hash(&h, &h));
        }
        UniformTree {
            levels,
            lookups: Cell::new(0),
        }
    }
}

impl NodeSource for UniformTree {
    type Error = std::convert::Infallible;
    fn node(&self, id: NodeId) -> Result<Hash, Self::Error> {
        self.lookups.set(self.lookups.get() + 1);
        Ok(self.levels[usize::from(id.level)])
    }
}

#[test]
fn proofs_for_a_million_leaves_take_logarithmic_lookups() {
    let src = UniformTree::new();
    let size = 1_000_003u64;
    let r = root_at(&src, size).unwrap();
    assert!(src.lookups.replace(0) <= 20, "root lookups");
    for index in [0, 1, 524_287, 524_288, 999_999, size - 1] {
        let p = inclusion_proof(&src, index, size).unwrap();
        assert!(
            src.lookups.replace(0) <= 40,
            "inclusion lookups for {index}"
        );
        verify_inclusion(&src.levels[0], index, size, &p, &r).unwrap();
    }
    for old in [1, 2, 3, 1000, 524_288, 777_777, size - 1] {
        let p = consistency_proof(&src, old, size).unwrap();
        assert!(
            src.lookups.replace(0) <= 60,
            "consistency lookups from {old}"
        );
        let r_old = root_at(&src, old).unwrap();
        verify_consistency(old, size, &p, &r_old, &r).unwrap();
    }
    // A closure over the same nodes is a node source too.
    let closure = |id: NodeId| src.node(id);
    assert_eq!(root_at(&closure, size).unwrap(), r);
    let range = CompactRange::from_source(&src, size).unwrap();
    assert_eq!(range.root(), r);
}

// --- Random trees ------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn inclusion_proofs_verify_and_bind_everything(
        size in 1u64..3000,
        salt in any::<u64>(),
        picks in proptest::collection::vec(any::<u64>(), 4),
        bit in 0usize..256,
    ) {
        let all = leaves(size, salt);
        let tree = MemoryTree::from_leaves(&all);
        let r = tree.root();
        for pick in picks {
            let index = pick % size;
            let leaf = all[index as usize];
            let proof = inclusion_proof(&tree, index, size).unwrap();
            prop_assert!(verify_inclusion(&leaf, index, size, &proof, &r).is_ok());
            for i in 0..proof.len() {
                let mut bad = proof.clone();
                bad[i] = flip(&bad[i], bit);
                prop_assert!(verify_inclusion(&leaf, index, size, &bad, &r).is_err());
            }
            prop_assert!(verify_inclusion(&flip(&leaf, bit), index, size, &proof, &r).is_err());
            prop_assert!(verify_inclusion(&leaf, index, size, &proof, &flip(&r, bit)).is_err());
            if size > 1 {
                let other = (index + 1 + pick % (size - 1)) % size;
                prop_assert_ne!(other, index);
                prop_assert!(verify_inclusion(&leaf, other, size, &proof, &r).is_err());
                // The size is bound through the root: a proof from this tree
                // does not verify against another size's root.
                if index + 1 < size {
                    let other_size = index + 1 + (pick >> 32) % (size - index - 1);
                    let r2 = root_at(&tree, other_size).unwrap();
                    prop_assert!(verify_inclusion(&leaf, index, other_size, &proof, &r2).is_err());
                }
            }
            let mut longer = proof.clone();
            longer.push(r);
            prop_assert!(verify_inclusion(&leaf, index, size, &longer, &r).is_err());
            if !proof.is_empty() {
                prop_assert!(verify_inclusion(&leaf, index, size, &proof[1..], &r).is_err());
            }
        }
    }

    #[test]
    fn consistency_proofs_verify_and_bind_everything(
        new_size in 1u64..3000,
        salt in any::<u64>(),
        pick in any::<u64>(),
        bit in 0usize..256,
    ) {
        let all = leaves(new_size, salt);
        let tree = MemoryTree::from_leaves(&all);
        let old_size = 1 + pick % new_size;
        let (r1, r2) = (root_at(&tree, old_size).unwrap(), tree.root());
        let proof = consistency_proof(&tree, old_size, new_size).unwrap();
        prop_assert!(verify_consistency(old_size, new_size, &proof, &r1, &r2).is_ok());
        for i in 0..proof.len() {
            let mut bad = proof.clone();
            bad[i] = flip(&bad[i], bit);
            prop_assert!(verify_consistency(old_size, new_size, &bad, &r1, &r2).is_err());
        }
        prop_assert!(verify_consistency(old_size, new_size, &proof, &flip(&r1, bit), &r2).is_err());
        prop_assert!(verify_consistency(old_size, new_size, &proof, &r1, &flip(&r2, bit)).is_err());
        // Another old size, with that size's true root, does not verify.
        if new_size > 1 {
            let other = 1 + (old_size + pick % (new_size - 1)) % new_size;
            if other != old_size {
                let ro = root_at(&tree, other).unwrap();
                prop_assert!(verify_consistency(other, new_size, &proof, &ro, &r2).is_err());
            }
            // A smaller new size, with its true root, does not verify either.
            if old_size < new_size - 1 {
                let smaller = new_size - 1;
                let rs = root_at(&tree, smaller).unwrap();
                prop_assert!(verify_consistency(old_size, smaller, &proof, &r1, &rs).is_err());
            }
        }
        let mut longer = proof.clone();
        longer.push(r2);
        prop_assert!(verify_consistency(old_size, new_size, &longer, &r1, &r2).is_err());
    }

    #[test]
    fn compact_range_matches_the_full_tree_and_round_trips(
        size in 0u64..3000,
        salt in any::<u64>(),
        cut in any::<u64>(),
    ) {
        let all = leaves(size, salt);
        let mut range = CompactRange::new();
        let mut tree = MemoryTree::new();
        let cut = if size == 0 { 0 } else { cut % size };
        for (i, leaf) in all.iter().enumerate() {
            if i as u64 == cut {
                // Persist and restore mid-way, as a ledger restart would.
                range = CompactRange::from_bytes(&range.to_bytes()).unwrap();
                prop_assert_eq!(range.root(), root_at(&tree, cut).unwrap());
            }
            range.append(*leaf);
            tree.push(*leaf);
        }
        prop_assert_eq!(range.size(), size);
        prop_assert_eq!(range.root(), ref_root(&all));
        prop_assert_eq!(&CompactRange::from_bytes(&range.to_bytes()).unwrap(), &range);
        let json = serde_json::to_string(&range).unwrap();
        prop_assert_eq!(&serde_json::from_str::<CompactRange>(&json).unwrap(), &range);
        prop_assert_eq!(&CompactRange::from_source(&tree, size).unwrap(), &range);
        prop_assert_eq!(&CompactRange::from_source(&tree, cut).unwrap().root(), &root_at(&tree, cut).unwrap());
    }
}
