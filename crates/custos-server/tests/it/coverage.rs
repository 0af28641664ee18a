//! Coverage findings (`coverage.gap`) and their explanation
//! (`coverage.explained`) through the API of a ledger in a temp dir: a
//! recorder is judged only once its docking ended with nothing left, a
//! finding is recorded once however often it is judged, and only a
//! supervisor explains one, once.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use custos_core::entry::details::RecorderUndocked;
use custos_core::entry::Details;
use custos_ledger::governance;
use custos_ledger::Role;

use crate::util::{docked_event, event, ingest_event_with, manifest, TestLedger};

fn undocked(recorder: &str, incomplete: &[&str]) -> custos_core::dsse::Envelope {
    let d = Details::RecorderUndocked(RecorderUndocked {
        slot: "1".into(),
        segments: 3,
        done: 3 - incomplete.len() as u64,
        incomplete: incomplete.iter().map(|s| (*s).to_owned()).collect(),
    });
    event(d.action(), recorder, d.to_map())
}

/// Ingest file `n` of recorder `rec-9` (named `rec9_000N.MP4`), recorded
/// at minute `n` for 30 s.
async fn ingest(t: &TestLedger, n: u32) {
    let id = format!("rec9_{n:04}");
    let start = format!("2026-03-01T07:{n:02}:00Z");
    let mut m = manifest(&id, "rec-9", "officer-9", &start);
    m.recorded.end =
        custos_core::manifest::Timestamp::parse(&format!("2026-03-01T07:{n:02}:30Z")).unwrap();
    let a = t
        .post_event(&ingest_event_with(&crate::util::dock_key(), &m))
        .await;
    assert!(a.status.is_success(), "{}", a.text());
}

async fn wait_for_findings(t: &TestLedger, n: usize) {
    for _ in 0..200 {
        if t.entries_of("coverage.gap").len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no {n} coverage.gap entries");
}

#[tokio::test]
async fn a_settled_recorder_gets_one_gap_entry_and_a_supervisor_explains_it_once() {
    let t = TestLedger::new().await;
    assert!(t
        .post_event(&docked_event("rec-9"))
        .await
        .status
        .is_success());
    for n in [1, 2, 4] {
        ingest(&t, n).await;
    }
    // Docking under way: not judged.
    assert!(governance::settle(&t.ledger, "rec-9")
        .await
        .unwrap()
        .is_empty());
    // The docking left a file behind: still not judged (its file may be 0003).
    assert!(t
        .post_event(&undocked("rec-9", &["rec9_0003"]))
        .await
        .status
        .is_success());
    assert!(governance::settle(&t.ledger, "rec-9")
        .await
        .unwrap()
        .is_empty());
    assert!(t.entries_of("coverage.gap").is_empty());

    // Docked again, nothing left behind: one finding, naming 0003.
    assert!(t
        .post_event(&docked_event("rec-9"))
        .await
        .status
        .is_success());
    assert!(t
        .post_event(&undocked("rec-9", &[]))
        .await
        .status
        .is_success());
    wait_for_findings(&t, 1).await;
    assert!(governance::settle(&t.ledger, "rec-9")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(governance::settle_all(&t.ledger).await.unwrap(), 0);
    let gaps = t.entries_of("coverage.gap");
    assert_eq!(gaps.len(), 1, "{gaps:#?}");
    let gap = &gaps[0];
    assert_eq!(gap["actor"]["kind"], "ledger");
    assert_eq!(gap["subject"], "rec-9");
    assert_eq!(gap["details"]["first"], 3);
    assert_eq!(gap["details"]["last"], 3);
    assert_eq!(gap["details"]["from"], "2026-03-01T07:02:30Z");
    assert_eq!(gap["details"]["to"], "2026-03-01T07:04:00Z");
    assert_eq!(
        gap["details"]["segments"],
        serde_json::json!(["rec9_0002", "rec9_0004"])
    );
    let seq = gap["seq"].as_u64().unwrap();

    // It is in the custody of the segments it names.
    let c = t
        .get("/v1/segments/rec9_0004/custody", Some(Role::Auditor))
        .await;
    assert!(c.text().contains("coverage.gap"), "{}", c.text());

    // Listing: every reader role; open only.
    for role in [Role::Reviewer, Role::Supervisor, Role::Auditor, Role::Admin] {
        let a = t
            .get("/v1/coverage?recorder=rec-9&open=true", Some(role))
            .await;
        assert_eq!(a.status, StatusCode::OK, "{role:?}");
        assert_eq!(a.json()["findings"][0]["gap_seq"], seq);
    }
    for role in [Role::Dock, Role::Officer] {
        let a = t.get("/v1/coverage", Some(role)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{role:?}");
    }
    assert_eq!(
        t.get("/v1/coverage", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let a = t.get("/v1/coverage?open=maybe", Some(Role::Auditor)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text());

    // Explaining: the supervisor only, a reason, once, an existing finding.
    let path = format!("/v1/coverage/{seq}/explanation");
    let body = |reason: &str| {
        Some((
            "application/json",
            serde_json::json!({ "reason": reason })
                .to_string()
                .into_bytes(),
        ))
    };
    let size = t.size();
    for role in [Role::Dock, Role::Officer, Role::Reviewer, Role::Auditor] {
        let a = t
            .call(Method::POST, &path, Some(t.token(role)), body("r"))
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{role:?}");
    }
    let a = t.call(Method::POST, &path, None, body("r")).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(t.size(), size, "a refused explanation appended something");
    // The admin is refused too; its token use is on the record.
    let a = t
        .call(Method::POST, &path, Some(t.token(Role::Admin)), body("r"))
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let size = t.size();
    let sup = Some(t.token(Role::Supervisor));
    for (b, want) in [
        (body(" "), StatusCode::BAD_REQUEST),
        (body(&"长".repeat(700)), StatusCode::BAD_REQUEST),
        (None, StatusCode::BAD_REQUEST),
    ] {
        let a = t.call(Method::POST, &path, sup, b).await;
        assert_eq!(a.status, want, "{}", a.text());
    }
    let a = t
        .call(Method::POST, "/v1/coverage/0/explanation", sup, body("r"))
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text());
    assert_eq!(a.error().error, "unknown_finding");
    let a = t
        .call(Method::POST, "/v1/coverage/-1/explanation", sup, body("r"))
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text());
    assert_eq!(t.size(), size);

    let a = t
        .call(Method::POST, &path, sup, body("电池耗尽 battery ran out"))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let a = t.call(Method::POST, &path, sup, body("again")).await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text());
    assert_eq!(a.error().error, "already_explained");
    let explained = t.entries_of("coverage.explained");
    assert_eq!(explained.len(), 1);
    assert_eq!(explained[0]["details"]["gap_seq"], seq);
    assert_eq!(explained[0]["actor"]["kind"], "supervisor");
    let a = t.get("/v1/coverage?open=true", Some(Role::Auditor)).await;
    assert_eq!(a.json()["findings"], serde_json::json!([]));
    let a = t
        .get("/v1/coverage?officer=officer-9", Some(Role::Auditor))
        .await;
    let f = &a.json()["findings"][0];
    assert_eq!(f["state"], "explained");
    assert_eq!(f["explanation"]["reason"], "电池耗尽 battery ran out");
}
