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
//! signature line it applies to.

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
