//! Completeness of each recorder's footage (全过程覆盖), end to end: a real
//! `custos dock ingest` docks recorders with a file deleted before docking
//! and with files whose times run backwards; the real ledger service
//! records one `coverage.gap` per finding from the manifests, without
//! holding up the ingest or the wipe; a supervisor's explanation
//! (`coverage.explained`) closes one, once; every other role is refused; a
//! second docking and a restart of the ledger record nothing twice.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{ok, poll, Site, SiteOptions};

/// One request to the site's ledger; (status, body as JSON or Null).
fn call(site: &Site, method: &str, path: &str, token: &str, body: Option<&str>) -> (u16, Value) {
    let url = format!("{}{path}", site.ledger_url());
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let mut req = reqwest::Client::new()
                .request(method, &url)
                .bearer_auth(token);
            if let Some(b) = body {
                req = req
                    .header("content-type", "application/json")
                    .body(b.to_owned());
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            (status, serde_json::from_str(&text).unwrap_or(Value::Null))
        })
}

/// The findings of `recorder`, as the auditor reads them.
fn findings(site: &Site, query: &str) -> Vec<Value> {
    let (status, body) = call(
        site,
        "GET",
        &format!("/v1/coverage?{query}"),
        &site.tokens.auditor,
        None,
    );
    assert_eq!(status, 200, "{body}");
    body["findings"].as_array().unwrap().clone()
}

/// How many `coverage.gap` entries the log holds.
fn gap_entries(site: &Site) -> usize {
    let url = format!("{}/v1/entries?start=0", site.ledger_url());
    let text = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            reqwest::Client::new()
                .get(&url)
                .bearer_auth(&site.tokens.auditor)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        });
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| serde_json::from_str::<Value>(l).unwrap()["entry"]["action"] == "coverage.gap")
        .count()
}

/// Dock `recorder` and check that the dock finished and wiped everything
/// (an empty recorder names no device: its id is given).
fn dock(site: &Site, recorder: &std::path::Path) {
    let mut cmd = site.dock_ingest(recorder);
    if Site::files_on(recorder).is_empty() {
        cmd.arg("--recorder-id").arg(recorder.file_name().unwrap());
    }
    let out = cmd.output().unwrap();
    let stdout = ok("custos dock ingest", &out);
    assert!(stdout.contains("0 left on the recorder"), "{stdout}");
    assert!(
        Site::files_on(recorder).is_empty(),
        "the wipe was held up: {:?}",
        Site::files_on(recorder)
    );
}

#[test]
fn gaps_are_recorded_once_and_a_supervisor_explains_them() {
    let mut site = Site::start(SiteOptions::default());

    // Files 0001, 0002, 0004: 0003 was deleted on the recorder.
    let rec = site.recorder("DSJC0003", "070809", 4, 2);
    let media = rec.join("DCIM/100MEDIA");
    let third = Site::files_on(&rec)
        .into_iter()
        .find(|n| n.ends_with("_0003.MP4"))
        .unwrap();
    std::fs::remove_file(media.join(&third)).unwrap();
    dock(&site, &rec);
    assert!(
        poll(Duration::from_secs(30), || !findings(
            &site,
            "recorder=DSJC0003"
        )
        .is_empty()),
        "no coverage finding for the recorder missing file 0003"
    );
    let found = findings(&site, "recorder=DSJC0003");
    assert_eq!(found.len(), 1, "{found:#?}");
    let gap = &found[0];
    assert_eq!(gap["kind"], "missing_files");
    assert_eq!(
        (gap["first"].as_u64(), gap["last"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(gap["officer_id"], "070809");
    assert_eq!(gap["state"], "open");
    assert!(
        gap["description"].as_str().unwrap().contains("0003"),
        "{gap}"
    );
    // The gap runs from the end of file 0002 to the start of file 0004.
    let segs: Vec<String> = gap["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(segs.len(), 2, "{gap}");
    let manifest = |id: &str| {
        let (status, body) = call(
            &site,
            "GET",
            &format!("/v1/segments/{id}"),
            &site.tokens.auditor,
            None,
        );
        assert_eq!(status, 200, "{body}");
        body
    };
    let before = manifest(&segs[0]);
    let after = manifest(&segs[1]);
    let recorded = |v: &Value, end: &str| {
        v.pointer(&format!("/segment/manifest/recorded/{end}"))
            .or_else(|| v.pointer(&format!("/manifest/recorded/{end}")))
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no recorded.{end} in {v}"))
            .to_owned()
    };
    assert_eq!(gap["from"].as_str().unwrap(), recorded(&before, "end"));
    assert_eq!(gap["to"].as_str().unwrap(), recorded(&after, "start"));
    assert!(
        gap["from"].as_str().unwrap() < gap["to"].as_str().unwrap(),
        "{gap}"
    );

    // A clock jump: the recorder's second file starts before its first.
    let rec2 = site.recorder("DSJD0004", "070809", 2, 2);
    let media2 = rec2.join("DCIM/100MEDIA");
    let names = Site::files_on(&rec2);
    let tmp = media2.join("swap.tmp");
    std::fs::rename(media2.join(&names[0]), &tmp).unwrap();
    std::fs::rename(
        media2.join(&names[1]),
        media2.join(names[1].replace("_0002.MP4", "_0001.MP4")),
    )
    .unwrap();
    std::fs::rename(
        &tmp,
        media2.join(names[0].replace("_0001.MP4", "_0002.MP4")),
    )
    .unwrap();
    dock(&site, &rec2);
    assert!(
        poll(Duration::from_secs(30), || !findings(
            &site,
            "recorder=DSJD0004"
        )
        .is_empty()),
        "no coverage finding for the clock jump"
    );
    let jump = findings(&site, "recorder=DSJD0004");
    assert_eq!(jump.len(), 1, "{jump:#?}");
    assert_eq!(jump[0]["kind"], "clock_jump");

    // The explanation: the supervisor only, once, for a finding that exists.
    let seq = gap["gap_seq"].as_u64().unwrap();
    let path = format!("/v1/coverage/{seq}/explanation");
    let body = r#"{"reason":"记录仪存储已满，民警现场删除 (recorder full)"}"#;
    let t = &site.tokens;
    for (role, token) in [
        ("dock", &t.dock),
        ("officer", &t.officer),
        ("reviewer", &t.reviewer),
        ("auditor", &t.auditor),
        ("admin", &t.admin),
    ] {
        let (status, answer) = call(&site, "POST", &path, token, Some(body));
        assert_eq!(status, 403, "{role}: {answer}");
    }
    let size = site.size();
    for (bad, want) in [
        (r#"{"reason":"  "}"#.to_owned(), 400),
        (format!(r#"{{"reason":"{}"}}"#, "x".repeat(2001)), 400),
        (r#"{"reason":"x","extra":1}"#.to_owned(), 400),
    ] {
        let (status, answer) = call(&site, "POST", &path, &t.supervisor, Some(&bad));
        assert_eq!(status, want, "{answer}");
    }
    let (status, answer) = call(
        &site,
        "POST",
        "/v1/coverage/999999/explanation",
        &t.supervisor,
        Some(body),
    );
    assert_eq!(status, 404, "{answer}");
    assert_eq!(answer["error"], "unknown_finding", "{answer}");
    let (status, answer) = call(
        &site,
        "POST",
        "/v1/coverage/abc/explanation",
        &t.supervisor,
        Some(body),
    );
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        site.size(),
        size,
        "a refused explanation appended something"
    );

    let (status, answer) = call(&site, "POST", &path, &t.supervisor, Some(body));
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = call(&site, "POST", &path, &t.supervisor, Some(body));
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"], "already_explained", "{answer}");
    let open = findings(&site, "open=true");
    assert_eq!(open.len(), 1, "{open:#?}");
    assert_eq!(open[0]["kind"], "clock_jump");
    let explained = findings(&site, "open=false&officer=070809");
    assert_eq!(explained.len(), 1, "{explained:#?}");
    assert_eq!(explained[0]["state"], "explained");
    assert_eq!(explained[0]["explanation"]["by"]["id"], "sup-e2e");
    assert!(explained[0]["explanation"]["reason"]
        .as_str()
        .unwrap()
        .contains("recorder full"));

    // The explanation is in the custody record of the segments it is about.
    let (_, custody) = call(
        &site,
        "GET",
        &format!("/v1/segments/{}/custody", segs[1]),
        &t.auditor,
        None,
    );
    assert!(
        custody.to_string().contains("coverage.explained")
            && custody.to_string().contains("coverage.gap"),
        "{custody}"
    );

    // Docking again and restarting the ledger record nothing twice.
    assert_eq!(gap_entries(&site), 2);
    dock(&site, &rec);
    site.kill_ledger();
    site.start_ledger();
    std::thread::sleep(Duration::from_secs(2));
    dock(&site, &rec2);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(gap_entries(&site), 2);
    assert_eq!(findings(&site, "").len(), 2);
}

/// `custos coverage list|explain` and `custos supervision` against the
/// real ledger process, through custos-client with `[client]`'s token:
/// the table, JSON and CSV forms, the period filter, one explanation and
/// the refusal of a second, and a reviewer refused the supervisor's view.
#[test]
fn coverage_and_supervision_from_the_command_line() {
    let site = Site::start(SiteOptions::default());
    let rec = site.recorder("DSJE0005", "070810", 4, 2);
    let media = rec.join("DCIM/100MEDIA");
    let third = Site::files_on(&rec)
        .into_iter()
        .find(|n| n.ends_with("_0003.MP4"))
        .unwrap();
    std::fs::remove_file(media.join(&third)).unwrap();
    dock(&site, &rec);
    assert!(
        poll(Duration::from_secs(30), || !findings(
            &site,
            "recorder=DSJE0005"
        )
        .is_empty()),
        "no coverage finding for the recorder missing file 0003"
    );
    let run = |args: &[&str]| {
        let mut cmd = site.custos();
        cmd.args(args).arg("--config").arg(&site.config);
        cmd.output().unwrap()
    };

    // The table: a header row and the finding.
    let out = run(&["coverage", "list", "--open"]);
    let table = ok("custos coverage list", &out);
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("SEQ") && header.contains("RECORDER"),
        "{table}"
    );
    let row = lines.next().unwrap();
    assert!(
        row.contains("DSJE0005") && row.contains("missing_files") && row.contains("0003"),
        "{table}"
    );
    assert!(table.contains("1 finding(s)"), "{table}");
    let seq: u64 = row.split_whitespace().next().unwrap().parse().unwrap();

    // JSON, and the period filter: nothing about the year 2000.
    let out = run(&["coverage", "list", "--json", "--recorder", "DSJE0005"]);
    let v: Value = serde_json::from_str(&ok("custos coverage list --json", &out)).unwrap();
    assert_eq!(v["findings"][0]["gap_seq"], seq);
    let out = run(&[
        "coverage",
        "list",
        "--json",
        "--from",
        "2000-01-01T00:00:00Z",
        "--to",
        "2000-01-02T00:00:00Z",
    ]);
    let v: Value = serde_json::from_str(&ok("custos coverage list --from", &out)).unwrap();
    assert_eq!(v["findings"], serde_json::json!([]));

    // The supervisor's view around now: the officer's row, one open finding.
    let fmt = &time::format_description::well_known::Rfc3339;
    let now = time::OffsetDateTime::now_utc();
    let from = (now - time::Duration::days(3)).format(fmt).unwrap();
    let to = (now + time::Duration::days(1)).format(fmt).unwrap();
    let out = run(&["supervision", "--from", &from, "--to", &to]);
    let table = ok("custos supervision", &out);
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("070810"))
        .unwrap_or_else(|| panic!("no row for the officer:\n{table}"))
        .split_whitespace()
        .collect();
    assert!(table.contains("OFFICER"), "{table}");
    // officer, recorder, h:mm:ss, files, late, damaged, open, explained
    assert_eq!(row[1], "DSJE0005", "{table}");
    assert_eq!(&row[3..], ["3", "0", "0", "1", "0"], "{table}");
    // No period given: the last seven days, which hold these files; the
    // total line sums the rows.
    let out = run(&["supervision"]);
    let table = ok("custos supervision (no period)", &out);
    assert!(table.lines().any(|l| l.starts_with("070810")), "{table}");
    let total: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("TOTAL"))
        .unwrap_or_else(|| panic!("no total line:\n{table}"))
        .split_whitespace()
        .collect();
    assert_eq!(&total[2..], ["3", "0", "0", "1", "0"], "{table}");
    let out = run(&["supervision", "--from", &from, "--to", &to, "--csv"]);
    let csv = ok("custos supervision --csv", &out);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("officer_id,recorder_id,recording_minutes,segments,late_ingests,damaged,findings_open,findings_explained")
    );
    let cells: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(&cells[..2], ["070810", "DSJE0005"], "{csv}");
    assert_eq!(cells[3], "3", "{csv}");
    assert_eq!(&cells[6..], ["1", "0"], "{csv}");

    // A bad period: one line, exit 2, nothing else.
    let out = run(&["supervision", "--from", "yesterday", "--to", &to]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("from=\\\"yesterday\\\"") || err.contains("yesterday"),
        "{err}"
    );

    // The explanation, once.
    let seq_text = seq.to_string();
    let out = run(&[
        "coverage",
        "explain",
        &seq_text,
        "--reason",
        "存储卡已满 card full",
    ]);
    assert!(ok("custos coverage explain", &out).contains("explained"));
    let size = site.size();
    let out = run(&["coverage", "explain", &seq_text, "--reason", "again"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already_explained") || err.contains("already explained"),
        "{err}"
    );
    assert_eq!(
        site.size(),
        size,
        "a refused explanation appended something"
    );
    let out = run(&["supervision", "--from", &from, "--to", &to, "--csv"]);
    let csv = ok("custos supervision --csv", &out);
    assert!(csv.lines().nth(1).unwrap().ends_with(",0,1"), "{csv}");

    // A reviewer's token: refused the view, and may not explain.
    let reviewer = site.path("reviewer.toml");
    let text = std::fs::read_to_string(&site.config)
        .unwrap()
        .replace(&site.tokens.supervisor, &site.tokens.reviewer);
    std::fs::write(&reviewer, text).unwrap();
    let mut cmd = site.custos();
    cmd.args(["supervision", "--from", &from, "--to", &to, "--config"])
        .arg(&reviewer);
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("403") || err.contains("forbidden"), "{err}");
}
