//! An independent check of the log: this file re-derives every root and
//! proof from `/v1/entries` with its own small RFC 6962 code (SHA-256 from
//! `sha2` and the recursive definitions of RFC 6962 §2.1, nothing from
//! custos-core), checks the checkpoint's Ed25519 signature with
//! `ed25519-dalek` directly, and compares with what the ledger serves.

use axum::http::StatusCode;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use custos_ledger::Role;
use ed25519_dalek::Verifier as _;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::util::*;

type H = [u8; 32];

pub(crate) fn leaf(entry: &[u8]) -> H {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

fn node(l: &H, r: &H) -> H {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(l);
    h.update(r);
    h.finalize().into()
}

/// Largest power of two smaller than n (n > 1).
fn k(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// MTH(D[n]) of RFC 6962 §2.1.
fn mth(leaves: &[H]) -> H {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => node(&mth(&leaves[..k(n)]), &mth(&leaves[k(n)..])),
    }
}

/// PATH(m, D[n]) of RFC 6962 §2.1.1.
fn path(m: usize, leaves: &[H]) -> Vec<H> {
    let n = leaves.len();
    if n <= 1 {
        return vec![];
    }
    let k = k(n);
    if m < k {
        let mut p = path(m, &leaves[..k]);
        p.push(mth(&leaves[k..]));
        p
    } else {
        let mut p = path(m - k, &leaves[k..]);
        p.push(mth(&leaves[..k]));
        p
    }
}

/// SUBPROOF(m, D[n], b) of RFC 6962 §2.1.2.
fn subproof(m: usize, leaves: &[H], b: bool) -> Vec<H> {
    let n = leaves.len();
    if m == n {
        return if b { vec![] } else { vec![mth(leaves)] };
    }
    let k = k(n);
    if m <= k {
        let mut p = subproof(m, &leaves[..k], b);
        p.push(mth(&leaves[k..]));
        p
    } else {
        let mut p = subproof(m - k, &leaves[k..], false);
        p.push(mth(&leaves[..k]));
        p
    }
}

fn consistency(m: usize, leaves: &[H]) -> Vec<H> {
    if m == 0 || m == leaves.len() {
        vec![]
    } else {
        subproof(m, leaves, true)
    }
}

/// Recompute a root from a leaf and its audit path (RFC 6962 §2.1.1, walked
/// from the bottom), the way an auditor with only the proof would.
pub(crate) fn verify_inclusion(index: u64, size: u64, leaf: H, proof: &[H], root: H) -> bool {
    fn walk(m: u64, n: u64, leaf: H, proof: &[H]) -> Option<H> {
        if n == 1 {
            return proof.is_empty().then_some(leaf);
        }
        let (last, rest) = proof.split_last()?;
        let mut kk = 1;
        while kk * 2 < n {
            kk *= 2;
        }
        if m < kk {
            Some(node(&walk(m, kk, leaf, rest)?, last))
        } else {
            Some(node(last, &walk(m - kk, n - kk, leaf, rest)?))
        }
    }
    index < size && walk(index, size, leaf, proof) == Some(root)
}

fn b64(h: &H) -> String {
    B64.encode(h)
}

fn hashes(v: &Value) -> Vec<String> {
    v["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_owned())
        .collect()
}

/// The root line of a signed checkpoint (origin, size, root, blank, signatures).
pub(crate) fn checkpoint_root(text: &str) -> H {
    let root = text.lines().nth(2).unwrap();
    B64.decode(root).unwrap().try_into().unwrap()
}

/// Check a C2SP signed note's Ed25519 signature by hand: the signed message
/// is the text before the blank line (with its final newline); a signature
/// line is "— NAME base64(key hash (4) || signature (64))".
fn verify_note(text: &str, name: &str, public: &[u8; 32]) {
    let (body, sigs) = text.split_once("\n\n").unwrap();
    let message = format!("{body}\n");
    let line = sigs
        .lines()
        .find(|l| l.starts_with(&format!("\u{2014} {name} ")))
        .expect("a signature line by the ledger key");
    let blob = B64.decode(line.rsplit(' ').next().unwrap()).unwrap();
    assert_eq!(blob.len(), 68);
    let mut key_hash_input = name.as_bytes().to_vec();
    key_hash_input.push(b'\n');
    key_hash_input.push(0x01);
    key_hash_input.extend_from_slice(public);
    assert_eq!(
        &blob[..4],
        &Sha256::digest(&key_hash_input)[..4],
        "key hash"
    );
    let key = ed25519_dalek::VerifyingKey::from_bytes(public).unwrap();
    let sig = ed25519_dalek::Signature::from_slice(&blob[4..]).unwrap();
    key.verify(message.as_bytes(), &sig)
        .expect("the checkpoint signature verifies");
}

#[tokio::test]
async fn roots_and_proofs_match_an_independent_rfc6962_implementation() {
    let t = TestLedger::new().await;
    // Entries of every kind: dock events with envelopes, service entries.
    for i in 0..14 {
        let a = t.post_event(&ingest_event(&format!("seg-{i}"))).await;
        assert_eq!(a.status, StatusCode::CREATED);
        let a = t.post_event(&docked_event(&format!("rec-{i}"))).await;
        assert_eq!(a.status, StatusCode::CREATED);
    }
    let size = t.size() as usize;
    assert!(size > 30);

    // The entries, exactly as served.
    let a = t
        .get(
            &format!("/v1/entries?start=0&end={size}"),
            Some(Role::Auditor),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.content_type(), "application/x-ndjson");
    let mut leaves = Vec::new();
    for (i, line) in a.text().lines().enumerate() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["seq"], i);
        let raw = B64.decode(v["raw"].as_str().unwrap()).unwrap();
        // "entry" is the same bytes, decoded.
        assert_eq!(serde_json::from_slice::<Value>(&raw).unwrap(), v["entry"]);
        assert_eq!(v["entry"]["seq"], i);
        // The hash chain: prev is the previous leaf hash.
        match i {
            0 => assert!(v["entry"].get("prev").is_none()),
            _ => assert_eq!(v["entry"]["prev"], b64(&leaves[i - 1])),
        }
        leaves.push(leaf(&raw));
    }
    assert_eq!(leaves.len(), size);

    // The checkpoint: signed by the ledger key, for this size and root.
    let cp = t.get("/v1/checkpoint", None).await.text();
    let mut lines = cp.lines();
    assert_eq!(lines.next(), Some(ORIGIN));
    assert_eq!(lines.next(), Some(size.to_string().as_str()));
    assert_eq!(checkpoint_root(&cp), mth(&leaves));
    verify_note(
        &cp,
        "ledger",
        ledger_key().verifier_key().ed25519_public().unwrap(),
    );

    // Every inclusion proof and every consistency proof, for every size.
    for n in 1..=size {
        for m in 0..n {
            let a = t
                .get(&format!("/v1/proof/inclusion?index={m}&size={n}"), None)
                .await;
            assert_eq!(a.status, StatusCode::OK);
            let v = a.json();
            assert_eq!(
                (v["index"].as_u64(), v["size"].as_u64()),
                (Some(m as u64), Some(n as u64))
            );
            let expected: Vec<String> = path(m, &leaves[..n]).iter().map(b64).collect();
            assert_eq!(hashes(&v), expected, "inclusion {m} in {n}");
        }
        for m in 0..=n {
            let a = t
                .get(&format!("/v1/proof/consistency?from={m}&to={n}"), None)
                .await;
            assert_eq!(a.status, StatusCode::OK);
            let v = a.json();
            let expected: Vec<String> = consistency(m, &leaves[..n]).iter().map(b64).collect();
            assert_eq!(hashes(&v), expected, "consistency {m} -> {n}");
        }
    }
    // And a proof recomputes the checkpoint's root the way an auditor would.
    let v = t
        .get(&format!("/v1/proof/inclusion?index=5&size={size}"), None)
        .await
        .json();
    let proof: Vec<H> = hashes(&v)
        .iter()
        .map(|h| B64.decode(h).unwrap().try_into().unwrap())
        .collect();
    assert!(verify_inclusion(
        5,
        size as u64,
        leaves[5],
        &proof,
        mth(&leaves)
    ));
    assert!(!verify_inclusion(
        5,
        size as u64,
        leaves[6],
        &proof,
        mth(&leaves)
    ));
}

#[tokio::test]
async fn entries_pages_stop_at_the_tree_size() {
    let t = TestLedger::new().await;
    let size = t.size();
    let a = t
        .get(
            &format!("/v1/entries?start=0&end={}", size + 100),
            Some(Role::Auditor),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.text().lines().count() as u64, size);
    let a = t
        .get(&format!("/v1/entries?start={size}"), Some(Role::Auditor))
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.is_empty());
}
