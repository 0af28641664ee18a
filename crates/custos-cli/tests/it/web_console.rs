//! The web console in a real browser (headless Chromium over WebDriver):
//! footage ingested through the real dock path by `custos demo`, the real
//! `custos ledger serve`, two people in two browser sessions.
//!
//! - the reviewer's journey: sign in, search, no player and no footage
//!   before approval, request access, the supervisor approves in a second
//!   session, the video plays and seeks, the export downloads and passes
//!   `custos verify bundle`;
//! - every view and the export are custody entries;
//! - hostile file names and case titles render as text, run nothing;
//! - both languages render every page with no missing message;
//! - screenshots under `target/ui-screenshots/`.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::webdriver::{assert_inert, assert_translated, catalogue_keys, entries, Demo, Driver};
use serde_json::{json, Value};

const HOSTILE_NAME: &str = "<img src=x onerror=alert(1)>.MP4";
const HOSTILE_NAME_2: &str = "\"><script>alert(2)<\\script>.MP4";
const HOSTILE_TITLE: &str = "\"><script>alert(3)</script><img src=x onerror=alert(4)>";

async fn wait_for_download(dir: &std::path::Path) -> std::path::PathBuf {
    let started = Instant::now();
    loop {
        if let Some(tar) = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "tar"))
        {
            return tar;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no bundle downloaded"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviewer_journey_in_a_real_browser() {
    let exe = env!("CARGO_BIN_EXE_custos");
    let demo = Demo::new(exe);
    demo.ingest_named("rec-hostile-1", HOSTILE_NAME);
    demo.ingest_named("rec-hostile-2", HOSTILE_NAME_2);
    let reviewer = demo.new_token("reviewer", "rev-chen");
    let supervisor = demo.token("supervisor");
    let auditor = demo.token("auditor");
    let (_server, base) = demo.serve().await;
    let downloads = demo.tmp.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let keys = catalogue_keys();

    let driver = Driver::start().await;
    let rev = driver.browser(&downloads, "en-US").await;
    let _ = rev
        .call(
            "POST",
            "/goog/cdp/execute",
            json!({"cmd": "Browser.setDownloadBehavior", "params": {"behavior": "allow", "downloadPath": downloads.display().to_string()}}),
        )
        .await;

    // Signed out: every page leads to the sign-in form.
    rev.goto(&format!("{base}/ui/search")).await;
    rev.find("#login").await;
    assert_translated(&rev, "login", "en", &keys).await;
    rev.screenshot("login-en").await;
    // A wrong token is refused with one clear line.
    rev.fill("#token", "custos_0000000000000000_nope").await;
    rev.click("#sign-in").await;
    rev.find("#login-error").await;
    assert!(!rev.text("#login-error").await.is_empty());

    // 1. Sign in; the session cookie is not readable by scripts.
    rev.sign_in(&base, &reviewer).await;
    let cookies = rev.js("return document.cookie;", json!([])).await;
    assert!(
        !cookies.as_str().unwrap().contains("custos_session"),
        "{cookies}"
    );

    // 2. Search by recorder: the demo's clip, with duration, size, status.
    rev.goto(&format!("{base}/ui/search")).await;
    rev.fill("input[name=recorder]", "DSJ1A2B3C").await;
    rev.click("#search-button").await;
    rev.find("#results tr.result").await;
    assert_eq!(rev.find_all("#results tr.result").await.len(), 1);
    let row = rev.text("#results tr.result").await;
    assert!(
        row.contains("0:03") || row.contains("0:02"),
        "duration in {row}"
    );
    assert!(row.contains("KiB") || row.contains("MiB"), "size in {row}");
    rev.screenshot("search-en").await;

    // 2b. Times typed into the search form are on the viewer's clock: in a
    // browser on Beijing time, a minute either side of the clip's start, as
    // that clock shows it, finds the clip; the same text read as UTC (no
    // JavaScript: no zone sent) is eight hours off and finds nothing.
    rev.call(
        "POST",
        "/goog/cdp/execute",
        json!({"cmd": "Emulation.setTimezoneOverride", "params": {"timezoneId": "Asia/Shanghai"}}),
    )
    .await
    .expect("Chromium takes a time zone override");
    let window = rev
        .js(
            "var start = document.querySelector('#results tr.result time.ts').getAttribute('datetime');
             var t = new Date(start).getTime();
             function p(n) { return String(n).padStart(2, '0'); }
             function local(ms) {
               var d = new Date(ms);
               return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + 'T' +
                 p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds());
             }
             return [local(t - 60000), local(t + 60000), new Date(t).getTimezoneOffset()];",
            json!([]),
        )
        .await;
    assert_eq!(window[2], json!(-480), "the browser is on Beijing time");
    rev.js(
        "document.querySelector('input[name=from]').value = arguments[0];
         document.querySelector('input[name=to]').value = arguments[1];",
        json!([window[0], window[1]]),
    )
    .await;
    rev.click("#search-button").await;
    rev.find("#results tr.result").await;
    assert_eq!(rev.find_all("#results tr.result").await.len(), 1);
    assert!(
        rev.url().await.contains("from_tz=480"),
        "{}",
        rev.url().await
    );
    rev.goto(&format!(
        "{base}/ui/search?recorder=DSJ1A2B3C&from={}&to={}",
        window[0].as_str().unwrap(),
        window[1].as_str().unwrap()
    ))
    .await;
    assert!(rev.try_find("#results tr.result").await.is_none());
    rev.call(
        "POST",
        "/goog/cdp/execute",
        json!({"cmd": "Emulation.setTimezoneOverride", "params": {"timezoneId": ""}}),
    )
    .await
    .unwrap();
    rev.goto(&format!("{base}/ui/search?recorder=DSJ1A2B3C"))
        .await;
    rev.click("#results a.segment-link").await;
    let segment = rev.text("#segment-id").await;
    assert!(!segment.is_empty());
    let seg_url = format!("{base}/ui/segments/{segment}");
    assert!(rev.text("#sha256").await.starts_with("sha256:"));
    assert!(rev.text("#dock-signature").await.contains("dock-01"));
    rev.find("#timeline tr.entry[data-action='segment.ingested']")
        .await;

    // 3. No approval: no player, and the media URL answers 403.
    rev.find("#needs-approval").await;
    assert!(rev.try_find("#player").await.is_none());
    let status = rev
        .js_async(
            "const done = arguments[arguments.length - 1];
             fetch(arguments[0], {headers: {Range: 'bytes=0-99'}}).then(r => done(r.status), e => done(String(e)));",
            json!([format!("{seg_url}/media")]),
        )
        .await;
    assert_eq!(status, json!(403));
    rev.goto(&format!("{seg_url}/media")).await;
    assert!(rev.text("h1").await.contains("Not allowed"));

    // 4. Request access with a reason.
    rev.goto(&seg_url).await;
    rev.fill("#reason", "hearing 2026-12-01: the stop on Renmin Road")
        .await;
    rev.click("#request-button").await;
    rev.find("p.request").await;
    assert!(rev.text("p.request").await.contains("pending"));
    rev.screenshot("segment-requested-en").await;

    // 5. The supervisor approves in a second browser session.
    let sup = driver.browser(&downloads, "en-US").await;
    sup.sign_in(&base, &supervisor).await;
    sup.goto(&format!("{base}/ui/queue")).await;
    sup.find("tr.request[data-status='pending']").await;
    assert!(sup
        .text("tr.request[data-status='pending'] td.reason")
        .await
        .contains("Renmin Road"));
    sup.screenshot("queue-en").await;
    sup.fill(
        "tr.request[data-status='pending'] input.note",
        "approved for the hearing",
    )
    .await;
    sup.click("tr.request[data-status='pending'] button.approve")
        .await;
    sup.find("#queue-empty").await;

    // 6. The player plays and seeks.
    rev.goto(&seg_url).await;
    rev.find("#player").await;
    assert!(rev.try_find("#needs-approval").await.is_none());
    let played = rev
        .js_async(
            "const done = arguments[arguments.length - 1];
             const v = document.getElementById('player');
             v.muted = true;
             const fail = (why) => done({error: why, code: v.error && v.error.code, state: v.readyState});
             v.addEventListener('error', () => fail('media error'));
             v.play().then(() => {
               setTimeout(() => {
                 const playing = !v.paused && v.currentTime > 0;
                 v.addEventListener('seeked', () => done({playing, seeked: v.currentTime, duration: v.duration}), {once: true});
                 v.currentTime = 2.0;
               }, 700);
             }, e => fail(String(e)));",
            json!([]),
        )
        .await;
    assert_eq!(played["playing"], json!(true), "{played}");
    let seeked = played["seeked"].as_f64().unwrap_or(0.0);
    assert!((1.9..=2.6).contains(&seeked), "{played}");
    rev.screenshot("player-en").await;

    // 7. Export for court: the bundle downloads and verifies offline.
    rev.fill("#export-reason", "bundle for the court").await;
    rev.click("#export-button").await;
    let tar = wait_for_download(&downloads).await;
    // Let the download finish writing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = Command::new(exe)
        .args(["verify", "bundle"])
        .arg(&tar)
        .arg("--ledger-key")
        .arg(demo.dir.join("keys/ledger.key.pub"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "verify bundle: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // 8. Every view, the refusal and the export are custody entries.
    let log = entries(&base, &auditor).await;
    let by = |action: &str| -> Vec<&Value> {
        log.iter()
            .filter(|e| e["action"] == json!(action) && e["actor"]["id"] == json!("rev-chen"))
            .collect()
    };
    let views = by("segment.viewed");
    assert!(!views.is_empty(), "no segment.viewed entry");
    assert!(views.iter().all(|e| e["subject"] == json!(segment)));
    assert!(views.iter().all(|e| e["details"]["request_id"].is_string()));
    assert!(!by("access.refused").is_empty(), "no access.refused entry");
    assert_eq!(by("access.requested").len(), 1);
    let exports = by("export.created");
    assert_eq!(exports.len(), 1, "{exports:?}");
    rev.goto(&seg_url).await;
    rev.find("#timeline tr.entry[data-action='segment.viewed']")
        .await;
    rev.find("#timeline tr.entry[data-action='access.approved']")
        .await;
    rev.screenshot("segment-en").await;

    // 9. Hostile names: text, never markup.
    rev.goto(&format!("{base}/ui/search")).await;
    rev.click("#search-button").await;
    rev.find("#results tr.result").await;
    let names: Vec<String> = rev
        .js(
            "return Array.from(document.querySelectorAll('#results td.name')).map(td => td.textContent);",
            json!([]),
        )
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert!(names.iter().any(|n| n == HOSTILE_NAME), "{names:?}");
    assert!(names.iter().any(|n| n == HOSTILE_NAME_2), "{names:?}");
    assert_inert(&rev, "search").await;
    rev.screenshot("search-hostile-en").await;
    let hostile_link = rev
        .js(
            "const row = Array.from(document.querySelectorAll('#results tr.result')).find(r => r.querySelector('td.name').textContent === arguments[0]);
             return row.querySelector('a.segment-link').href;",
            json!([HOSTILE_NAME]),
        )
        .await;
    rev.goto(hostile_link.as_str().unwrap()).await;
    assert_eq!(rev.text("#original-name").await, HOSTILE_NAME);
    assert_inert(&rev, "hostile segment").await;

    sup.goto(&format!("{base}/ui/cases")).await;
    sup.fill("#case-title", HOSTILE_TITLE).await;
    sup.click("#create-case").await;
    sup.find("#case-id").await;
    assert_eq!(sup.text("#case-title-text").await, HOSTILE_TITLE);
    assert_inert(&sup, "hostile case").await;
    let case_url = sup.url().await;
    sup.fill("#link-ids", &segment).await;
    sup.click("#link-button").await;
    sup.find("#case-segments li").await;
    sup.goto(&format!("{base}/ui/cases")).await;
    assert!(sup.text("#cases").await.contains(HOSTILE_TITLE));
    assert_inert(&sup, "cases").await;
    sup.screenshot("cases-hostile-en").await;

    // Legal hold on the segment, from its page.
    sup.goto(&seg_url).await;
    sup.fill("#hold-reason", "litigation hold").await;
    sup.click("#place-hold").await;
    sup.find("#hold-status").await;
    sup.goto(&format!("{base}/ui/holds")).await;
    assert!(sup.text("#holds").await.contains(&segment));

    // 10. Both languages, every page, no missing message.
    let reviewer_pages = [
        ("search", format!("{base}/ui/search")),
        ("segment", seg_url.clone()),
        ("cases", format!("{base}/ui/cases")),
        ("case", case_url.clone()),
    ];
    let supervisor_pages = [
        ("queue", format!("{base}/ui/queue")),
        ("holds", format!("{base}/ui/holds")),
        ("case-supervisor", case_url.clone()),
        ("segment-supervisor", seg_url.clone()),
    ];
    for lang in ["zh-CN", "en"] {
        for (name, url) in &reviewer_pages {
            rev.goto(&format!("{url}?lang={lang}")).await;
            assert_translated(&rev, name, lang, &keys).await;
            assert_inert(&rev, name).await;
            rev.screenshot(&format!("{name}-{lang}")).await;
        }
        for (name, url) in &supervisor_pages {
            sup.goto(&format!("{url}?lang={lang}")).await;
            assert_translated(&sup, name, lang, &keys).await;
            assert_inert(&sup, name).await;
            sup.screenshot(&format!("{name}-{lang}")).await;
        }
    }
    // The choice sticks (cookie) and the switcher is on every page.
    rev.goto(&format!("{base}/ui/search?lang=zh-CN")).await;
    rev.goto(&format!("{base}/ui/cases")).await;
    assert_translated(&rev, "cases after switching", "zh-CN", &keys).await;
    rev.click("a.lang[lang='en']").await;
    assert_translated(&rev, "cases switched back", "en", &keys).await;
    // Times are shown in the viewer's zone, UTC on hover.
    rev.goto(&seg_url).await;
    let t = rev
        .wait_js(
            "const t = document.querySelector('time.ts[data-local]'); return t && t.title;",
            "local times",
        )
        .await;
    assert!(t.as_str().unwrap().starts_with("UTC "), "{t}");

    // Signing out ends the session.
    rev.click("#sign-out").await;
    rev.find("#login").await;
    rev.goto(&format!("{base}/ui/search")).await;
    rev.find("#login").await;

    rev.quit().await;
    sup.quit().await;
}
