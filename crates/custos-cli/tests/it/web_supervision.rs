//! The supervisor's view and a case's custody report in a real browser,
//! against the real `custos ledger serve`: the supervision table over the
//! default period and a chosen one, its CSV download (a header row), both
//! languages; the case's report as a PDF and as a print view (printed:
//! A4, the checkpoint and page numbers on each page) for the supervisor, a
//! segment's for the reviewer whose approval covers it (recording
//! nothing); both refused to a reviewer without an approval (recorded as
//! `access.refused`, nothing else) and to an auditor; no supervision page
//! for a reviewer.

use crate::webdriver::{assert_inert, assert_translated, catalogue_keys, entries, Demo, Driver};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_sees_the_period_and_downloads_the_report() {
    let exe = env!("CARGO_BIN_EXE_custos");
    let demo = Demo::new(exe);
    for n in ["0001", "0002", "0004"] {
        demo.ingest_named("DSJ8R", &format!("DSJ8R_555002_{n}.MP4"));
    }
    let supervisor = demo.token("supervisor");
    let auditor = demo.token("auditor");
    let stranger = demo.new_token("reviewer", "rev-zhao");
    let (_server, base) = demo.serve().await;
    let keys = catalogue_keys();
    let downloads = demo.tmp.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();

    // Wait for the ledger's finding about DSJ8R (0003 missing).
    let http = reqwest::Client::new();
    let mut found = false;
    for _ in 0..100 {
        let v: serde_json::Value = http
            .get(format!("{base}/v1/coverage?recorder=DSJ8R"))
            .bearer_auth(&auditor)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if !v["findings"].as_array().unwrap().is_empty() {
            found = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(found, "no coverage finding for DSJ8R");

    let driver = Driver::start().await;
    let sup = driver.browser(&downloads, "zh-CN").await;
    sup.sign_in(&base, &supervisor).await;
    sup.click("#nav-supervision").await;
    sup.find("#supervision tr.supervision-row").await;
    assert_translated(&sup, "supervision", "zh-CN", &keys).await;
    assert_inert(&sup, "supervision").await;
    let row = sup
        .text("#supervision tr.supervision-row[data-recorder=\"DSJ8R\"]")
        .await;
    let cells: Vec<&str> = row.split_whitespace().collect();
    // officer, recorder, minutes, files 3, late 0, damaged 0, open 1, explained 0
    assert_eq!(cells[1], "DSJ8R", "{row}");
    assert_eq!(&cells[3..], ["3", "0", "0", "1", "0"], "{row}");
    // The recorder's sums, and totals that are the sums of the rows.
    let rec = sup
        .text("#supervision-recorders tr.supervision-sum[data-id=\"DSJ8R\"]")
        .await;
    let cells: Vec<&str> = rec.split_whitespace().collect();
    assert_eq!(&cells[2..], ["3", "0", "0", "1", "0"], "{rec}");
    let sums = sup
        .js(
            "const n = (sel, i) => [...document.querySelectorAll(sel)]\
               .map(tr => Number(tr.cells[i].textContent)).reduce((a, b) => a + b, 0);\
             const total = id => Number(document.querySelector(id + ' tfoot tr').cells[2].textContent);\
             return [n('#supervision tr.supervision-row', 3),\
                     total('#supervision-officers'), total('#supervision-recorders'),\
                     n('#supervision-officers tbody tr', 2)];",
            json!([]),
        )
        .await;
    let files = sums[0].as_u64().unwrap();
    assert!(files >= 3, "{sums}");
    assert_eq!(sums, json!([files, files, files, files]));
    sup.screenshot("supervision-zh-CN").await;

    // The CSV link: the same rows, a header row first.
    let csv = sup
        .js_async(
            "const done = arguments[arguments.length - 1];\
             fetch(document.getElementById('supervision-csv').href)\
               .then(r => r.text().then(t => done([r.status, r.headers.get('content-type'), t])));",
            json!([]),
        )
        .await;
    assert_eq!(csv[0], json!(200), "{csv}");
    assert_eq!(csv[1], json!("text/csv; charset=utf-8"));
    let text = csv[2].as_str().unwrap();
    assert!(
        text.starts_with("officer_id,recorder_id,recording_minutes,"),
        "{text}"
    );
    assert!(text.contains(",DSJ8R,"), "{text}");

    // The recorder's open finding links to the Coverage page showing the
    // findings of that recorder about the period: the one about DSJ8R.
    sup.click("#supervision-recorders tr.supervision-sum[data-id=\"DSJ8R\"] td.open-findings a")
        .await;
    let filter = sup.text("#coverage-filter").await;
    assert!(filter.contains("DSJ8R"), "{filter}");
    assert_eq!(sup.find_all("#coverage-open tr.finding").await.len(), 1);
    assert!(sup.text("#coverage-open").await.contains("DSJ8R"));
    assert_translated(&sup, "coverage (filtered)", "zh-CN", &keys).await;
    assert_inert(&sup, "coverage (filtered)").await;
    sup.screenshot("coverage-filtered-zh-CN").await;
    sup.goto(&format!("{base}/ui/coverage?recorder=DSJ1A2B3C"))
        .await;
    sup.find("#coverage-empty").await;
    sup.goto(&format!("{base}/ui/coverage?from=soon")).await;
    assert!(sup.text("#error-detail").await.contains("soon"));
    sup.click("#nav-supervision").await;
    sup.find("#supervision tr.supervision-row").await;

    // A chosen period with nothing in it; a malformed one says so.
    sup.goto(&format!(
        "{base}/ui/supervision?from=2000-01-01T00:00&to=2000-01-02T00:00&from_tz=480&to_tz=480"
    ))
    .await;
    sup.find("#supervision-empty").await;
    // The browser's 00:00 at +08:00, as the period's start (console.js
    // shows it in local time; the attribute keeps UTC).
    let start = sup
        .js(
            "return document.querySelector('#supervision-period time').getAttribute('datetime');",
            json!([]),
        )
        .await;
    assert_eq!(start, json!("1999-12-31T16:00:00Z"));
    // Dates alone are the API's UTC days, `to`'s day included.
    sup.goto(&format!(
        "{base}/ui/supervision?from=2000-01-01&to=2000-01-01"
    ))
    .await;
    sup.find("#supervision-empty").await;
    let csv_href = sup
        .js(
            "return document.getElementById('supervision-csv').getAttribute('href');",
            json!([]),
        )
        .await;
    assert_eq!(
        csv_href,
        json!("/ui/supervision.csv?from=2000-01-01T00%3A00%3A00Z&to=2000-01-02T00%3A00%3A00Z")
    );
    sup.goto(&format!("{base}/ui/supervision?from=soon")).await;
    assert!(sup.text("#supervision-error").await.contains("soon"));
    sup.goto(&format!("{base}/ui/supervision?lang=en")).await;
    sup.find("#supervision tr.supervision-row").await;
    assert_translated(&sup, "supervision", "en", &keys).await;
    sup.screenshot("supervision-en").await;

    // The demo's case: its report as PDF and as a print view.
    sup.goto(&format!("{base}/ui/cases?lang=zh-CN")).await;
    let case_url = sup
        .js(
            "return document.querySelector('#cases tr.case a').href;",
            json!([]),
        )
        .await
        .as_str()
        .unwrap()
        .to_owned();
    sup.goto(&case_url).await;
    sup.find("#case-report-pdf").await;
    let pdf = sup
        .js_async(
            "const done = arguments[arguments.length - 1];\
             fetch(document.getElementById('case-report-pdf').href)\
               .then(r => r.arrayBuffer().then(b => done([r.status, r.headers.get('content-type'),\
                 String.fromCharCode.apply(null, new Uint8Array(b.slice(0, 5))), b.byteLength])));",
            json!([]),
        )
        .await;
    assert_eq!(pdf[0], json!(200), "{pdf}");
    assert_eq!(pdf[1], json!("application/pdf"));
    assert_eq!(pdf[2], json!("%PDF-"));
    assert!(pdf[3].as_u64().unwrap() > 10_000, "{pdf}");
    let before = entries(&base, &auditor).await.len();
    sup.click("#case-report-html").await;
    sup.find("#report-files tr.file").await;
    assert_inert(&sup, "report").await;
    let files = sup.text("#report-files").await;
    assert!(files.contains("SHA-256"), "{files}");
    assert!(sup.text("#report-checkpoint").await.contains("checkpoint"));
    sup.screenshot("report-print-zh-CN").await;
    // Printed: A4 pages without the navigation, the hashes on paper; page 1
    // rendered to look at (report-print-zh-CN-1.png).
    let pdf = sup.print_pdf("report-print-zh-CN").await;
    let info = poppler("pdfinfo", &[pdf.as_os_str()]);
    assert!(
        info.contains("Page size:       595.2 x 841.68 pts (A4)") || info.contains("(A4)"),
        "{info}"
    );
    let printed = poppler("pdftotext", &[pdf.as_os_str(), "-".as_ref()]);
    assert!(printed.contains("电子数据提取固定清单"), "{printed}");
    assert!(
        !printed.contains("下载 PDF"),
        "the navigation was printed:\n{printed}"
    );
    // As on the PDF's pages: the checkpoint and "page N of M" on each page.
    let pages: usize = info
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{info}"));
    assert_eq!(
        printed.matches("检查点 checkpoint").count(),
        pages,
        "{printed}"
    );
    assert!(
        printed.contains(&format!("page {pages} of {pages}")),
        "{printed}"
    );
    let hash = files
        .split_whitespace()
        .find(|w| w.len() == 64 && w.chars().all(|c| c.is_ascii_hexdigit()))
        .unwrap_or_else(|| panic!("no SHA-256 in the file list: {files}"));
    assert!(
        printed.replace(['\n', ' '], "").contains(hash),
        "{hash} not printed:\n{printed}"
    );
    let png = pdf.with_extension("");
    poppler(
        "pdftoppm",
        &[
            "-png".as_ref(),
            "-r".as_ref(),
            "60".as_ref(),
            "-f".as_ref(),
            "1".as_ref(),
            "-l".as_ref(),
            "2".as_ref(),
            pdf.as_os_str(),
            png.as_os_str(),
        ],
    );
    // Making the report recorded nothing.
    assert_eq!(entries(&base, &auditor).await.len(), before);
    let report_url = sup.url().await;
    let segment = sup
        .js(
            "return document.querySelector('#report-files tr.file').dataset.segment;",
            json!([]),
        )
        .await
        .as_str()
        .unwrap()
        .to_owned();
    sup.quit().await;
    let segment_report = format!("{base}/ui/segments/{segment}/report");

    // The reviewer whose approval covers the case: the segment's report,
    // in English, recording nothing (opened directly: the segment's page
    // itself plays the footage, a logged view).
    let approved = demo.token("reviewer");
    let before = entries(&base, &auditor).await.len();
    let rev = driver.browser(&downloads, "en-US").await;
    rev.sign_in(&base, &approved).await;
    rev.goto(&format!("{segment_report}?lang=en")).await;
    assert_eq!(rev.find_all("#report-files tr.file").await.len(), 1);
    rev.find(&format!(
        "#report-files tr.file[data-segment=\"{segment}\"]"
    ))
    .await;
    assert!(!rev.text("#report-cover").await.contains("case-"));
    assert!(rev.text("#report-back").await.contains("segment"));
    // The approval it was made under: the case's, which covers the segment.
    let approvals = rev.text("#report-approvals").await;
    assert!(
        approvals.contains("reviewer:rev-li") && approvals.contains("case-"),
        "{approvals}"
    );
    assert_inert(&rev, "segment report").await;
    rev.screenshot("report-segment-en").await;
    let pdf = rev
        .js_async(
            "const done = arguments[arguments.length - 1];\
             fetch(document.getElementById('report-pdf').href)\
               .then(r => r.arrayBuffer().then(b => done([r.status, r.headers.get('content-type')])));",
            json!([]),
        )
        .await;
    assert_eq!(pdf, json!([200, "application/pdf"]));
    let log = entries(&base, &auditor).await;
    assert_eq!(log.len(), before, "{:?}", &log[before..]);
    // The segment's page links to it (read as text: opened, its player
    // would record a view).
    let page = rev
        .js_async(
            "const done = arguments[arguments.length - 1];\
             fetch(document.getElementById('report-back').href).then(r => r.text()).then(done);",
            json!([]),
        )
        .await;
    let page = page.as_str().unwrap();
    assert!(
        page.contains(&format!(
            "id=\"segment-report-html\" href=\"/ui/segments/{segment}/report\""
        )),
        "{page}"
    );
    rev.quit().await;

    // A reviewer without an approval: refused, the refusal recorded and
    // nothing else appended.
    let before = entries(&base, &auditor).await.len();
    let rev = driver.browser(&downloads, "en-US").await;
    rev.sign_in(&base, &stranger).await;
    assert!(rev.try_find("#nav-supervision").await.is_none());
    rev.goto(&format!("{base}/ui/supervision")).await;
    rev.find("#error-detail").await;
    rev.goto(&report_url).await;
    let why = rev.text("#error-detail").await;
    assert!(why.contains("approv"), "{why}");
    assert!(rev.try_find("#report-files").await.is_none());
    rev.goto(&format!("{report_url}.pdf")).await;
    rev.find("#error-detail").await;
    for url in [segment_report.clone(), format!("{segment_report}.pdf")] {
        rev.goto(&url).await;
        let why = rev.text("#error-detail").await;
        assert!(why.contains("approv"), "{url}: {why}");
    }
    let log = entries(&base, &auditor).await;
    let last = log.last().unwrap();
    assert_eq!(last["action"], "access.refused");
    assert_eq!(last["actor"]["id"], "rev-zhao");
    assert_eq!(last["details"]["attempted"], "custody.report");
    let added = &log[before..];
    assert!(
        !added.is_empty() && added.iter().all(|e| e["action"] == "access.refused"),
        "{added:?}"
    );
    rev.quit().await;

    // An auditor: the supervision view with its open finding, but no link
    // to the Coverage page (a supervisor's); no report link, and the
    // report refused.
    let aud = driver.browser(&downloads, "en-US").await;
    aud.sign_in(&base, &auditor).await;
    aud.click("#nav-supervision").await;
    let total = aud
        .text("#supervision-recorders tr.supervision-total")
        .await;
    assert!(total.split_whitespace().any(|w| w == "1"), "{total}");
    assert!(aud.try_find("td.open-findings a").await.is_none());
    assert!(aud.try_find("#nav-coverage").await.is_none());
    aud.goto(&case_url).await;
    aud.find("#case-id").await;
    assert!(aud.try_find("#case-report-pdf").await.is_none());
    aud.goto(&report_url).await;
    aud.find("#error-detail").await;
    aud.goto(&segment_report).await;
    aud.find("#error-detail").await;
    assert!(aud.try_find("#report-files").await.is_none());
    aud.quit().await;
}

/// Runs a poppler-utils tool; its standard output.
fn poppler(tool: &str, args: &[&std::ffi::OsStr]) -> String {
    let out = std::process::Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert!(
        out.status.success(),
        "{tool}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
