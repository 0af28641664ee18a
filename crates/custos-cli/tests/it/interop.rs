//! Custos's witnessed checkpoints and tlog-proofs read by code Custos did
//! not write: the `signed_note` and `tlog_tiles` crates (Cloudflare's Rust
//! ports of Go's `golang.org/x/mod/sumdb/note` and `tlog`).
//!
//! What they check here: the signed note's syntax and signature lines, the
//! ledger's Ed25519 signature under its verifier key string, the witness's
//! key ID (their `key_id` over the name and `0x04 || key`), the checkpoint
//! body, and each tlog-proof's inclusion proof (`check_record`, RFC 6962's
//! audit path, with their leaf hash). Neither crate implements C2SP
//! `cosignature/v1`, so the one part written here is the cosigned message
//! (`cosignature/v1`, the time line, the note text) that `CosignatureV1`
//! hands to ed25519-dalek; their `Note::verify` still decides which
//! signature line it applies to. And the tiles of every tree size from 1
//! to 257 (every partial width of level 0, the first full tile, the first
//! partial tile of level 1), as custos-core's `TileBuilder` makes them for
//! `custos verify log --tiles`: their paths are the ones Go's tlog
//! publishes, and `tlog_tiles`'s `TileHashReader` authenticates them
//! against the root and proves records from them.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use signed_note::{Note, StandardVerifier, Verifier, VerifierList};
use tlog_tiles::{check_record, record_hash, Checkpoint, Hash};

/// A witness's `cosignature/v1` key, as a signed_note verifier.
struct CosignatureV1 {
    name: String,
    id: u32,
    key: ed25519_dalek::VerifyingKey,
}

impl CosignatureV1 {
    /// From a `name+hash+base64(0x04 || key)` line.
    fn new(vkey: &str) -> CosignatureV1 {
        let mut parts = vkey.splitn(3, '+');
        let name = parts.next().unwrap().to_owned();
        let hash = parts.next().unwrap();
        let data = B64.decode(parts.next().unwrap()).unwrap();
        assert_eq!(data[0], 0x04, "a cosignature/v1 key has type 0x04");
        let id = signed_note::key_id(&name, &data);
        assert_eq!(format!("{id:08x}"), hash, "the key hash is theirs too");
        let key = ed25519_dalek::VerifyingKey::from_bytes(&data[1..].try_into().unwrap()).unwrap();
        CosignatureV1 { name, id, key }
    }
}

impl Verifier for CosignatureV1 {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> u32 {
        self.id
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let Some((time, sig)) = sig.split_first_chunk::<8>() else {
            return false;
        };
        let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else {
            return false;
        };
        let mut signed =
            format!("cosignature/v1\ntime {}\n", u64::from_be_bytes(*time)).into_bytes();
        signed.extend_from_slice(msg);
        self.key.verify_strict(&signed, &sig).is_ok()
    }
}

/// Check a cosigned checkpoint note with signed_note and tlog_tiles:
/// both the ledger's signature and the witness's cosignature verify.
/// Returns the checkpoint as tlog_tiles reads it.
pub(crate) fn check_cosigned(note: &[u8], ledger_vkey: &str, witness_vkey: &str) -> Checkpoint {
    let note = Note::from_bytes(note).expect("signed_note parses the checkpoint");
    let ledger = StandardVerifier::new(ledger_vkey).expect("signed_note reads the ledger key");
    let witness = CosignatureV1::new(witness_vkey);
    let (ledger_name, witness_name, witness_id) =
        (ledger.name().to_owned(), witness.name.clone(), witness.id);
    let known = VerifierList::new(vec![Box::new(ledger), Box::new(witness)]);
    let (verified, _unknown) = note.verify(&known).expect("signed_note verifies the note");
    assert!(verified.iter().any(|s| s.name() == ledger_name));
    assert!(
        verified
            .iter()
            .any(|s| s.name() == witness_name && s.id() == witness_id),
        "the witness's cosignature is among the verified ones"
    );
    Checkpoint::from_bytes(note.text()).expect("tlog_tiles parses the checkpoint body")
}

/// Check a tlog-proof file for the entry `raw` (its leaf bytes) with
/// signed_note and tlog_tiles; returns its index.
pub(crate) fn check_tlog_proof(
    proof: &[u8],
    raw: &[u8],
    ledger_vkey: &str,
    witness_vkey: &str,
) -> u64 {
    let text = std::str::from_utf8(proof).unwrap();
    let (head, note) = text.split_once("\n\n").unwrap();
    let mut lines = head.lines();
    assert_eq!(lines.next(), Some("c2sp.org/tlog-proof@v1"));
    let index: u64 = lines
        .next()
        .and_then(|l| l.strip_prefix("index "))
        .unwrap()
        .parse()
        .unwrap();
    let path: Vec<Hash> = lines.map(|l| Hash::parse_hash(l).unwrap()).collect();
    let checkpoint = check_cosigned(note.as_bytes(), ledger_vkey, witness_vkey);
    check_record(
        &path,
        checkpoint.size(),
        *checkpoint.hash(),
        index,
        record_hash(raw),
    )
    .expect("tlog_tiles checks the inclusion proof");
    index
}

/// A tile's C2SP tlog-tiles path from `tlog_tiles`'s, which names tiles as
/// Go's sumdb does, with their height (`tile/8/0/000.p/1`): C2SP fixes the
/// height at 8 and leaves it out (`tile/0/000.p/1`). The one translation
/// this test makes.
fn c2sp_path(tile: &tlog_tiles::Tile) -> String {
    let path = tile.path();
    let rest = path
        .strip_prefix("tile/8/")
        .unwrap_or_else(|| panic!("{path}: not a tile of height 8"));
    format!("tile/{rest}")
}

/// Custos's tiles as `tlog_tiles` asks for them: by path.
struct CustosTiles(std::collections::HashMap<String, Vec<u8>>);

impl tlog_tiles::TileReader for CustosTiles {
    fn height(&self) -> u8 {
        8
    }

    fn read_tiles(&self, tiles: &[tlog_tiles::Tile]) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
        tiles
            .iter()
            .map(|t| {
                self.0
                    .get(&c2sp_path(t))
                    .cloned()
                    .ok_or(tlog_tiles::Error::InvalidTile)
            })
            .collect()
    }

    fn save_tiles(&self, _tiles: &[tlog_tiles::Tile], _data: &[Vec<u8>]) {}
}

#[test]
fn tiles_of_every_partial_size_from_1_to_257_are_read_by_tlog_tiles() {
    use custos_core::merkle::{leaf_hash, CompactRange};
    use custos_core::tiles::{new_tiles, TileBuilder};
    use std::collections::{BTreeSet, HashMap};
    use tlog_tiles::{prove_record, tree_hash, Tile, TileHashReader};

    let bytes = |hashes: &[custos_core::merkle::Hash]| -> Vec<u8> {
        hashes.iter().flat_map(|h| h.to_bytes()).collect()
    };
    for n in 1u64..=257 {
        let entries: Vec<Vec<u8>> = (0..n)
            .map(|i| format!("{{\"seq\":{i},\"subject\":\"s-{i}\"}}").into_bytes())
            .collect();
        // Custos's tiles of a tree of size n: full ones as the leaves come,
        // then the partial ones at the edge.
        let mut builder = TileBuilder::new();
        let mut range = CompactRange::new();
        let mut tiles = HashMap::new();
        for entry in &entries {
            let leaf = leaf_hash(entry);
            range.push(leaf);
            for (id, hashes) in builder.push(leaf) {
                tiles.insert(id.path(), bytes(&hashes));
            }
        }
        for (id, hashes) in builder.partial_tiles() {
            tiles.insert(id.path(), bytes(&hashes));
        }
        // The same tiles, at the same paths, as Go's tlog publishes.
        let ours: BTreeSet<String> = new_tiles(0, n).map(|t| t.path()).collect();
        let theirs: BTreeSet<String> = Tile::new_tiles(8, 0, n).iter().map(c2sp_path).collect();
        assert_eq!(ours, theirs, "size {n}: tile paths");
        assert_eq!(
            tiles.keys().cloned().collect::<BTreeSet<_>>(),
            theirs,
            "size {n}: tiles built"
        );
        // Their reader authenticates our tiles against our root, and
        // proves records from them.
        let root = Hash(range.root().to_bytes());
        let reader = CustosTiles(tiles);
        let hashes = TileHashReader::new(n, root, &reader);
        assert_eq!(tree_hash(n, &hashes).unwrap(), root, "size {n}: root");
        for i in BTreeSet::from([0, n / 2, n - 1]) {
            let proof = prove_record(n, i, &hashes).unwrap();
            check_record(&proof, n, root, i, record_hash(&entries[i as usize]))
                .unwrap_or_else(|e| panic!("size {n}, record {i}: {e}"));
        }
    }
}
