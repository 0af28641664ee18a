//! The station's screen, as an officer and an operator meet it: `custos
//! dock run` with four directory slots and a ledger process that is down
//! at first, four recorders docked at once, and headless Chromium on the
//! screen (`/`) while a sampler in the page records every state and
//! progress value each tile shows.
//!
//! What must hold: each tile's states only move forward through the
//! docking; progress only grows; no tile says "safe to undock" while the
//! ledger cannot acknowledge `segment.verified`, and when one does, the
//! ledger holds `segment.verified` for every segment of that recorder; a
//! recorder taken out mid-copy turns its tile red; both languages show no
//! raw message key; the page fits 1280×800 and 800×480 (screenshots under
//! `target/ui-screenshots/dock-*.png`). Beside the screen: `/metrics`
//! parses with Python's `prometheus_client` and its counters match the
//! ledger's entries; `custos dock status` prints the table; the logs are
//! JSON lines without colour codes; systemd hears READY, WATCHDOG, STATUS
//! and STOPPING on its notify socket.

use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use custos_media::synth::SyntheticClip;
use serde_json::{json, Value};

use crate::util::free_port;
use crate::util::{custos, ok, text, token};
use crate::webdriver::{entries, Browser, Demo, Driver, Proc};

const DOCK: &str = "station-2";

/// One simulated recorder: its device and officer ids as GA/T 947 names
/// carry them, and the slot it goes into.
struct Recorder {
    slot: &'static str,
    device: &'static str,
    officer: &'static str,
}

const RECORDERS: [Recorder; 4] = [
    Recorder {
        slot: "a",
        device: "SIMA0001",
        officer: "100231",
    },
    Recorder {
        slot: "b",
        device: "SIMB0002",
        officer: "100232",
    },
    Recorder {
        slot: "c",
        device: "SIMC0003",
        officer: "100233",
    },
    // Taken out mid-copy: one large file (not media: probed as damaged).
    Recorder {
        slot: "d",
        device: "SIMD0004",
        officer: "100234",
    },
];

/// `YYYYMMDDhhmmss` in +08:00, `minutes_ago` before now.
fn stamp(minutes_ago: i64) -> String {
    let t = time::OffsetDateTime::now_utc() - time::Duration::minutes(minutes_ago);
    let t = t.to_offset(time::UtcOffset::from_hms(8, 0, 0).unwrap());
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A recorder's volume, made in `staging` and moved into its slot later
/// (a rename: the slot sees it all at once, as a mount).
fn make_volume(staging: &Path, r: &Recorder) -> PathBuf {
    let media = staging.join(r.slot).join("DCIM").join("100MEDIA");
    std::fs::create_dir_all(&media).unwrap();
    if r.slot == "d" {
        let name = format!("{}_{}_{}_0001.MP4", r.device, r.officer, stamp(30));
        let f = std::fs::File::create(media.join(name)).unwrap();
        f.set_len(700 << 20).unwrap();
    } else {
        for i in 0..2 {
            let name = format!(
                "{}_{}_{}_{:04}.MP4",
                r.device,
                r.officer,
                stamp(20 - i),
                i + 1
            );
            SyntheticClip::new(2)
                .video(320, 180, 25)
                .silent()
                .preset("veryfast")
                .write(&media.join(name))
                .unwrap();
        }
    }
    staging.join(r.slot).join("DCIM")
}

async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

/// The slot named `dir-<slot>` in a status document.
fn slot_of<'a>(status: &'a Value, slot: &str) -> &'a Value {
    status["slots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["slot"] == format!("dir-{slot}"))
        .unwrap_or(&Value::Null)
}

async fn wait_status(
    http: &reqwest::Client,
    url: &str,
    what: &str,
    secs: u64,
    every: Duration,
    mut ok: impl FnMut(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        // Null until the dock listens.
        let s = match http.get(url).send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        if ok(&s) {
            return s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}; status: {s:#}"
        );
        tokio::time::sleep(every).await;
    }
}

/// The page's own record of what each tile showed: sampled every 40 ms
/// (the server sends a changed board at most every 250 ms).
const SAMPLER: &str = r#"
window.__seen = window.__seen || {};
if (!window.__sampler) {
  window.__sampler = setInterval(function () {
    document.querySelectorAll('section.tile').forEach(function (t) {
      var slot = t.getAttribute('data-slot');
      var p = t.querySelector('progress');
      var seen = window.__seen[slot] = window.__seen[slot] || [];
      var now = [t.getAttribute('data-state'), p ? Number(p.value) : -1, t.getAttribute('data-safe')];
      var last = seen[seen.length - 1];
      if (!last || last[0] !== now[0] || last[1] !== now[1] || last[2] !== now[2]) { seen.push(now); }
    });
  }, 40);
}
return true;
"#;

/// Make the page's viewport `width` × `height` (the window is larger by
/// the browser's own frame).
async fn resize(b: &Browser, width: u32, height: u32) {
    let mut rect = (width, height);
    for _ in 0..3 {
        b.call(
            "POST",
            "/window/rect",
            json!({"width": rect.0, "height": rect.1}),
        )
        .await
        .unwrap();
        let inner = b
            .js("return [window.innerWidth, window.innerHeight];", json!([]))
            .await;
        let (w, h) = (
            inner[0].as_u64().unwrap() as u32,
            inner[1].as_u64().unwrap() as u32,
        );
        if (w, h) == (width, height) {
            return;
        }
        rect = (
            rect.0 + width - w.min(width),
            rect.1 + height - h.min(height),
        );
    }
}

/// The page has no raw message key, and every tile fits its box.
async fn check_page(b: &Browser, lang: &str) {
    let body = b.text("body").await;
    // No raw message id; file paths (a disk alert names the dock's data
    // directory, "…/dock-data") are not message text.
    let words: Vec<&str> = body
        .split_whitespace()
        .filter(|w| !w.contains('/'))
        .collect();
    assert!(
        !words.iter().any(|w| w.contains("dock-")),
        "{lang}: a message key shows: {body}"
    );
    let overflow = b
        .js(
            "return Array.from(document.querySelectorAll('section.tile')).filter(t => t.scrollWidth > t.clientWidth + 1).map(t => t.getAttribute('data-slot'));",
            json!([]),
        )
        .await;
    assert_eq!(overflow, json!([]), "{lang}: text overflows its tile");
}

/// Serve the demo's ledger on `port` (started late on purpose).
fn ledger_on(demo: &Demo, port: u16) -> Proc {
    Proc(
        Command::new(&demo.exe)
            .args(["ledger", "serve", "--config"])
            .arg(demo.config())
            .env("CUSTOS_LEDGER_LISTEN", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_station_screen_tells_officers_the_truth() {
    let demo = Demo::new(env!("CARGO_BIN_EXE_custos"));
    let root = demo.tmp.path();
    let key = demo.dir.join("keys").join(format!("{DOCK}.key"));
    ok(&custos()
        .arg("keygen")
        .arg("--out")
        .arg(&key)
        .output()
        .unwrap());
    let pubkey = key.with_extension("key.pub");
    let dock_token = token(&demo.config(), "dock", DOCK, Some(&pubkey));
    let auditor = demo.token("auditor");
    let roster = root.join("roster.csv");
    std::fs::write(&roster, "# station roster\n100231,张伟\n100232,李娜\n").unwrap();

    let staging = root.join("staging");
    let slots: Vec<PathBuf> = RECORDERS
        .iter()
        .map(|r| root.join("slots").join(r.slot))
        .collect();
    for s in &slots {
        std::fs::create_dir_all(s).unwrap();
    }
    let volumes: Vec<PathBuf> = RECORDERS.iter().map(|r| make_volume(&staging, r)).collect();

    let (ledger_port, status_port) = (free_port(), free_port());
    let ledger_url = format!("http://127.0.0.1:{ledger_port}");
    let status = format!("http://127.0.0.1:{status_port}");
    let notify_path = root.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let dock_log = root.join("dock.log");
    let dock_env = |cmd: &mut Command| {
        cmd.env("CUSTOS_DOCK_ID", DOCK)
            .env("CUSTOS_DOCK_KEY_FILE", &key)
            .env("CUSTOS_DOCK_DATA_DIR", root.join("dock-data"))
            .env("CUSTOS_DOCK_LEDGER_URL", &ledger_url)
            .env("CUSTOS_DOCK_LEDGER_TOKEN", &dock_token)
            .env(
                "CUSTOS_DOCK_SLOTS",
                slots
                    .iter()
                    .map(|s| s.display().to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            )
            .env("CUSTOS_DOCK_USB", "false")
            .env(
                "CUSTOS_DOCK_STATUS_LISTEN",
                format!("127.0.0.1:{status_port}"),
            )
            .env("CUSTOS_DOCK_ROSTER", &roster);
    };
    // systemd sets WATCHDOG_PID to the service's pid: a shell that execs
    // custos gives it its own.
    let mut run = Command::new("sh");
    run.args([
        "-c",
        r#"WATCHDOG_PID=$$ exec "$0" "$@""#,
        env!("CARGO_BIN_EXE_custos"),
    ])
    .args(["dock", "run", "--config"])
    .arg(demo.config())
    .env_remove("CUSTOS_CLIENT_LEDGER_URL")
    .env_remove("CUSTOS_CLIENT_TOKEN");
    dock_env(&mut run);
    let dock = Proc(
        run.env("CUSTOS_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env("NOTIFY_SOCKET", &notify_path)
            .env("WATCHDOG_USEC", "2000000")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&dock_log).unwrap())
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::new();
    wait_status(
        &http,
        &format!("{status}/status"),
        "the dock's status",
        30,
        Duration::from_millis(100),
        |s| s["slots"].as_array().is_some_and(|a| a.len() == 4),
    )
    .await;

    // systemd hears that the dock is ready, then the watchdog and a status.
    let mut heard = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5)
        && !(heard.iter().any(|m: &String| m.contains("READY=1"))
            && heard.iter().any(|m| m.contains("WATCHDOG=1"))
            && heard.iter().any(|m| m.contains("STATUS=")))
    {
        let mut buf = [0u8; 4096];
        if let Ok(n) = notify.recv(&mut buf) {
            heard.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    assert!(heard.iter().any(|m| m.contains("READY=1")), "{heard:?}");
    assert!(heard.iter().any(|m| m.contains("WATCHDOG=1")), "{heard:?}");
    assert!(
        heard.iter().any(|m| m.contains("STATUS=4 slots: 0 busy")),
        "{heard:?}"
    );

    // The screen, in the kiosk browser (zh-CN), recording what it shows.
    let driver = Driver::start().await;
    let downloads = tempfile::tempdir().unwrap();
    let b = driver.browser(downloads.path(), "zh-CN").await;
    b.goto(&format!("{status}/")).await;
    b.wait_js(
        "return document.querySelectorAll('section.tile').length === 4 && document.querySelector('.live.on');",
        "four tiles, live",
    )
    .await;
    b.js(SAMPLER, json!([])).await;
    assert!(b.text("body").await.contains("请在此插入执法记录仪"));

    // Four recorders docked at once; the ledger is not up yet.
    for (v, s) in volumes.iter().zip(&slots) {
        std::fs::rename(v, s.join("DCIM")).unwrap();
    }
    // D is taken out while its copy is under way.
    let url = format!("{status}/status");
    wait_status(
        &http,
        &url,
        "D copying",
        60,
        Duration::from_millis(20),
        |s| {
            let d = slot_of(s, "d");
            d["state"] == "copying" && d["bytes_done"].as_u64().unwrap_or(0) > 0
        },
    )
    .await;
    std::fs::remove_dir_all(slots[3].join("DCIM")).unwrap();
    let s = wait_status(
        &http,
        &url,
        "A-C waiting for the ledger and D red",
        120,
        Duration::from_millis(100),
        |s| {
            ["a", "b", "c"]
                .iter()
                .all(|x| slot_of(s, x)["state"] == "waiting_for_ledger")
                && slot_of(s, "d")["state"] == "unplugged"
        },
    )
    .await;
    let a = slot_of(&s, "a");
    assert_eq!(a["recorder_id"], "SIMA0001");
    assert_eq!(a["officer_name"], "张伟");
    assert_eq!(slot_of(&s, "d")["segments_total"], 1);
    assert!(s["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["kind"] == "ledger_unreachable"));
    // Stored and verified, but the ledger cannot acknowledge: not safe.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = get_json(&http, &url).await;
    for x in ["a", "b", "c", "d"] {
        assert_eq!(slot_of(&s, x)["safe_to_undock"], false, "{x}: {s:#}");
    }
    b.wait_js(
        "return document.querySelector('section.tile[data-slot=\"dir-d\"]').classList.contains('alarm') && document.body.innerText.includes('插回继续');",
        "D red on the screen",
    )
    .await;
    let body = b.text("body").await;
    assert!(
        body.contains("等待账本确认") && body.contains("请勿拔出"),
        "{body}"
    );
    assert!(body.contains("无法连接账本"), "{body}");
    check_page(&b, "zh-CN").await;
    resize(&b, 1280, 800).await;
    b.screenshot("dock-zh-CN-waiting-1280x800").await;
    resize(&b, 800, 480).await;
    b.screenshot("dock-zh-CN-waiting-800x480").await;
    check_page(&b, "zh-CN 800x480").await;

    // The ledger comes up: A-C turn safe, each only after its recorder's
    // every segment.verified is on the record.
    let _ledger = ledger_on(&demo, ledger_port);
    let mut safe_seen = BTreeMap::new();
    let started = Instant::now();
    while safe_seen.len() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "not safe in time: {:#}",
            get_json(&http, &url).await
        );
        let shown = b
            .js(
                "return Array.from(document.querySelectorAll('section.tile[data-safe=\"true\"]')).map(t => t.getAttribute('data-slot'));",
                json!([]),
            )
            .await;
        for slot in shown.as_array().unwrap() {
            let slot = slot.as_str().unwrap().trim_start_matches("dir-").to_owned();
            if safe_seen.contains_key(&slot) {
                continue;
            }
            let r = RECORDERS.iter().find(|r| r.slot == slot).unwrap();
            let log = entries(&ledger_url, &auditor).await;
            let ingested: Vec<&Value> = log
                .iter()
                .filter(|e| e["action"] == "segment.ingested")
                .filter(|e| manifest(e)["recorder"]["id"] == r.device)
                .collect();
            let verified = |subject: &Value| {
                log.iter()
                    .any(|e| e["action"] == "segment.verified" && e["subject"] == *subject)
            };
            assert_eq!(ingested.len(), 2, "{slot}: ingested entries");
            assert!(
                ingested.iter().all(|e| verified(&e["subject"])),
                "{slot} shown safe before every segment.verified was on the record"
            );
            safe_seen.insert(slot, ());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.wait_js(
        "return document.querySelector('section.tile[data-slot=\"dir-a\"]').innerText.includes('可以拔出');",
        "A says 可以拔出",
    )
    .await;

    // What each tile showed, in order.
    let seen = b.js("return window.__seen;", json!([])).await;
    let order = [
        "empty",
        "attaching",
        "copying",
        "recording",
        "verifying",
        "waiting_for_ledger",
        "wiping",
        "done",
        "incomplete",
        "unplugged",
        "error",
    ];
    for r in &RECORDERS {
        let samples = seen[format!("dir-{}", r.slot)].as_array().unwrap();
        let states: Vec<usize> = samples
            .iter()
            .map(|s| {
                order
                    .iter()
                    .position(|o| *o == s[0].as_str().unwrap())
                    .unwrap()
            })
            .collect();
        assert!(
            states.windows(2).all(|w| w[0] <= w[1]),
            "{}: states went back: {samples:?}",
            r.slot
        );
        let last = order[*states.last().unwrap()];
        if r.slot == "d" {
            assert_eq!(last, "unplugged", "{samples:?}");
        } else {
            assert_eq!(last, "done", "{samples:?}");
            assert!(
                states.contains(&5),
                "{}: never showed waiting for the ledger: {samples:?}",
                r.slot
            );
            let progress: Vec<i64> = samples
                .iter()
                .map(|s| s[1].as_i64().unwrap_or(-1))
                .filter(|p| *p >= 0)
                .collect();
            assert!(
                progress.windows(2).all(|w| w[0] <= w[1]),
                "{}: progress went back: {samples:?}",
                r.slot
            );
            // Safe only once done.
            assert!(samples.iter().all(|s| s[2] != "true" || s[0] == "done"));
        }
    }
    check_page(&b, "zh-CN").await;
    resize(&b, 1280, 800).await;
    b.screenshot("dock-zh-CN-safe-1280x800").await;
    // (Navigated from the page itself: the live page holds a connection.)
    b.js(
        "window.location.assign(arguments[0]); return true;",
        json!([format!("{status}/?lang=en")]),
    )
    .await;
    b.wait_js(
        "return document.documentElement.lang === 'en' && document.querySelector('.live.on');",
        "the English page, live",
    )
    .await;
    let body = b.text("body").await;
    assert!(
        body.contains("SAFE TO UNDOCK") && body.contains("Plug it back in to finish"),
        "{body}"
    );
    check_page(&b, "en").await;
    b.screenshot("dock-en-1280x800").await;
    resize(&b, 800, 480).await;
    b.screenshot("dock-en-800x480").await;
    check_page(&b, "en 800x480").await;
    b.quit().await;

    // Every event delivered, then /metrics against the ledger's entries.
    wait_status(
        &http,
        &url,
        "the outbox empty",
        60,
        Duration::from_millis(200),
        |s| s["events_pending"] == 0,
    )
    .await;
    let metrics = http
        .get(format!("{status}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let parsed = prometheus_samples(&metrics);
    let sum = |name: &str, label: Option<(&str, &str)>| -> f64 {
        parsed
            .iter()
            .filter(|s| s["name"] == name)
            .filter(|s| label.is_none_or(|(k, v)| s["labels"][k] == v))
            .map(|s| s["value"].as_f64().unwrap())
            .sum()
    };
    let log = entries(&ledger_url, &auditor).await;
    let ours: Vec<&Value> = log.iter().filter(|e| e["actor"]["id"] == DOCK).collect();
    let count = |action: &str| ours.iter().filter(|e| e["action"] == action).count() as f64;
    assert_eq!(
        sum("custos_dock_segments_total", Some(("outcome", "done"))),
        count("segment.wiped")
    );
    assert_eq!(count("segment.wiped"), 6.0);
    let stored: f64 = ours
        .iter()
        .filter(|e| e["action"] == "segment.ingested")
        .map(|e| manifest(e)["size"].as_f64().unwrap())
        .sum();
    assert_eq!(
        sum("custos_dock_bytes_ingested_total", None),
        stored,
        "{metrics}"
    );
    assert_eq!(sum("custos_dock_safe_to_undock", None), 3.0);
    assert_eq!(sum("custos_dock_outbox_events", None), 0.0);
    assert_eq!(
        sum("custos_dock_slot_state", Some(("state", "unplugged"))),
        1.0
    );

    // The terminal's table.
    let mut st = custos();
    st.args(["dock", "status", "--config"]).arg(demo.config());
    dock_env(&mut st);
    let table = ok(&st.output().unwrap());
    assert!(table.starts_with(&format!("dock {DOCK}\n")), "{table}");
    assert_eq!(table.matches("SAFE TO UNDOCK").count(), 3, "{table}");
    assert!(table.contains("UNPLUGGED EARLY: plug back in"), "{table}");
    assert!(table.contains("100231 张伟"), "{table}");

    // Stop: systemd hears it; the log is JSON lines without colour codes.
    let pid = dock.0.id();
    Command::new("kill").arg(pid.to_string()).status().unwrap();
    let started = Instant::now();
    let mut stopping = false;
    while !stopping && started.elapsed() < Duration::from_secs(20) {
        let mut buf = [0u8; 4096];
        if let Ok(n) = notify.recv(&mut buf) {
            stopping = String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1");
        }
    }
    assert!(stopping, "systemd never heard STOPPING=1");
    drop(dock);
    let log_text = std::fs::read_to_string(&dock_log).unwrap();
    assert!(!log_text.contains('\u{1b}'), "colour codes in a log file");
    let lines: Vec<Value> = log_text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines
        .iter()
        .any(|l| l["level"] == "WARN" && l["fields"]["alert"] == "ledger_unreachable"));
    assert!(lines.iter().any(|l| l["level"] == "WARN"
        && l["fields"]["slot"] == "dir-d"
        && l["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("plug it back in"))));
}

/// The manifest a `segment.ingested` entry carries (a DSSE envelope).
fn manifest(entry: &Value) -> Value {
    use base64::Engine as _;
    let payload = entry["details"]["manifest"]["payload"].as_str().unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// `prometheus_client`'s reading of a text exposition: every sample as
/// `{"name", "labels", "value"}`.
fn prometheus_samples(exposition: &str) -> Vec<Value> {
    let python = std::env::var("CUSTOS_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        out.append({"name": s.name, "labels": s.labels, "value": s.value})
print(json.dumps(out))
"#;
    let mut child = Command::new(python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with prometheus_client (scripts/install-deps)");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
}
