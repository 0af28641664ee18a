//! Rotating the ledger's key (`[ledger] key_files = [new, old]`, then
//! `[new]`): each change is a `ledger.key_added` / `ledger.key_retired`
//! entry appended at start-up, checkpoints are signed by every configured
//! key, a bundle exported before the rotation verifies with the old key, one
//! exported during it with either, one after it with the new key only; the
//! log stays consistent across the change; a data_dir whose last checkpoint
//! no configured key signed is refused.

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use custos_core::bundle;
use custos_core::checkpoint::Checkpoint;
use custos_core::digest::Digest;
use custos_core::entry::{Actor, ActorKind, Entry};
use custos_core::keys::{KeySet, SigningKey, VerifierKey};
use custos_core::merkle::verify_consistency;
use custos_core::note::SignedNote;
use custos_ledger::export::{self, ExportRequest, ObjectFootage};
use custos_ledger::governance::FootageGate;
use custos_ledger::{Ledger, LedgerOptions, OpenError, Role, StoreError};
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::util::*;

fn new_key() -> SigningKey {
    SigningKey::from_seed("ledger", &[0x42; 32]).unwrap()
}

/// Open the ledger in `dir` with `keys`, waiting while the last one's
/// store is still locked (sled lets go a moment after a close).
fn open(dir: &Path, keys: impl Fn() -> Vec<SigningKey>) -> Result<Ledger, OpenError> {
    for _ in 0..200 {
        match Ledger::open(LedgerOptions::new(dir.join("ledger"), ORIGIN), set(keys())) {
            Err(OpenError::Store(StoreError::Locked { .. })) => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
    Ledger::open(LedgerOptions::new(dir.join("ledger"), ORIGIN), set(keys()))
}

fn set(keys: Vec<SigningKey>) -> KeySet {
    KeySet::new(keys).unwrap()
}

/// Store `segment`'s footage and append its ingest by the dock.
async fn ingest(ledger: &Ledger, objects: &Arc<dyn ObjectStore>, segment: &str, seed: u8) {
    let bytes: Vec<u8> = (0..5_000u32).map(|i| (i % 251) as u8 ^ seed).collect();
    objects
        .put(
            &ObjectPath::parse(format!("rec-7/{segment}.mp4")).unwrap(),
            bytes.clone().into(),
        )
        .await
        .unwrap();
    let m = stored_manifest(segment, bytes.len() as u64, Digest::sha256(&bytes));
    let dock = custos_ledger::Caller::in_process_dock("dock-01", dock_key().verifier_key());
    ledger
        .append_event(&dock, &ingest_event_with(&dock_key(), &m).to_json())
        .await
        .unwrap();
}

async fn export(ledger: &Ledger, objects: &Arc<dyn ObjectStore>, segment: &str) -> Vec<u8> {
    let actor = Actor {
        kind: ActorKind::Reviewer,
        id: "reviewer-1".into(),
    };
    let source = Arc::new(ObjectFootage::new(
        objects.clone(),
        tokio::runtime::Handle::current(),
    ));
    let request = ExportRequest {
        segments: vec![segment.to_owned()],
        case: None,
        reason: Some("court order 17".into()),
    };
    export::export_bundle(
        ledger,
        &FootageGate::operator(actor),
        &request,
        source,
        Vec::new(),
    )
    .await
    .map(|(out, _)| out)
    .unwrap()
}

/// Close `ledger` and let go of its store, so the next open finds it free.
async fn shut(ledger: Ledger) {
    ledger.close().await;
    drop(ledger);
}

fn verifies_with(tar: &[u8], keys: &[VerifierKey]) -> bool {
    match bundle::verify(Cursor::new(tar), keys, &mut |_| {}) {
        Ok(report) => report.is_valid(),
        Err(_) => false,
    }
}

/// The key ids that signed `checkpoint`.
fn signers(checkpoint: &str) -> Vec<String> {
    let note = SignedNote::parse(checkpoint.as_bytes()).unwrap();
    note.signatures().iter().map(|s| s.key_id()).collect()
}

fn last_entry(ledger: &Ledger) -> Entry {
    let size = ledger.published().size;
    Entry::parse(&ledger.entry(size - 1).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_key_is_rotated_with_an_overlap_and_every_bundle_keeps_verifying() {
    let dir = tempfile::tempdir().unwrap();
    let objects: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let (old_vk, new_vk) = (ledger_key().verifier_key(), new_key().verifier_key());

    // Before: the old key alone.
    let ledger = open(dir.path(), || vec![ledger_key()]).unwrap();
    new_token(&ledger, Role::Dock, "dock-01").await;
    ingest(&ledger, &objects, "seg-a", 1).await;
    let before = export(&ledger, &objects, "seg-a").await;
    let kept = ledger.published().checkpoint.to_string();
    let kept_size = ledger.published().size;
    assert_eq!(signers(&kept), [old_vk.key_id()]);
    shut(ledger).await;

    // The same key again adds nothing.
    let ledger = open(dir.path(), || vec![ledger_key()]).unwrap();
    assert_eq!(ledger.published().size, kept_size);
    shut(ledger).await;

    // During: [new, old]. One `ledger.key_added` naming the new key, by
    // the ledger, and its checkpoint signed by both.
    let ledger = open(dir.path(), || vec![new_key(), ledger_key()]).unwrap();
    assert_eq!(ledger.published().size, kept_size + 1);
    let added = last_entry(&ledger);
    assert_eq!(added.action.as_str(), "ledger.key_added");
    assert_eq!(added.actor.kind, ActorKind::Ledger);
    assert_eq!(added.details["key"], new_vk.to_string());
    assert_eq!(added.details["key_id"], new_vk.key_id());
    assert_eq!(
        signers(&ledger.published().checkpoint),
        [new_vk.key_id(), old_vk.key_id()]
    );
    ingest(&ledger, &objects, "seg-b", 2).await;
    let during = export(&ledger, &objects, "seg-b").await;
    shut(ledger).await;

    // After: [new]. One `ledger.key_retired` naming the old key; the
    // checkpoint signed by the new key only.
    let ledger = open(dir.path(), || vec![new_key()]).unwrap();
    let retired = last_entry(&ledger);
    assert_eq!(retired.action.as_str(), "ledger.key_retired");
    assert_eq!(retired.details["key_id"], old_vk.key_id());
    assert_eq!(signers(&ledger.published().checkpoint), [new_vk.key_id()]);
    ingest(&ledger, &objects, "seg-c", 3).await;
    let after = export(&ledger, &objects, "seg-c").await;

    // Old bundles with the old key, new ones with the new; during the
    // overlap, either.
    assert!(verifies_with(&before, std::slice::from_ref(&old_vk)));
    assert!(!verifies_with(&before, std::slice::from_ref(&new_vk)));
    assert!(verifies_with(&during, std::slice::from_ref(&old_vk)));
    assert!(verifies_with(&during, std::slice::from_ref(&new_vk)));
    assert!(verifies_with(&after, std::slice::from_ref(&new_vk)));
    assert!(!verifies_with(&after, std::slice::from_ref(&old_vk)));
    // An auditor who pinned both keys accepts all three.
    for tar in [&before, &during, &after] {
        assert!(verifies_with(tar, &[old_vk.clone(), new_vk.clone()]));
    }

    // The log only grew across the change: the checkpoint kept before the
    // rotation (old key) is consistent with today's (new key).
    let kept = Checkpoint::open(kept.as_bytes(), &old_vk, Some(ORIGIN)).unwrap();
    let now = ledger.published();
    let now_cp = Checkpoint::open(now.checkpoint.as_bytes(), &new_vk, Some(ORIGIN)).unwrap();
    let proof = ledger
        .consistency_proof(kept.size(), now_cp.size())
        .unwrap();
    verify_consistency(
        kept.size(),
        now_cp.size(),
        &proof.hashes,
        &kept.root(),
        &now_cp.root(),
    )
    .unwrap();
    shut(ledger).await;

    // A key that never overlapped with the last one is refused, and the
    // refusal appends nothing.
    let stranger = || vec![SigningKey::from_seed("ledger", &[0x77; 32]).unwrap()];
    let err = open(dir.path(), stranger).unwrap_err();
    assert!(
        matches!(err, OpenError::Checkpoint { .. }),
        "{err}: a key unknown to the log must not open it"
    );
    let ledger = open(dir.path(), || vec![new_key()]).unwrap();
    assert_eq!(ledger.published().size, now.size);
    shut(ledger).await;
}

/// Open the ledger the way `custos ledger serve` does: its options and keys
/// from a configuration file's text (`[crypto]`, `[ledger] key_file`,
/// `sm2_key_file` or `sm2_key_files`), relative to `dir`.
fn open_configured(dir: &Path, ledger_keys: &str) -> Ledger {
    let text = format!(
        "[crypto]\nsignatures = [\"ed25519\", \"sm2\"]\n[ledger]\ndata_dir = \"./ledger\"\norigin = \"{ORIGIN}\"\nkey_file = \"./keys/ledger.key\"\n{ledger_keys}\n"
    );
    let config =
        custos_core::config::Config::parse(&text, dir, std::iter::empty::<(String, String)>())
            .unwrap();
    for _ in 0..200 {
        let options = LedgerOptions::new(&config.ledger.data_dir, &config.ledger.origin)
            .with_config_keys(&config);
        let keys = options.load_keys(&config.ledger.key_file).unwrap();
        match Ledger::open(options, keys) {
            Err(OpenError::Store(StoreError::Locked { .. })) => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other.unwrap(),
        }
    }
    panic!("the ledger's store stayed locked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_sm2_key_is_rotated_through_sm2_key_files_like_its_ed25519_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    let ed = ledger_key();
    let sm2_old = SigningKey::sm2_from_bytes("ledger", &[0x21; 32]).unwrap();
    let sm2_new = SigningKey::sm2_from_bytes("ledger", &[0x22; 32]).unwrap();
    for (key, file) in [
        (&ed, "ledger.key"),
        (&sm2_old, "sm2-old.key"),
        (&sm2_new, "sm2-new.key"),
    ] {
        key.save(&dir.path().join("keys").join(file)).unwrap();
    }
    let (ed_vk, old_vk, new_vk) = (
        ed.verifier_key(),
        sm2_old.verifier_key(),
        sm2_new.verifier_key(),
    );

    // Before: one SM2 key beside the Ed25519 key.
    let ledger = open_configured(dir.path(), "sm2_key_file = \"./keys/sm2-old.key\"");
    new_token(&ledger, Role::Dock, "dock-01").await;
    let kept = ledger.published().checkpoint.to_string();
    assert_eq!(signers(&kept), [ed_vk.key_id(), old_vk.key_id()]);
    shut(ledger).await;

    // During: sm2_key_files = [new, old]. One `ledger.key_added` naming the
    // new SM2 key; every checkpoint carries both SM2 lines.
    let ledger = open_configured(
        dir.path(),
        "sm2_key_files = [\"./keys/sm2-new.key\", \"./keys/sm2-old.key\"]",
    );
    let added = last_entry(&ledger);
    assert_eq!(added.action.as_str(), "ledger.key_added");
    assert_eq!(added.details["key"], new_vk.to_string());
    let during = ledger.published().checkpoint.to_string();
    assert_eq!(
        signers(&during),
        [ed_vk.key_id(), new_vk.key_id(), old_vk.key_id()]
    );
    shut(ledger).await;

    // After: [new]. One `ledger.key_retired` naming the old SM2 key.
    let ledger = open_configured(dir.path(), "sm2_key_files = [\"./keys/sm2-new.key\"]");
    let retired = last_entry(&ledger);
    assert_eq!(retired.action.as_str(), "ledger.key_retired");
    assert_eq!(retired.details["key_id"], old_vk.key_id());
    let after = ledger.published().checkpoint.to_string();
    assert_eq!(signers(&after), [ed_vk.key_id(), new_vk.key_id()]);

    // An SM2 auditor: the old key opens the checkpoints up to the overlap,
    // the new one those from it on; the log only grew.
    for (text, opens_old, opens_new) in [
        (&kept, true, false),
        (&during, true, true),
        (&after, false, true),
    ] {
        assert_eq!(
            Checkpoint::open(text.as_bytes(), &old_vk, Some(ORIGIN)).is_ok(),
            opens_old
        );
        assert_eq!(
            Checkpoint::open(text.as_bytes(), &new_vk, Some(ORIGIN)).is_ok(),
            opens_new
        );
    }
    let kept = Checkpoint::open(kept.as_bytes(), &old_vk, Some(ORIGIN)).unwrap();
    let now = Checkpoint::open(after.as_bytes(), &new_vk, Some(ORIGIN)).unwrap();
    let proof = ledger.consistency_proof(kept.size(), now.size()).unwrap();
    verify_consistency(
        kept.size(),
        now.size(),
        &proof.hashes,
        &kept.root(),
        &now.root(),
    )
    .unwrap();
    shut(ledger).await;
}
