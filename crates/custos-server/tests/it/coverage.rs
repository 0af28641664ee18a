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

/// The supervisor's view over the API: the period cuts files that straddle
/// its start, a period with only a gap in it shows the finding, an empty
/// period has no rows; CSV by `format=csv` and by `Accept`; supervisors
/// and auditors only; bad periods refused. And `GET /v1/coverage`'s period.
#[tokio::test]
async fn supervision_counts_the_period_per_officer_and_recorder() {
    let t = TestLedger::new().await;
    assert!(t
        .post_event(&docked_event("rec-9"))
        .await
        .status
        .is_success());
    for n in [1, 2, 4] {
        ingest(&t, n).await;
    }
    assert!(t
        .post_event(&undocked("rec-9", &[]))
        .await
        .status
        .is_success());
    wait_for_findings(&t, 1).await;
    let sup = Some(Role::Supervisor);

    // From the middle of file 0001 (07:01:00-07:01:30) on: 15 s of it,
    // then 0002 and 0004 whole; the gap 07:02:30-07:04:00 is open.
    let a = t
        .get(
            "/v1/supervision?from=2026-03-01T07:01:15Z&to=2026-03-01T08:00:00Z",
            sup,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let v = a.json();
    assert_eq!(v["from"], "2026-03-01T07:01:15Z");
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{v}");
    let r = &rows[0];
    assert_eq!(r["officer_id"], "officer-9");
    assert_eq!(r["recorder_id"], "rec-9");
    assert_eq!(r["recording_ms"], 75_000);
    assert_eq!(r["segments"], 3);
    assert_eq!(r["findings_open"], 1);
    assert_eq!(r["findings_explained"], 0);

    // Only the gap in the period: a row with no files and the finding.
    let a = t
        .get(
            "/v1/supervision?from=2026-03-01T07:03:00Z&to=2026-03-01T07:03:30Z",
            Some(Role::Auditor),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let r = &a.json()["rows"][0];
    assert_eq!(
        (r["segments"].as_u64(), r["findings_open"].as_u64()),
        (Some(0), Some(1))
    );
    // Nothing in the period: no rows. Another officer: none either.
    for q in [
        "from=2026-03-01T06:00:00Z&to=2026-03-01T07:00:00Z",
        "from=2026-03-01T07:00:00Z&to=2026-03-01T08:00:00Z&officer=officer-1",
    ] {
        let a = t.get(&format!("/v1/supervision?{q}"), sup).await;
        assert_eq!(a.json()["rows"], serde_json::json!([]), "{q}");
    }

    // CSV: by format=csv and by Accept.
    let q = "from=2026-03-01T07:00:00%2B08:00&to=2026-03-01T08:00:00Z";
    let a = t.get(&format!("/v1/supervision?{q}&format=csv"), sup).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.content_type(), "text/csv; charset=utf-8");
    assert!(a.header("content-disposition").starts_with("attachment"));
    let csv = a.text();
    let lines: Vec<&str> = csv.split("\r\n").collect();
    assert_eq!(lines[0], governance::CSV_HEADER.join(","));
    assert_eq!(lines[1], "officer-9,rec-9,1.50,3,0,0,1,0");
    let req = axum::http::Request::get(format!("/v1/supervision?{q}"))
        .header(
            "authorization",
            format!("Bearer {}", t.token(Role::Supervisor)),
        )
        .header("accept", "text/html, text/csv;q=0.9")
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(t.send(req).await.text(), csv);

    // A recorder names the officer (it is trusted with nothing): a name a
    // spreadsheet would run as a formula stays text in the CSV.
    let mut m = manifest(
        "evil_0001",
        "+rec-evil",
        "=HYPERLINK(\"http://evil.example\",\"x\")",
        "2026-03-02T07:00:00Z",
    );
    m.recorded.end = custos_core::manifest::Timestamp::parse("2026-03-02T07:00:30Z").unwrap();
    let a = t
        .post_event(&ingest_event_with(&crate::util::dock_key(), &m))
        .await;
    assert!(a.status.is_success(), "{}", a.text());
    let a = t
        .get(
            "/v1/supervision?from=2026-03-02&to=2026-03-02&format=csv",
            sup,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(
        a.text().split("\r\n").nth(1),
        Some("\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\",'+rec-evil,0.50,1,0,0,0,0"),
        "{}",
        a.text()
    );

    // Who: supervisors and auditors; not reviewers, admins, docks, officers.
    for role in [Role::Reviewer, Role::Admin, Role::Dock, Role::Officer] {
        let a = t.get(&format!("/v1/supervision?{q}"), Some(role)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{role:?}");
    }
    assert_eq!(
        t.get(&format!("/v1/supervision?{q}"), None).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Bad periods: one clear 400 each, saying what is wrong.
    for (q, says) in [
        ("from=2026-03-01T07:00:00Z&to=2026-3-1", "to=\"2026-3-1\""),
        (
            "from=2026-03-01T07:00:00Z&to=2026-02-30",
            "to=\"2026-02-30\"",
        ),
        (
            "from=yesterday&to=2026-03-01T08:00:00Z",
            "from=\"yesterday\"",
        ),
        ("from=2026-03-01T08:00:00Z&to=2026-03-01T07:00:00Z", "after"),
        ("from=2024-01-01T00:00:00Z&to=2026-03-01T08:00:00Z", "366"),
        (
            "from=2026-03-01T07:00:00Z&to=2026-03-01T08:00:00Z&format=xlsx",
            "format",
        ),
    ] {
        let a = t.get(&format!("/v1/supervision?{q}"), sup).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{q}: {}", a.text());
        assert!(a.error().message.contains(says), "{q}: {}", a.text());
    }

    // Dates are UTC days (a `to` date includes its day), with the sums per
    // officer, per recorder and in all; no period is the last seven days
    // up to now (2026 holds nothing then: an empty view, not an error).
    let a = t
        .get("/v1/supervision?from=2026-03-01&to=2026-03-01", sup)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let v = a.json();
    assert_eq!(
        (v["from"].as_str(), v["to"].as_str()),
        (Some("2026-03-01T00:00:00Z"), Some("2026-03-02T00:00:00Z"))
    );
    assert_eq!(v["rows"][0]["segments"], 3);
    assert_eq!(v["by_officer"][0]["id"], "officer-9");
    assert_eq!(v["by_recorder"][0]["id"], "rec-9");
    assert_eq!(
        v["by_recorder"][0]["recording_ms"],
        v["rows"][0]["recording_ms"]
    );
    assert_eq!(
        (
            v["total"]["segments"].as_u64(),
            v["total"]["findings_open"].as_u64()
        ),
        (Some(3), Some(1))
    );
    let a = t.get("/v1/supervision", sup).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let v = a.json();
    assert_eq!(v["rows"], serde_json::json!([]), "{v}");
    assert_eq!(v["total"]["segments"], 0);
    let (from, to) = (
        v["from"].as_str().unwrap().to_owned(),
        v["to"].as_str().unwrap().to_owned(),
    );
    let (from, to) = (
        custos_core::manifest::Timestamp::parse(&from).unwrap(),
        custos_core::manifest::Timestamp::parse(&to).unwrap(),
    );
    assert_eq!(to.duration_since(from), time::Duration::days(7));

    // GET /v1/coverage by period: the gap is about 07:02:30-07:04:00.
    for (q, n) in [
        ("from=2026-03-01T07:03:00Z", 1),
        ("to=2026-03-01T07:02:00Z", 0),
        ("from=2026-03-01T07:00:00Z&to=2026-03-01T07:02:31Z", 1),
        ("from=2026-03-01T08:00:00Z", 0),
        ("from=2026-03-01&to=2026-03-01", 1),
        ("to=2026-02-28", 0),
    ] {
        let a = t.get(&format!("/v1/coverage?{q}"), sup).await;
        assert_eq!(a.status, StatusCode::OK, "{q}: {}", a.text());
        assert_eq!(a.json()["findings"].as_array().unwrap().len(), n, "{q}");
    }
    let a = t.get("/v1/coverage?from=soon", sup).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text());
}
