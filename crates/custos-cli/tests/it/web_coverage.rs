//! The supervisor's coverage page in a real browser: a recorder docked
//! three times with files 0001, 0002 and 0004 (0003 deleted on it between
//! dockings) has one open `coverage.gap` that the real `custos ledger
//! serve` derived from the manifests; the supervisor sees it in Chinese
//! and English, records the explanation through the form (CSRF-protected),
//! and the finding moves to the explained list. A reviewer has no such
//! page.

use crate::webdriver::{assert_inert, assert_translated, catalogue_keys, entries, Demo, Driver};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_explains_a_coverage_gap_in_the_browser() {
    let exe = env!("CARGO_BIN_EXE_custos");
    let demo = Demo::new(exe);
    for n in ["0001", "0002", "0004"] {
        demo.ingest_named("DSJ7Q", &format!("DSJ7Q_555001_{n}.MP4"));
    }
    let supervisor = demo.token("supervisor");
    let reviewer = demo.token("reviewer");
    let auditor = demo.token("auditor");
    let (_server, base) = demo.serve().await;
    let keys = catalogue_keys();
    let downloads = demo.tmp.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();

    // The ledger judges the settled recorder (at start-up here, since the
    // dockings ran in process): one finding naming 0003.
    let http = reqwest::Client::new();
    let mut open = Vec::new();
    for _ in 0..100 {
        let v: serde_json::Value = http
            .get(format!("{base}/v1/coverage?open=true"))
            .bearer_auth(&auditor)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        open = v["findings"].as_array().unwrap().clone();
        if !open.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(open.len(), 1, "{open:#?}");
    assert_eq!(open[0]["recorder_id"], "DSJ7Q");
    assert_eq!(
        (open[0]["first"].as_u64(), open[0]["last"].as_u64()),
        (Some(3), Some(3))
    );
    let seq = open[0]["gap_seq"].as_u64().unwrap();

    let driver = Driver::start().await;
    let sup = driver.browser(&downloads, "zh-CN").await;
    sup.sign_in(&base, &supervisor).await;
    // The approval queue says a finding is open and links to the page.
    sup.goto(&format!("{base}/ui/queue")).await;
    sup.find("#coverage-open-notice").await;
    sup.click("#nav-coverage").await;
    sup.find("#coverage-open tr.finding").await;
    assert_translated(&sup, "coverage", "zh-CN", &keys).await;
    assert_inert(&sup, "coverage").await;
    let row = sup.text("#coverage-open tr.finding").await;
    assert!(
        row.contains("文件缺失") && row.contains("0003") && row.contains("DSJ7Q"),
        "{row}"
    );
    sup.screenshot("coverage-open-zh-CN").await;

    // A forged form (no CSRF token) is refused and appends nothing.
    let before = entries(&base, &auditor).await.len();
    let forged = sup
        .js_async(
            "const done = arguments[arguments.length - 1];\
             fetch(arguments[0], {method: 'POST', headers: {'content-type': 'application/x-www-form-urlencoded'}, body: 'reason=forged'})\
               .then(r => done(r.status));",
            json!([format!("/ui/coverage/{seq}/explain")]),
        )
        .await;
    assert_ne!(
        forged,
        json!(303),
        "a form without its CSRF token went through"
    );
    assert_eq!(entries(&base, &auditor).await.len(), before);

    // The supervisor records the explanation through the form.
    sup.fill(
        "#coverage-open form.explain textarea",
        "记录仪存储已满，民警现场删除了该文件 (recorder full)",
    )
    .await;
    sup.click("#coverage-open form.explain button").await;
    sup.find("#coverage-explained tr.finding").await;
    sup.find("#coverage-empty").await;
    let done = sup.text("#coverage-explained tr.finding").await;
    assert!(
        done.contains("recorder full") && done.contains("sup-wang"),
        "{done}"
    );
    let added = entries(&base, &auditor).await;
    let last = added.last().unwrap();
    assert_eq!(last["action"], "coverage.explained");
    assert_eq!(last["details"]["gap_seq"], json!(seq));
    sup.goto(&format!("{base}/ui/coverage?lang=en")).await;
    sup.find("#coverage-explained").await;
    assert_translated(&sup, "coverage", "en", &keys).await;
    sup.screenshot("coverage-explained-en").await;
    sup.quit().await;

    // A reviewer has no coverage page and no link to it.
    let rev = driver.browser(&downloads, "en-US").await;
    rev.sign_in(&base, &reviewer).await;
    assert!(rev.try_find("#nav-coverage").await.is_none());
    rev.goto(&format!("{base}/ui/coverage")).await;
    rev.find("#error-detail").await;
    rev.quit().await;
}
