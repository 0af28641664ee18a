//! Step 13 of the bundle verifier: tlog-proofs against a checkpoint the
//! witnesses cosigned, and an auditor's policy. An honest witnessed bundle
//! passes; too few or doctored cosignatures, a flipped byte in a tlog-proof,
//! a missing or stray proof, and another ledger's checkpoint all fail,
//! naming the file.

use crate::bundle_support::*;
use custos_core::bundle::{self, tlog_proof_path, BundleError, Problem, POLICY_PATH};
use custos_core::checkpoint::Checkpoint;
use custos_core::cosignature::{cosign, CosignerKey};
use custos_core::keys::SigningKey;
use custos_core::merkle::{inclusion_proof, MemoryTree};
use custos_core::note::SignedNote;
use custos_core::policy::Policy;
use custos_core::tlog_proof::TlogProof;

const ORIGIN: &str = "custos.example.org/ledger";

fn witness(n: u8) -> SigningKey {
    SigningKey::from_seed(&format!("w{n}.example/w"), &[100 + n; 32]).unwrap()
}

fn policy(f: &Fixture, witnesses: &[u8], quorum: usize) -> Policy {
    Policy::new(
        vec![f.ledger.verifier_key()],
        witnesses
            .iter()
            .map(|&n| (CosignerKey::of(&witness(n)).unwrap(), None))
            .collect(),
        quorum,
    )
    .unwrap()
}

/// The checkpoint of `tree` signed by `ledger` and cosigned by `by`.
fn cosigned(tree: &MemoryTree, ledger: &SigningKey, by: &[u8]) -> SignedNote {
    let cp = Checkpoint::new(ORIGIN, tree.size(), tree.root()).unwrap();
    let mut note = SignedNote::parse(cp.sign(ledger).as_bytes()).unwrap();
    for &n in by {
        note.push_signature(cosign(&witness(n), note.text(), 1_714_700_000).unwrap())
            .unwrap();
    }
    note
}

/// The honest bundle with a tlog-proof per entry against the whole log's
/// checkpoint (size 11) cosigned by `by`, and the ledger's policy.
fn witnessed(f: &Fixture, by: &[u8]) -> Vec<(String, Vec<u8>)> {
    let note = cosigned(&f.full_tree, &f.ledger, by);
    let mut members = unpack(&f.bundle());
    for line in f.bundle_lines() {
        let proof = TlogProof {
            extra: None,
            index: line.seq,
            proof: inclusion_proof(&f.full_tree, line.seq, f.full_tree.size()).unwrap(),
            checkpoint: note.clone(),
        };
        members.push((tlog_proof_path(line.seq), proof.to_bytes()));
    }
    members.push((
        POLICY_PATH.into(),
        policy(f, &[1, 2], 1).to_string().into_bytes(),
    ));
    members
}

fn check(tar: &[u8], f: &Fixture, policy: Option<&Policy>) -> Result<bundle::Report, BundleError> {
    bundle::verify_with_policy(tar, &[f.ledger.verifier_key()], policy, &mut |_| {})
}

fn problem(err: BundleError) -> (String, Problem) {
    let message = err.to_string();
    assert!(!message.contains('\n'), "{message}");
    match err {
        BundleError::Invalid { location, problem } => (location, problem),
        other => panic!("not invalid: {other}"),
    }
}

#[test]
fn a_witnessed_bundle_passes_the_policy_and_today_s_rule() {
    let f = Fixture::new();
    let tar = pack(&witnessed(&f, &[1, 2]));
    let report = check(&tar, &f, Some(&policy(&f, &[1, 2, 3], 2))).unwrap();
    assert!(report.is_valid());
    let w = report.witnessed.unwrap();
    assert_eq!(w.proofs, 7);
    assert_eq!(w.size, 11);
    assert_eq!(w.witnesses, ["w1.example/w", "w2.example/w"]);
    assert_eq!(w.quorum, Some(2));
    // --ledger-key alone: today's rule, the proofs still checked.
    let report = check(&tar, &f, None).unwrap();
    assert_eq!(report.witnessed.unwrap().quorum, None);
    // An old bundle without tlog-proofs: valid without a policy, refused
    // with one.
    assert!(check(&f.bundle(), &f, None).unwrap().witnessed.is_none());
    let (location, p) = problem(check(&f.bundle(), &f, Some(&policy(&f, &[1], 0))).unwrap_err());
    assert!(matches!(p, Problem::MissingTlogProof { .. }), "{p}");
    assert!(location.starts_with("entries.jsonl line 1"), "{location}");
}

#[test]
fn too_few_or_doctored_cosignatures_fail_the_policy() {
    let f = Fixture::new();
    let p = policy(&f, &[1, 2, 3], 2);
    // One cosignature where two are required.
    let tar = pack(&witnessed(&f, &[1]));
    assert!(check(&tar, &f, None).is_ok());
    let (location, problem_) = problem(check(&tar, &f, Some(&p)).unwrap_err());
    assert_eq!(location, tlog_proof_path(2));
    assert!(
        problem_.to_string().contains("the policy requires 2"),
        "{problem_}"
    );
    // Cosigned by witnesses the policy does not name.
    let tar = pack(&witnessed(&f, &[4, 5]));
    assert!(check(&tar, &f, Some(&p)).is_err());
    // A doctored cosignature: one byte of witness 2's signature changed in
    // every proof.
    let mut members = witnessed(&f, &[1, 2]);
    for (path, bytes) in members.iter_mut() {
        if path.starts_with("tlog-proofs/") {
            let text = String::from_utf8(bytes.clone()).unwrap();
            let line = text.lines().last().unwrap().to_owned();
            let mut doctored = line.clone();
            let at = doctored.len() - 10;
            let c = if &doctored[at..=at] == "A" { "B" } else { "A" };
            doctored.replace_range(at..=at, c);
            *bytes = text.replace(&line, &doctored).into_bytes();
        }
    }
    let (_, problem_) = problem(check(&pack(&members), &f, Some(&p)).unwrap_err());
    assert!(
        problem_.to_string().contains("does not verify"),
        "{problem_}"
    );
}

#[test]
fn a_flipped_byte_in_a_tlog_proof_fails() {
    let f = Fixture::new();
    let members = witnessed(&f, &[1, 2]);
    let p = policy(&f, &[1, 2], 2);
    let path = tlog_proof_path(4);
    let original = members.iter().find(|(n, _)| *n == path).unwrap().1.clone();
    let mut missed = Vec::new();
    for at in 0..original.len() {
        let mut m = members.clone();
        member(&mut m, &path)[at] ^= 0x01;
        match check(&pack(&m), &f, Some(&p)) {
            Err(e) => assert_eq!(e.location(), Some(path.as_str()), "{e}"),
            Ok(_) => missed.push(at),
        }
    }
    assert!(
        missed.is_empty(),
        "flipped bytes at {missed:?} went unnoticed"
    );
    // Even without a policy, a broken proof fails under the pinned key.
    let mut m = members.clone();
    let at = original.len() / 3;
    member(&mut m, &path)[at] ^= 0x01;
    assert!(check(&pack(&m), &f, None).is_err());
}

#[test]
fn missing_stray_or_foreign_tlog_proofs_are_named() {
    let f = Fixture::new();
    let p = policy(&f, &[1, 2], 1);
    // A proof missing.
    let mut m = witnessed(&f, &[1]);
    remove(&mut m, &tlog_proof_path(7));
    let (location, problem_) = problem(check(&pack(&m), &f, Some(&p)).unwrap_err());
    assert!(matches!(problem_, Problem::MissingTlogProof { .. }));
    assert!(location.contains("seq 7"), "{location}");
    // A proof for an entry the bundle does not hold.
    let mut m = witnessed(&f, &[1]);
    let stray = m
        .iter()
        .find(|(n, _)| *n == tlog_proof_path(4))
        .unwrap()
        .1
        .clone();
    m.push((tlog_proof_path(6), stray));
    let (location, problem_) = problem(check(&pack(&m), &f, None).unwrap_err());
    assert_eq!(location, tlog_proof_path(6));
    assert!(matches!(
        problem_,
        Problem::TlogProofWithoutEntry { seq: 6 }
    ));
    // Another entry's proof under this entry's name.
    let mut m = witnessed(&f, &[1]);
    let other = m
        .iter()
        .find(|(n, _)| *n == tlog_proof_path(5))
        .unwrap()
        .1
        .clone();
    *member(&mut m, &tlog_proof_path(4)) = other;
    assert!(check(&pack(&m), &f, Some(&p)).is_err());
    // A checkpoint by another ledger key, cosigned by the right witnesses.
    let impostor = SigningKey::from_seed("ledger", &[9; 32]).unwrap();
    let note = cosigned(&f.full_tree, &impostor, &[1, 2]);
    let mut m = unpack(&f.bundle());
    for line in f.bundle_lines() {
        let proof = TlogProof {
            extra: None,
            index: line.seq,
            proof: inclusion_proof(&f.full_tree, line.seq, f.full_tree.size()).unwrap(),
            checkpoint: note.clone(),
        };
        m.push((tlog_proof_path(line.seq), proof.to_bytes()));
    }
    assert!(check(&pack(&m), &f, Some(&p)).is_err());
    assert!(check(&pack(&m), &f, None).is_err());
    // A malformed policy.txt in the bundle.
    let mut m = witnessed(&f, &[1]);
    *member(&mut m, POLICY_PATH) = b"quorum x\n".to_vec();
    let (location, _) = problem(check(&pack(&m), &f, None).unwrap_err());
    assert_eq!(location, POLICY_PATH);
}
