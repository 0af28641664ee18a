//! Export bundles from a real ledger: segments ingested through signed
//! dock events, footage in an object store, the bundle checked by the
//! offline verifier of custos-core with the ledger key pinned.

use std::io::Cursor;
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use custos_core::bundle::{self, BundleError};
use custos_core::digest::Digest;
use custos_core::entry::details::CaseSegmentLinked;
use custos_core::entry::{Actor, ActorKind, Details, Entry};
use custos_ledger::export::{self, ExportError, ExportRequest, ObjectFootage};
use custos_ledger::governance::{FootageGate, Governance};
use custos_ledger::{Caller, Ledger, Role};
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::{json, Value};

use crate::util::*;

fn footage(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3] ^ seed)
        .collect()
}

struct Fixture {
    /// The ledger, its tokens and router.
    t: TestLedger,
    objects: Arc<dyn ObjectStore>,
    footage: Vec<(String, Vec<u8>)>,
    dock: Caller,
}

fn dock_caller(f: &Fixture) -> Caller {
    f.dock.clone()
}

/// The `segment.ingested` event of `bytes` stored as `segment`.
fn ingest_of(segment: &str, bytes: &[u8]) -> Vec<u8> {
    let m = stored_manifest(segment, bytes.len() as u64, Digest::sha256(bytes));
    ingest_event_with(&dock_key(), &m).to_json()
}

/// A ledger whose footage store holds `seg-a` (verified) and `seg-b`, and
/// an unrelated docking.
async fn fixture() -> Fixture {
    let objects: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let t = TestLedger::open(
        LedgerSetup {
            governance: Some(Governance::default().with_store(objects.clone())),
            ..LedgerSetup::default()
        },
        |_| {},
    )
    .await;
    let ledger = t.ledger.clone();
    let dock = ledger.authenticate(t.token(Role::Dock)).unwrap();
    let mut footage_list = Vec::new();
    for (i, (id, len)) in [("seg-a", 70_000usize), ("seg-b", 1_000)]
        .iter()
        .enumerate()
    {
        let bytes = footage(i as u8, *len);
        objects
            .put(
                &ObjectPath::parse(format!("rec-7/{id}.mp4")).unwrap(),
                bytes.clone().into(),
            )
            .await
            .unwrap();
        ledger
            .append_event(&dock, &ingest_of(id, &bytes))
            .await
            .unwrap();
        footage_list.push((id.to_string(), bytes));
    }
    ledger
        .append_event(&dock, &verified_event("seg-a").to_json())
        .await
        .unwrap();
    ledger
        .append_event(&dock, &docked_event("rec-9").to_json())
        .await
        .unwrap();
    Fixture {
        t,
        objects,
        footage: footage_list,
        dock,
    }
}

fn request(segments: &[&str]) -> ExportRequest {
    ExportRequest {
        segments: segments.iter().map(|s| s.to_string()).collect(),
        case: None,
        reason: Some("court order 17".into()),
    }
}

async fn export_to_vec(f: &Fixture, segments: &[&str]) -> Result<Vec<u8>, ExportError> {
    let actor = Actor {
        kind: ActorKind::Reviewer,
        id: "reviewer-1".into(),
    };
    let source = Arc::new(ObjectFootage::new(
        f.objects.clone(),
        tokio::runtime::Handle::current(),
    ));
    // The bundle's contents are what this file tests; the footage gate has
    // its own tests (governance.rs), so the export is an operator's.
    let gate = FootageGate::operator(actor);
    export::export_bundle(&f.t.ledger, &gate, &request(segments), source, Vec::new())
        .await
        .map(|(out, _)| out)
}

fn verify(tar: &[u8], ledger: &Ledger) -> Result<bundle::Report, BundleError> {
    bundle::verify(
        Cursor::new(tar),
        std::slice::from_ref(ledger.verifier_key()),
        &mut |_| {},
    )
}

/// The entries of a bundle's entries.jsonl (read with a minimal tar
/// walk: 512-byte headers, name at 0..100, octal size at 124..136).
fn bundle_entries(tar: &[u8]) -> Vec<Entry> {
    let mut at = 0;
    while at + 512 <= tar.len() && tar[at] != 0 {
        let header = &tar[at..at + 512];
        let name_end = header[..100].iter().position(|&b| b == 0).unwrap_or(100);
        let name = std::str::from_utf8(&header[..name_end]).unwrap();
        let size_text = std::str::from_utf8(&header[124..136]).unwrap();
        let size = u64::from_str_radix(size_text.trim_matches(|c: char| c == '\0' || c == ' '), 8)
            .unwrap() as usize;
        let data = &tar[at + 512..at + 512 + size];
        if name == bundle::ENTRIES_PATH {
            return std::str::from_utf8(data)
                .unwrap()
                .lines()
                .map(|l| {
                    let v: Value = serde_json::from_str(l).unwrap();
                    Entry::parse(v["entry"].to_string().as_bytes()).unwrap()
                })
                .collect();
        }
        at += 512 + size.div_ceil(512) * 512;
    }
    panic!("no entries.jsonl in the bundle");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_verifies_and_holds_its_own_entry() {
    let f = fixture().await;
    let before = f.t.ledger.published().size;
    let tar = export_to_vec(&f, &["seg-a", "seg-b"]).await.unwrap();
    let report = verify(&tar, &f.t.ledger).unwrap();
    assert!(report.is_valid());
    assert_eq!(report.checkpoint.size(), report.export_seq + 1);
    assert_eq!(report.segments.len(), 2);
    assert_eq!(
        report.footage_bytes,
        f.footage.iter().map(|(_, b)| b.len() as u64).sum::<u64>()
    );
    // The export is the entry appended by the export, and it is in the bundle.
    assert_eq!(report.export_seq, before);
    let entries = bundle_entries(&tar);
    let last = entries.last().unwrap();
    assert_eq!(last.seq, before);
    assert_eq!(last.action.as_str(), "export.created");
    assert_eq!(last.actor.id, "reviewer-1");
    assert_eq!(last.details["segments"], json!(["seg-a", "seg-b"]));
    assert_eq!(last.details["reason"], json!("court order 17"));
    // Ingest of both, the verification of seg-a; not the unrelated entry.
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "segment.ingested",
            "segment.ingested",
            "segment.verified",
            "export.created"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_export_includes_the_first() {
    let f = fixture().await;
    export_to_vec(&f, &["seg-b"]).await.unwrap();
    let tar = export_to_vec(&f, &["seg-b"]).await.unwrap();
    verify(&tar, &f.t.ledger).unwrap();
    let exports = bundle_entries(&tar)
        .into_iter()
        .filter(|e| e.action.as_str() == "export.created")
        .count();
    assert_eq!(exports, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_segment_is_refused_and_not_recorded() {
    let f = fixture().await;
    let before = f.t.ledger.published().size;
    let err = export_to_vec(&f, &["seg-a", "nope"]).await.unwrap_err();
    assert!(
        matches!(err, ExportError::UnknownSegment(ref s) if s == "nope"),
        "{err}"
    );
    assert!(matches!(
        export_to_vec(&f, &[]).await.unwrap_err(),
        ExportError::NoSegments
    ));
    assert_eq!(f.t.ledger.published().size, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn footage_that_does_not_match_its_manifest_fails_the_export() {
    let f = fixture().await;
    // The stored object lost its last byte.
    let (_, bytes) = &f.footage[1];
    f.objects
        .put(
            &ObjectPath::parse("rec-7/seg-b.mp4").unwrap(),
            bytes[..bytes.len() - 1].to_vec().into(),
        )
        .await
        .unwrap();
    let err = export_to_vec(&f, &["seg-b"]).await.unwrap_err();
    assert!(err.to_string().contains("footage"), "{err}");
    // A missing object names the segment.
    f.objects
        .delete(&ObjectPath::parse("rec-7/seg-b.mp4").unwrap())
        .await
        .unwrap();
    let err = export_to_vec(&f, &["seg-b"]).await.unwrap_err();
    assert!(
        matches!(err, ExportError::Footage { ref segment, .. } if segment == "seg-b"),
        "{err}"
    );
}

/// A supervisor approves `token`'s request for a segment or a case: the
/// approval a reviewer needs before an export yields footage.
async fn approve(f: &Fixture, token: &str, segment: Option<&str>, case: Option<&str>) {
    use custos_ledger::governance::{self, AccessAsk, Decision};
    let requester = f.t.ledger.authenticate(token).unwrap();
    let supervisor = Caller {
        role: Role::Supervisor,
        name: "sup-1".into(),
        token_id: "test-supervisor".into(),
        key: None,
        more_keys: Vec::new(),
    };
    let ask = AccessAsk {
        case: case.map(str::to_owned),
        segment: segment.map(str::to_owned),
        reason: "court order 17".into(),
    };
    let (request, _) = governance::request_access(&f.t.ledger, &requester, &ask)
        .await
        .unwrap();
    let decision = Decision {
        approve: true,
        note: None,
        valid_days: None,
    };
    governance::decide(
        &f.t.ledger,
        &Governance::default(),
        &supervisor,
        &request.id,
        &decision,
    )
    .await
    .unwrap();
}

async fn post_export(f: &Fixture, token: &str, body: Value) -> (StatusCode, Vec<u8>) {
    let a =
        f.t.call(
            Method::POST,
            "/v1/exports",
            Some(token),
            Some(("application/json", body.to_string().into_bytes())),
        )
        .await;
    (a.status, a.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_exports_streams_a_valid_bundle() {
    let f = fixture().await;
    approve(&f, f.t.token(Role::Reviewer), Some("seg-a"), None).await;
    approve(&f, f.t.token(Role::Reviewer), Some("seg-b"), None).await;
    let (status, tar) = post_export(
        &f,
        f.t.token(Role::Reviewer),
        json!({"segments": ["seg-a", "seg-b"], "reason": "discovery"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&tar));
    let report = verify(&tar, &f.t.ledger).unwrap();
    assert_eq!(report.segments.len(), 2);
    let last = bundle_entries(&tar).pop().unwrap();
    assert_eq!(last.actor.id, "reviewer-1");
    assert_eq!(last.actor.kind, ActorKind::Reviewer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_exports_refusals() {
    let f = fixture().await;
    approve(&f, f.t.token(Role::Reviewer), Some("seg-a"), None).await;
    approve(&f, f.t.token(Role::Reviewer), Some("seg-b"), None).await;
    let before = f.t.ledger.published().size;
    let (status, _) =
        post_export(&f, f.t.token(Role::Officer), json!({"segments": ["seg-a"]})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) =
        post_export(&f, f.t.token(Role::Reviewer), json!({"segments": ["nope"]})).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let (status, _) = post_export(&f, f.t.token(Role::Reviewer), json!({"segments": []})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A missing object is refused before anything is recorded or streamed.
    f.objects
        .delete(&ObjectPath::parse("rec-7/seg-b.mp4").unwrap())
        .await
        .unwrap();
    let (status, body) = post_export(
        &f,
        f.t.token(Role::Reviewer),
        json!({"segments": ["seg-a", "seg-b"]}),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.contains("footage_unavailable") && body.contains("seg-b"),
        "{body}"
    );
    // No export was recorded (the officer's refusal may be logged by the
    // access middleware, so compare export entries only).
    let after = f.t.ledger.entries(before, None).unwrap();
    assert!(after
        .iter()
        .all(|l| !l.entry.get().contains("\"export.created\"")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_exports_its_linked_segments() {
    let f = fixture().await;
    let supervisor = Caller {
        role: Role::Supervisor,
        name: "sup-1".into(),
        token_id: "test".into(),
        key: None,
        more_keys: Vec::new(),
    };
    let (case, _) = custos_ledger::governance::create_case(&f.t.ledger, &supervisor, "Case", None)
        .await
        .unwrap();
    custos_ledger::governance::link_segments(&f.t.ledger, &supervisor, &case.id, &["seg-b".into()])
        .await
        .unwrap();
    approve(&f, f.t.token(Role::Reviewer), None, Some(&case.id)).await;
    let (status, tar) = post_export(&f, f.t.token(Role::Reviewer), json!({"case": case.id})).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&tar));
    let report = verify(&tar, &f.t.ledger).unwrap();
    let ids: Vec<&str> = report
        .segments
        .iter()
        .map(|s| s.segment_id.as_str())
        .collect();
    assert_eq!(ids, ["seg-b"]);
    let last = bundle_entries(&tar).pop().unwrap();
    assert_eq!(last.details["case"], json!(case.id));
    // A case that links nothing is a 404, and nothing is recorded.
    let (empty, _) =
        custos_ledger::governance::create_case(&f.t.ledger, &supervisor, "Empty", None)
            .await
            .unwrap();
    let (status, _) = post_export(&f, f.t.token(Role::Reviewer), json!({"case": empty.id})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_signs_the_checkpoint_of_any_past_size() {
    let f = fixture().await;
    let then = f.t.ledger.published();
    let dock = dock_caller(&f);
    f.t.ledger
        .append_event(&dock, &docked_event("rec-10").to_json())
        .await
        .unwrap();
    assert!(f.t.ledger.published().size > then.size);
    // Ed25519 signatures are deterministic: the very checkpoint published then.
    assert_eq!(
        f.t.ledger.checkpoint_at(then.size).unwrap(),
        then.checkpoint.to_string()
    );
    let now = f.t.ledger.published();
    assert_eq!(
        f.t.ledger.checkpoint_at(now.size).unwrap(),
        now.checkpoint.to_string()
    );
    assert!(f.t.ledger.checkpoint_at(now.size + 1).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_is_bound_to_the_checkpoint_at_its_entry() {
    // Entries appended after the export entry, before the bundle is
    // written, do not move its checkpoint.
    let f = fixture().await;
    let actor = Actor {
        kind: ActorKind::Reviewer,
        id: "reviewer-1".into(),
    };
    let gate = FootageGate::operator(actor);
    let prepared = export::prepare_export(&f.t.ledger, &gate, &request(&["seg-a"]))
        .await
        .unwrap();
    let dock = dock_caller(&f);
    f.t.ledger
        .append_event(&dock, &docked_event("rec-11").to_json())
        .await
        .unwrap();
    assert_eq!(prepared.size, prepared.export_seq + 1);
    let source = ObjectFootage::new(f.objects.clone(), tokio::runtime::Handle::current());
    let tar = tokio::task::spawn_blocking(move || {
        export::write_bundle(&prepared, &source, Vec::new())
            .unwrap()
            .0
    })
    .await
    .unwrap();
    let report = verify(&tar, &f.t.ledger).unwrap();
    assert!(f.t.ledger.published().size > report.checkpoint.size());
    assert_eq!(report.checkpoint.size(), report.export_seq + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_export_names_every_linked_segment() {
    // More segments than one catalogue search page (1000): all of them.
    const N: usize = 1001;
    let f = fixture().await;
    let dock = dock_caller(&f);
    let ingests = (0..N).map(|i| {
        let id = format!("case-seg-{i:04}");
        let body = ingest_of(&id, &[i as u8]);
        let ledger = f.t.ledger.clone();
        let dock = dock.clone();
        async move { ledger.append_event(&dock, &body).await.unwrap() }
    });
    futures::future::join_all(ingests).await;
    let supervisor = Actor {
        kind: ActorKind::Supervisor,
        id: "sup-1".into(),
    };
    let links = (0..N).map(|i| {
        let details = Details::CaseSegmentLinked(CaseSegmentLinked {
            segment_id: format!("case-seg-{i:04}"),
        });
        let append = custos_ledger::Append::new(supervisor.clone(), "case-big", details).unwrap();
        let ledger = f.t.ledger.clone();
        async move { ledger.append(append).await.unwrap() }
    });
    futures::future::join_all(links).await;
    let ids = export::case_segments(&f.t.ledger, "case-big").unwrap();
    assert_eq!(ids.len(), N);
    assert_eq!(ids[N - 1], format!("case-seg-{:04}", N - 1));
    assert!(matches!(
        export::case_segments(&f.t.ledger, "case-none"),
        Err(ExportError::EmptyCase(_))
    ));
}

/// The members of a tar, in order (path, bytes).
fn unpack(tar: &[u8]) -> Vec<(String, Vec<u8>)> {
    use std::io::Read as _;
    let mut archive = tar::Archive::new(tar);
    archive
        .entries()
        .unwrap()
        .map(|m| {
            let mut m = m.unwrap();
            let path = m.path().unwrap().to_string_lossy().into_owned();
            let mut bytes = Vec::new();
            m.read_to_end(&mut bytes).unwrap();
            (path, bytes)
        })
        .collect()
}

fn pack(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, bytes) in members {
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, path, &bytes[..]).unwrap();
    }
    builder.into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_too_large_for_one_entry_is_listed_in_parts_and_verifies() {
    let f = fixture().await;
    // 450 segments with 150-byte ids: their listing (some 70 KB) does not
    // fit one custody entry (65,535 bytes).
    let ids: Vec<String> = (0..450)
        .map(|i| format!("{i:04}-{}", "s".repeat(145)))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        let bytes = footage(i as u8, 100);
        f.objects
            .put(
                &ObjectPath::parse(format!("rec-7/{id}.mp4")).unwrap(),
                bytes.clone().into(),
            )
            .await
            .unwrap();
        f.t.ledger
            .append_event(&f.dock, &ingest_of(id, &bytes))
            .await
            .unwrap();
    }
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let tar = export_to_vec(&f, &refs).await.unwrap();
    let report = verify(&tar, &f.t.ledger).unwrap();
    assert!(report.is_valid());
    assert_eq!(report.segments.len(), 450);

    // The listing is in parts just before the export entry, which names
    // them and lists nothing itself.
    let entries = bundle_entries(&tar);
    let parts: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.action.as_str() == "export.listed")
        .collect();
    assert!(parts.len() >= 2, "{} parts", parts.len());
    let last = entries.last().unwrap();
    assert_eq!(last.action.as_str(), "export.created");
    let part_seqs: Vec<u64> = parts.iter().map(|e| e.seq).collect();
    assert_eq!(last.details["parts"], json!(part_seqs));
    assert_eq!(last.details["segments"], json!([]));
    let mut listed: Vec<String> = Vec::new();
    for part in &parts {
        assert_eq!(part.subject, last.subject);
        assert_eq!(part.actor, last.actor);
        listed.extend(
            part.details["segments"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_owned()),
        );
    }
    assert_eq!(listed, ids, "every segment in one part, in order");
    // The export is on each segment's custody record, through its part.
    let custody = custos_ledger::catalogue::segment_entries(f.t.ledger.store(), &ids[449]).unwrap();
    assert!(custody.contains(&parts.last().unwrap().seq), "{custody:?}");

    // A bundle with a part taken out (its line and its proof) fails, and
    // says which part.
    let gone = parts[0].seq;
    let mut members = unpack(&tar);
    for (path, bytes) in members.iter_mut() {
        if path == bundle::ENTRIES_PATH {
            let text = String::from_utf8(bytes.clone()).unwrap();
            let kept: String = text
                .lines()
                .filter(|l| serde_json::from_str::<Value>(l).unwrap()["seq"] != json!(gone))
                .map(|l| format!("{l}\n"))
                .collect();
            *bytes = kept.into_bytes();
        }
    }
    members.retain(|(path, _)| path != &format!("proofs/{gone}.json"));
    let doctored = pack(&members);
    let why = match verify(&doctored, &f.t.ledger) {
        Ok(report) => panic!("a bundle without its part verified: {report:?}"),
        Err(e) => e.to_string(),
    };
    assert!(why.contains(&format!("its part, entry {gone}")), "{why}");
}
