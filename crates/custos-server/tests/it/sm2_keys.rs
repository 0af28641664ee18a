//! A dock that signs with two suites (Ed25519 and SM2) registers both keys
//! with one token, and the ledger holds every signature of its envelopes to
//! them: a good Ed25519 signature does not carry a garbage or foreign SM2
//! signature beside it, and a dock with only its SM2 key registered is
//! refused an Ed25519-only envelope. Each refusal adds nothing to the log.

use custos_core::dsse::Signature;
use custos_core::keys::{Algorithm, KeySet, SigningKey};
use custos_ledger::{Ledger, LedgerOptions, Role};

use crate::util::*;

fn sm2_dock() -> SigningKey {
    SigningKey::sm2_from_bytes("dock-01", &[0x21; 32]).unwrap()
}

fn both() -> KeySet {
    KeySet::new(vec![dock_key(), sm2_dock()]).unwrap()
}

fn signed_by(keys: &KeySet, segment: &str) -> custos_core::dsse::Envelope {
    use custos_core::entry::details::SegmentIngested;
    use custos_core::entry::{Details, Event};
    let m = manifest(segment, "rec-7", "officer-42", "2026-03-01T07:00:00Z");
    let details = Details::SegmentIngested(SegmentIngested {
        manifest: m.sign(keys).unwrap(),
        object_key: Some(m.object.key.clone()),
        sha256: Some(m.digests.sha256.to_string()),
    });
    Event::new(details.action(), segment, details.to_map(), now())
        .unwrap()
        .sign(keys)
        .unwrap()
}

#[tokio::test]
async fn every_signature_must_be_by_a_registered_key_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let ledger_keys = KeySet::new(vec![
        ledger_key(),
        SigningKey::sm2_from_bytes("ledger", &[0x31; 32]).unwrap(),
    ])
    .unwrap();
    let ledger = Ledger::open(
        LedgerOptions::new(dir.path(), "sm2.test/ledger"),
        ledger_keys,
    )
    .unwrap();
    let token = ledger
        .create_token_with_keys(
            admin_actor(),
            Role::Dock,
            "dock-01",
            both().verifier_keys(),
            None,
        )
        .await
        .unwrap();
    let dock = ledger.authenticate(&token.token).unwrap();
    assert_eq!(dock.keys().len(), 2);
    // The token list names both keys.
    let listed = ledger.tokens().unwrap();
    let info = listed.iter().find(|t| t.name == "dock-01").unwrap();
    assert_eq!(
        info.key_id.as_deref(),
        Some(dock_key().verifier_key().key_id().as_str())
    );
    assert_eq!(info.more_key_ids, vec![sm2_dock().verifier_key().key_id()]);

    // Both suites, both registered: accepted; the envelope and its manifest
    // carry an Ed25519 and an SM2 signature.
    let good = signed_by(&both(), "seg-1");
    assert_eq!(good.signatures.len(), 2);
    ledger.append_envelope(&dock, good.clone()).await.unwrap();
    let size = ledger.published().size;

    // The same, with the SM2 signature replaced by garbage: refused, though
    // the Ed25519 one is good.
    let mut garbage = signed_by(&both(), "seg-2");
    let sm2_id = sm2_dock().verifier_key().key_id();
    let at = garbage
        .signatures
        .iter()
        .position(|s| s.keyid == sm2_id)
        .unwrap();
    let last = garbage.signatures[at].sig.len() - 1;
    garbage.signatures[at].sig[last] ^= 1;
    let err = ledger.append_envelope(&dock, garbage).await.unwrap_err();
    assert!(err.to_string().contains("does not verify"), "{err}");

    // A good Ed25519 signature plus an SM2 signature by a key nobody
    // registered: refused.
    let stranger =
        SigningKey::generate_for(Algorithm::Sm2, "dock-01", &mut rand_core::OsRng).unwrap();
    let mut foreign = signed_by(&KeySet::from(dock_key()), "seg-3");
    foreign.add_signature(&stranger).unwrap();
    let err = ledger.append_envelope(&dock, foreign).await.unwrap_err();
    assert!(
        err.to_string().contains(&stranger.verifier_key().key_id()),
        "{err}"
    );

    // An envelope whose manifest carries an unregistered SM2 signature.
    let keys = KeySet::new(vec![dock_key(), stranger]).unwrap();
    let mut inner = signed_by(&keys, "seg-4");
    inner
        .signatures
        .retain(|s| s.keyid == dock_key().verifier_key().key_id());
    let inner = {
        // Re-sign the event with the registered keys only; the manifest
        // inside keeps its foreign signature.
        let event = custos_core::entry::Event::parse(&inner.payload).unwrap();
        event.sign(&both()).unwrap()
    };
    let err = ledger.append_envelope(&dock, inner).await.unwrap_err();
    assert!(err.to_string().contains("manifest"), "{err}");

    // A keyid-less copy of a good signature is refused too.
    let mut anonymous = signed_by(&both(), "seg-5");
    let copy = anonymous.signatures[0].sig.clone();
    anonymous.signatures.push(Signature {
        keyid: String::new(),
        sig: copy,
    });
    assert!(ledger.append_envelope(&dock, anonymous).await.is_err());

    assert_eq!(ledger.published().size, size, "a refusal added an entry");

    // The checkpoint carries both lines; a standard verifier that knows only
    // the Ed25519 key accepts it, and the SM2 key verifies its own line.
    let checkpoint = ledger.published().checkpoint.clone();
    let note = custos_core::note::SignedNote::parse(checkpoint.as_bytes()).unwrap();
    assert_eq!(note.signatures().len(), 2);
    note.verify(&[ledger_key().verifier_key()]).unwrap();
    let sm2_ledger = SigningKey::sm2_from_bytes("ledger", &[0x31; 32]).unwrap();
    note.verify(&[sm2_ledger.verifier_key()]).unwrap();
    ledger.close().await;
}

#[tokio::test]
async fn a_dock_with_only_its_sm2_key_registered() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(
        LedgerOptions::new(dir.path(), "sm2.test/ledger"),
        ledger_key(),
    )
    .unwrap();
    let token = ledger
        .create_token_with_keys(
            admin_actor(),
            Role::Dock,
            "dock-01",
            vec![sm2_dock().verifier_key()],
            None,
        )
        .await
        .unwrap();
    let dock = ledger.authenticate(&token.token).unwrap();
    let sm2_only = KeySet::from(sm2_dock());
    ledger
        .append_envelope(&dock, signed_by(&sm2_only, "seg-1"))
        .await
        .unwrap();
    // Its Ed25519 signature is by no key registered to it.
    let err = ledger
        .append_envelope(&dock, signed_by(&KeySet::from(dock_key()), "seg-2"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("dock-01"), "{err}");
    // The same key cannot be given twice.
    assert!(ledger
        .create_token_with_keys(
            admin_actor(),
            Role::Dock,
            "dock-01",
            vec![sm2_dock().verifier_key(), sm2_dock().verifier_key()],
            None,
        )
        .await
        .is_err());
    ledger.close().await;
}
