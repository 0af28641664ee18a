//! Witnesses, cosignatures, tlog-proofs and policies: the adversary's cases
//! first (a forked log, a stale size, a forged log signature, a doctored
//! cosignature, too few cosignatures, a flipped byte in a proof), then the
//! formats' round trips.

use custos_core::checkpoint::Checkpoint;
use custos_core::cosignature::{cosign, CosignatureError, CosignerKey};
use custos_core::keys::SigningKey;
use custos_core::merkle::{
    consistency_proof, inclusion_proof, leaf_hash, root_at, Hash, MemoryTree,
};
use custos_core::note::{NoteSignature, SignedNote};
use custos_core::policy::{Policy, PolicyError};
use custos_core::tlog_proof::{ProofError, TlogProof};
use custos_core::witness::{decide, AddCheckpoint, Refusal, TreeHead, WitnessedLog};
use proptest::prelude::*;

const ORIGIN: &str = "custos.example.org/ledger";

fn log_key() -> SigningKey {
    SigningKey::from_seed(ORIGIN, &[42; 32]).unwrap()
}

fn witness_key(n: u8) -> SigningKey {
    SigningKey::from_seed(&format!("witness{n}.example/w"), &[n; 32]).unwrap()
}

fn tree(entries: &[&[u8]]) -> MemoryTree {
    let leaves: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
    MemoryTree::from_leaves(&leaves)
}

fn entries(prefix: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{prefix}{i}").into_bytes())
        .collect()
}

fn signed(tree: &MemoryTree, size: u64, key: &SigningKey) -> SignedNote {
    let cp = Checkpoint::new(ORIGIN, size, root_at(tree, size).unwrap()).unwrap();
    SignedNote::parse(cp.sign(key).as_bytes()).unwrap()
}

fn logs() -> Vec<WitnessedLog> {
    vec![WitnessedLog {
        origin: ORIGIN.into(),
        keys: vec![log_key().verifier_key()],
    }]
}

fn request(tree: &MemoryTree, old: u64, new: u64, key: &SigningKey) -> AddCheckpoint {
    AddCheckpoint {
        old_size: old,
        proof: consistency_proof(tree, old, new).unwrap(),
        checkpoint: signed(tree, new, key),
    }
}

fn head(tree: &MemoryTree, size: u64) -> TreeHead {
    TreeHead {
        size,
        root: root_at(tree, size).unwrap(),
    }
}

fn refs(v: &[Vec<u8>]) -> Vec<&[u8]> {
    v.iter().map(Vec::as_slice).collect()
}

#[test]
fn a_witness_refuses_a_forked_log() {
    // Two ledgers with the same key and origin share entries 0..5, then
    // diverge.
    let common = entries("e", 5);
    let mut a = common.clone();
    a.extend(entries("a", 4));
    let mut b = common;
    b.extend(entries("b", 4));
    let (ta, tb) = (tree(&refs(&a)), tree(&refs(&b)));
    // The witness cosigned A at size 7.
    let stored = Some(head(&ta, 7));
    // B at size 9 with a proof from B's size 7: B's tree at 7 is not A's.
    let forked = request(&tb, 7, 9, &log_key());
    let refusal = decide(&logs(), |_| stored, &forked).unwrap_err();
    assert!(matches!(refusal, Refusal::BadProof { .. }), "{refusal}");
    assert_eq!(refusal.status(), 422);
    // B at the witness's own size 7: another root at the same size.
    let same_size = request(&tb, 7, 7, &log_key());
    let refusal = decide(&logs(), |_| stored, &same_size).unwrap_err();
    assert_eq!(refusal, Refusal::RootConflict { size: 7 });
    assert_eq!(refusal.status(), 409);
    // A's own extension is accepted.
    let (_, cp) = decide(&logs(), |_| stored, &request(&ta, 7, 9, &log_key())).unwrap();
    assert_eq!(cp.size(), 9);
    // A proof that splices A's proof onto B's checkpoint fails too.
    let spliced = AddCheckpoint {
        old_size: 7,
        proof: consistency_proof(&ta, 7, 9).unwrap(),
        checkpoint: signed(&tb, 9, &log_key()),
    };
    assert_eq!(
        decide(&logs(), |_| stored, &spliced).unwrap_err().status(),
        422
    );
}

#[test]
fn a_stale_old_size_gets_409_with_the_witness_size() {
    let e = entries("e", 10);
    let t = tree(&refs(&e));
    let stored = Some(head(&t, 6));
    for old in [0, 3, 5, 7] {
        let refusal = decide(&logs(), |_| stored, &request(&t, old, 10, &log_key())).unwrap_err();
        assert_eq!(
            refusal,
            Refusal::StaleSize {
                claimed: old,
                size: 6
            }
        );
        assert_eq!(refusal.status(), 409);
    }
    // Going backwards: a checkpoint smaller than what was cosigned.
    let back = decide(&logs(), |_| stored, &request(&t, 4, 4, &log_key())).unwrap_err();
    assert_eq!(back.status(), 409);
    // Old size above the new size: 400.
    let mut r = request(&t, 6, 6, &log_key());
    r.old_size = 9;
    assert_eq!(decide(&logs(), |_| stored, &r).unwrap_err().status(), 400);
}

#[test]
fn a_bad_log_signature_gets_403_and_an_unknown_origin_404() {
    let e = entries("e", 3);
    let t = tree(&refs(&e));
    // Same name, another key: the key ID differs, so no trusted signature.
    let impostor = SigningKey::from_seed(ORIGIN, &[1; 32]).unwrap();
    let refusal = decide(&logs(), |_| None, &request(&t, 0, 3, &impostor)).unwrap_err();
    assert_eq!(refusal.status(), 403);
    // The right key ID, a doctored signature.
    let mut r = request(&t, 0, 3, &log_key());
    let text = r.checkpoint.to_string();
    let doctored = text.replacen(
        &root_at(&t, 3).unwrap().to_string(),
        &root_at(&t, 2).unwrap().to_string(),
        1,
    );
    r.checkpoint = SignedNote::parse(doctored.as_bytes()).unwrap();
    assert_eq!(decide(&logs(), |_| None, &r).unwrap_err().status(), 403);
    // Another origin.
    let other = SigningKey::from_seed("other.example/log", &[42; 32]).unwrap();
    let cp = Checkpoint::new("other.example/log", 3, root_at(&t, 3).unwrap()).unwrap();
    let r = AddCheckpoint {
        old_size: 0,
        proof: vec![],
        checkpoint: SignedNote::parse(cp.sign(&other).as_bytes()).unwrap(),
    };
    assert_eq!(decide(&logs(), |_| None, &r).unwrap_err().status(), 404);
}

fn policy(witnesses: &[u8], quorum: usize) -> Policy {
    Policy::new(
        vec![log_key().verifier_key()],
        witnesses
            .iter()
            .map(|&n| (CosignerKey::of(&witness_key(n)).unwrap(), None))
            .collect(),
        quorum,
    )
    .unwrap()
}

fn cosigned(t: &MemoryTree, size: u64, by: &[u8]) -> SignedNote {
    let mut note = signed(t, size, &log_key());
    for &n in by {
        let sig = cosign(&witness_key(n), note.text(), 1_700_000_000 + u64::from(n)).unwrap();
        note.push_signature(sig).unwrap();
    }
    note
}

#[test]
fn doctored_or_too_few_cosignatures_fail_the_policy() {
    let e = entries("e", 4);
    let t = tree(&refs(&e));
    let p = policy(&[1, 2, 3], 2);
    let ok = p.verify(&cosigned(&t, 4, &[1, 3]).to_bytes()).unwrap();
    assert_eq!(ok.witnesses, ["witness1.example/w", "witness3.example/w"]);
    // Too few.
    let err = p.verify(&cosigned(&t, 4, &[2]).to_bytes()).unwrap_err();
    assert!(matches!(
        err,
        PolicyError::Cosignatures(CosignatureError::NoQuorum {
            got: 1,
            quorum: 2,
            ..
        })
    ));
    // The same witness twice counts once.
    let mut twice = cosigned(&t, 4, &[2]);
    let again = cosign(&witness_key(2), twice.text(), 5).unwrap();
    let text = format!("{twice}{again}\n");
    twice = SignedNote::parse(text.as_bytes()).unwrap();
    assert_eq!(twice.signatures().len(), 3);
    assert!(p.verify(&twice.to_bytes()).is_err());
    // A doctored cosignature (a flipped bit in the timestamp).
    let note = cosigned(&t, 4, &[1, 2]);
    let mut sigs = note.signatures().to_vec();
    let w = &sigs[1];
    let mut bytes = w.signature().to_vec();
    bytes[7] ^= 1;
    sigs[1] = NoteSignature::new(w.name(), w.key_hash(), bytes).unwrap();
    let mut doctored = signed(&t, 4, &log_key());
    for s in sigs.into_iter().skip(1) {
        doctored.push_signature(s).unwrap();
    }
    let err = p.verify(&doctored.to_bytes()).unwrap_err();
    assert!(
        matches!(
            err,
            PolicyError::Cosignatures(CosignatureError::Invalid { .. })
        ),
        "{err}"
    );
    // A cosignature moved onto another checkpoint.
    let other = cosigned(&t, 3, &[]);
    let mut moved = other.clone();
    for s in cosigned(&t, 4, &[1, 2]).signatures().iter().skip(1) {
        moved.push_signature(s.clone()).unwrap();
    }
    assert!(p.verify(&moved.to_bytes()).is_err());
}

fn proof_for(t: &MemoryTree, index: u64, size: u64, by: &[u8]) -> TlogProof {
    TlogProof {
        extra: None,
        index,
        proof: inclusion_proof(t, index, size).unwrap(),
        checkpoint: cosigned(t, size, by),
    }
}

#[test]
fn a_flipped_byte_in_a_tlog_proof_fails() {
    let e = entries("e", 11);
    let t = tree(&refs(&e));
    let p = policy(&[1, 2], 1);
    let proof = proof_for(&t, 6, 11, &[2]);
    let bytes = proof.to_bytes();
    let parsed = TlogProof::parse(&bytes).unwrap();
    assert_eq!(parsed, proof);
    parsed.verify(&e[6], 6, &p).unwrap();
    // Another entry, another index.
    assert!(parsed.verify(&e[5], 6, &p).is_err());
    assert!(matches!(
        parsed.verify(&e[6], 5, &p),
        Err(ProofError::WrongIndex { .. })
    ));
    // Every single flipped byte is refused, in parsing or in verifying.
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x01;
        if let Ok(doctored) = TlogProof::parse(&b) {
            assert!(
                doctored.verify(&e[6], 6, &p).is_err(),
                "flipping byte {i} ({:?}) went unnoticed",
                bytes[i] as char
            );
        }
    }
}

#[test]
fn tlog_proof_reads_extra_and_refuses_malformed() {
    let e = entries("e", 2);
    let t = tree(&refs(&e));
    let mut proof = proof_for(&t, 0, 2, &[]);
    proof.extra = Some(b"anything".to_vec());
    let text = proof.to_string();
    assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra YW55dGhpbmc=\nindex 0\n"));
    assert_eq!(TlogProof::parse(text.as_bytes()).unwrap(), proof);
    for bad in [
        "c2sp.org/tlog-proof@v2\nindex 0\n\n",
        "c2sp.org/tlog-proof@v1\nindex 01\n\n",
        "c2sp.org/tlog-proof@v1\nindex 0\nnot base64\n\n",
        "c2sp.org/tlog-proof@v1\nindex 0\n",
    ] {
        assert!(TlogProof::parse(bad.as_bytes()).is_err(), "{bad:?}");
    }
}

#[test]
fn add_checkpoint_body_layout() {
    let e = entries("e", 9);
    let t = tree(&refs(&e));
    let r = request(&t, 5, 9, &log_key());
    let text = r.to_string();
    assert!(text.starts_with("old 5\n"));
    let after_proof = text.split('\n').nth(1 + r.proof.len()).unwrap();
    assert_eq!(after_proof, "");
    assert_eq!(AddCheckpoint::parse(text.as_bytes()).unwrap(), r);
    for bad in [
        "old 05\n\n",
        "old\n\n",
        "old 1\nnot-a-hash\n\n",
        "old 1\n",
        "new 1\n\n",
    ] {
        let body = format!("{bad}{}", r.checkpoint);
        assert!(AddCheckpoint::parse(body.as_bytes()).is_err(), "{bad:?}");
    }
    let too_long = format!(
        "old 1\n{}\n{}",
        (0..64)
            .map(|_| format!("{}\n", leaf_hash(b"x")))
            .collect::<String>(),
        r.checkpoint
    );
    assert!(AddCheckpoint::parse(too_long.as_bytes()).is_err());
}

#[test]
fn policy_file_reads_and_refuses() {
    let p = policy(&[1, 2], 2).with_origin(Some(ORIGIN.into()));
    let text = p.to_string();
    assert!(text.contains(&format!("\norigin {ORIGIN}\n")), "{text}");
    assert_eq!(Policy::parse(text.as_bytes()).unwrap(), p);
    // The origin is enforced.
    let e = entries("e", 2);
    let t = tree(&refs(&e));
    let other = SigningKey::from_seed(ORIGIN, &[42; 32]).unwrap();
    let cp = Checkpoint::new("other.example/log", 2, root_at(&t, 2).unwrap()).unwrap();
    let mut note = SignedNote::parse(cp.sign(&other).as_bytes()).unwrap();
    for n in [1, 2] {
        let sig = cosign(&witness_key(n), note.text(), 9).unwrap();
        note.push_signature(sig).unwrap();
    }
    assert!(policy(&[1, 2], 2).verify(&note.to_bytes()).is_ok());
    assert!(p.verify(&note.to_bytes()).is_err());
    let w = CosignerKey::of(&witness_key(1)).unwrap();
    let log = log_key().verifier_key();
    let with_url = format!("log {log}\n\n# c\nwitness {w} https://w.example/\nquorum 1\n");
    assert_eq!(Policy::parse(with_url.as_bytes()).unwrap().quorum(), 1);
    for (bad, why) in [
        (format!("witness {w}\nquorum 1\n"), "no log"),
        (format!("log {log}\nwitness {w}\n"), "no quorum"),
        (
            format!("log {log}\nwitness {w}\nquorum 2\n"),
            "quorum too large",
        ),
        (
            format!("log {log}\nwitness {w}\nwitness {w}\nquorum 1\n"),
            "twice",
        ),
        (
            format!("log {log}\nwitness {log}\nquorum 0\n"),
            "a note key as witness",
        ),
        (format!("log {w}\nquorum 0\n"), "a witness key as log"),
        (format!("log {log}\nquorum 0\nquorum 0\n"), "two quorums"),
        (format!("log {log}\nquorum -1\n"), "negative"),
        (format!("log {log}\nquorum 0\ngroup x\n"), "unknown keyword"),
    ] {
        assert!(Policy::parse(bad.as_bytes()).is_err(), "{why}");
    }
}

proptest! {
    #[test]
    fn witness_accepts_exactly_the_log_that_extends_what_it_saw(
        n in 1usize..40, old in 0u64..40, new in 0u64..40, fork_at in 0usize..40,
    ) {
        let a = entries("a", n);
        let ta = tree(&refs(&a));
        let (old, new) = (old.min(n as u64), new.min(n as u64));
        prop_assume!(old <= new);
        let stored = Some(head(&ta, old));
        let r = request(&ta, old, new, &log_key());
        let (_, cp) = decide(&logs(), |_| stored, &r).unwrap();
        prop_assert_eq!(cp.size(), new);
        // Round trip of the request.
        prop_assert_eq!(AddCheckpoint::parse(&r.to_bytes()).unwrap(), r);
        // A log that differs from A at some entry below `old` is refused.
        let fork_at = fork_at.min(n - 1);
        if (fork_at as u64) < old {
            let mut b = a.clone();
            b[fork_at] = b"forged".to_vec();
            let tb = tree(&refs(&b));
            let forked = request(&tb, old, new, &log_key());
            prop_assert!(decide(&logs(), |_| stored, &forked).is_err());
        }
    }

    #[test]
    fn every_inclusion_proof_verifies_and_round_trips(n in 1u64..70, i in 0u64..70) {
        let e = entries("e", n as usize);
        let t = tree(&refs(&e));
        let i = i % n;
        let p = policy(&[1], 1);
        let proof = proof_for(&t, i, n, &[1]);
        let back = TlogProof::parse(&proof.to_bytes()).unwrap();
        prop_assert_eq!(&back, &proof);
        prop_assert!(back.verify(&e[i as usize], i, &p).is_ok());
    }

    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = AddCheckpoint::parse(&bytes);
        let _ = TlogProof::parse(&bytes);
        let _ = Policy::parse(&bytes);
        if let Ok(s) = std::str::from_utf8(&bytes) {
            let _ = s.parse::<CosignerKey>();
            let _ = NoteSignature::parse_lines(s);
        }
    }
}
