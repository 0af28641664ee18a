//! Known answers: the 8-leaf test tree used by Certificate Transparency
//! implementations (google/certificate-transparency, transparency-dev/merkle)
//! to check RFC 6962 hashing, audit paths and consistency proofs.

use custos_core::merkle::{
    consistency_proof, empty_root, inclusion_proof, leaf_hash, node_hash, root, root_at,
    verify_consistency, verify_inclusion, CompactRange, Hash, MemoryTree,
};

/// The leaf inputs of the test tree, as hex.
const LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// `MTH(D[0:n])` for n = 0..=8.
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// (index, size, audit path).
const INCLUSION: &[(u64, u64, &[&str])] = &[
    (0, 1, &[]),
    (
        0,
        2,
        &["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"],
    ),
    (
        1,
        2,
        &["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"],
    ),
    (
        2,
        3,
        &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    ),
    (
        1,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        0,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

/// (old size, new size, consistency proof).
const CONSISTENCY: &[(u64, u64, &[&str])] = &[
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        3,
        7,
        &[
            "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
            "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "837dbb152e9b079010717e84e865da4ebc0fa198a806d59d31bf15accef22d0e",
        ],
    ),
    (
        4,
        7,
        &["837dbb152e9b079010717e84e865da4ebc0fa198a806d59d31bf15accef22d0e"],
    ),
    (
        6,
        7,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

fn h(hex: &str) -> Hash {
    Hash::from_hex(hex).unwrap()
}

fn hs(hexes: &[&str]) -> Vec<Hash> {
    hexes.iter().map(|x| h(x)).collect()
}

fn leaf_hashes() -> Vec<Hash> {
    LEAVES
        .iter()
        .map(|x| leaf_hash(&hex::decode(x).unwrap()))
        .collect()
}

#[test]
fn empty_tree_and_hash_prefixes() {
    assert_eq!(empty_root(), h(ROOTS[0]));
    assert_eq!(root(&[]), empty_root());
    assert_eq!(CompactRange::new().root(), empty_root());
    // The leaf of the empty entry is the one-leaf root.
    assert_eq!(leaf_hash(b""), h(ROOTS[1]));
    let l = leaf_hashes();
    assert_eq!(node_hash(&l[0], &l[1]), h(ROOTS[2]));
}

#[test]
fn roots_for_every_prefix() {
    let leaves = leaf_hashes();
    let tree = MemoryTree::from_leaves(&leaves);
    let mut range = CompactRange::new();
    for size in 0..=8usize {
        let want = h(ROOTS[size]);
        assert_eq!(root(&leaves[..size]), want, "root of size {size}");
        assert_eq!(
            root_at(&tree, size as u64).unwrap(),
            want,
            "stored root {size}"
        );
        assert_eq!(range.root(), want, "compact range root {size}");
        assert_eq!(range.size(), size as u64);
        if size < 8 {
            range.append(leaves[size]);
        }
    }
    assert_eq!(tree.root().to_hex(), ROOTS[8]);
    // The interior node the CT vectors quote, MTH(D[2:4]), is stored.
    assert_eq!(
        custos_core::merkle::NodeSource::node(
            &tree,
            custos_core::merkle::NodeId { level: 1, index: 1 }
        )
        .unwrap()
        .to_hex(),
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"
    );
}

#[test]
fn published_inclusion_proofs() {
    let leaves = leaf_hashes();
    let tree = MemoryTree::from_leaves(&leaves);
    for &(index, size, path) in INCLUSION {
        let want = hs(path);
        let got = inclusion_proof(&tree, index, size).unwrap();
        assert_eq!(got, want, "path of leaf {index} in size {size}");
        let r = h(ROOTS[size as usize]);
        verify_inclusion(&leaves[index as usize], index, size, &want, &r).unwrap();
        // The same proof for another leaf of the tree fails.
        let other = (index + 1) % size;
        if other != index {
            assert!(verify_inclusion(&leaves[other as usize], index, size, &want, &r).is_err());
        }
    }
}

#[test]
fn published_consistency_proofs() {
    let tree = MemoryTree::from_leaves(&leaf_hashes());
    for &(old, new, path) in CONSISTENCY {
        let want = hs(path);
        let got = consistency_proof(&tree, old, new).unwrap();
        assert_eq!(got, want, "consistency {old} -> {new}");
        let (r1, r2) = (h(ROOTS[old as usize]), h(ROOTS[new as usize]));
        verify_consistency(old, new, &want, &r1, &r2).unwrap();
        if old != new {
            // Swapping the roots must fail.
            assert!(verify_consistency(old, new, &want, &r2, &r1).is_err());
        }
    }
}

#[test]
fn every_proof_of_the_test_tree_verifies() {
    let leaves = leaf_hashes();
    let tree = MemoryTree::from_leaves(&leaves);
    for size in 1..=8u64 {
        let r = h(ROOTS[size as usize]);
        for index in 0..size {
            let proof = inclusion_proof(&tree, index, size).unwrap();
            verify_inclusion(&leaves[index as usize], index, size, &proof, &r).unwrap();
        }
        for old in 0..=size {
            let proof = consistency_proof(&tree, old, size).unwrap();
            verify_consistency(old, size, &proof, &h(ROOTS[old as usize]), &r).unwrap();
        }
    }
}
