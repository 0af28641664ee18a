//! The dock against a real ledger process that refuses its events:
//!
//! - a wrong token (401): the dock keeps every event in its journal, wipes
//!   nothing, and once the token in its configuration is fixed, the next
//!   run delivers them all and finishes;
//! - a rate limit (429) and a body limit (413) of a reverse proxy in front
//!   of the ledger (as nginx answers them): retried with backoff, never
//!   taken as final;
//! - an event the ledger refuses for its own content (a signature that does
//!   not verify, 403 `bad_signature`): final, the segment stays on the
//!   recorder, and its slot shows the ledger's message.
//!
//! The proxy ([`Proxy`]) is a few lines of HTTP/1.1 on a socket: one
//! request per connection, forwarded byte for byte unless a fault is due.

use std::collections::VecDeque;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use custos_dock::DirectoryTransport;
use tokio_util::sync::CancellationToken;

use crate::util::{self, LedgerProcess, Site};

/// What the proxy does to one `POST /v1/events`.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Answer this status itself, with an HTML body, as nginx does.
    Status(u16, &'static str),
    /// Flip a bit of the signature of the next `segment.verified` event.
    BreakVerifiedSignature,
}

/// A reverse proxy in front of a ledger, on a thread of its own.
struct Proxy {
    url: String,
    faults: Arc<Mutex<VecDeque<Fault>>>,
    /// Faults applied so far.
    applied: Arc<AtomicUsize>,
}

impl Proxy {
    fn start(target: &str, faults: Vec<Fault>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let target = target.trim_start_matches("http://").to_owned();
        let faults = Arc::new(Mutex::new(VecDeque::from(faults)));
        let applied = Arc::new(AtomicUsize::new(0));
        let (f, a) = (faults.clone(), applied.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (target, f, a) = (target.clone(), f.clone(), a.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &target, &f, &a);
                });
            }
        });
        Proxy {
            url,
            faults,
            applied,
        }
    }

    fn applied(&self) -> usize {
        self.applied.load(Ordering::SeqCst)
    }

    fn pending(&self) -> usize {
        self.faults.lock().unwrap().len()
    }
}

fn serve(
    mut client: TcpStream,
    target: &str,
    faults: &Mutex<VecDeque<Fault>>,
    applied: &AtomicUsize,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    // The head.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = client.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("").to_owned();
    let mut headers: Vec<String> = Vec::new();
    let mut length = 0usize;
    for line in lines.filter(|l| !l.is_empty()) {
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
            continue;
        }
        if lower.starts_with("connection:") {
            continue;
        }
        headers.push(line.to_owned());
    }
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = client.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    if request_line.starts_with("POST /v1/events ") {
        let mut faults = faults
            .lock()
            .map_err(|_| std::io::Error::other("a proxy thread panicked"))?;
        match faults.front().copied() {
            Some(Fault::Status(status, reason)) => {
                faults.pop_front();
                applied.fetch_add(1, Ordering::SeqCst);
                let page = format!(
                    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
                );
                let answer = format!(
                    "HTTP/1.1 {status} {reason}\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                    page.len()
                );
                client.write_all(answer.as_bytes())?;
                return Ok(());
            }
            Some(Fault::BreakVerifiedSignature) => {
                if let Some(broken) = break_if_verified(&body) {
                    faults.pop_front();
                    applied.fetch_add(1, Ordering::SeqCst);
                    body = broken;
                }
            }
            None => {}
        }
    }
    let mut upstream = TcpStream::connect(target)?;
    let mut out = format!("{request_line}\r\n");
    for h in &headers {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    upstream.write_all(out.as_bytes())?;
    upstream.write_all(&body)?;
    let mut answer = Vec::new();
    upstream.read_to_end(&mut answer)?;
    client.write_all(&answer)?;
    Ok(())
}

/// The envelope with one bit of its signature flipped, if it carries a
/// `segment.verified` event.
fn break_if_verified(body: &[u8]) -> Option<Vec<u8>> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut env: serde_json::Value = serde_json::from_slice(body).ok()?;
    let payload = b64.decode(env["payload"].as_str()?).ok()?;
    let event: serde_json::Value = serde_json::from_slice(&payload).ok()?;
    if event["action"] != "segment.verified" {
        return None;
    }
    let mut sig = b64.decode(env["signatures"][0]["sig"].as_str()?).ok()?;
    sig[0] ^= 1;
    env["signatures"][0]["sig"] = b64.encode(sig).into();
    serde_json::to_vec(&env).ok()
}

/// `custos dock ingest` with the simulated profile, into the site's
/// `file://` store.
fn ingest(config: &Path, source: &Path, max_wait: u64) -> Command {
    let mut c = util::custos();
    c.args(["dock", "ingest", "--config"])
        .arg(config)
        .arg("--source")
        .arg(source)
        .args([
            "--profile",
            "simulated",
            "--progress",
            "never",
            "--max-wait",
        ])
        .arg(max_wait.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// A site whose dock talks to a real ledger process through `via` (the
/// ledger's URL → the URL the dock is given) with `token` (the dock's real
/// token → the one it is given). Storage is a `file://` store.
fn site(
    via: impl FnOnce(&str) -> String,
    token: impl FnOnce(&str) -> String,
) -> (Site, LedgerProcess, String, String) {
    let site = Site::new();
    let listen = format!("127.0.0.1:{}", util::free_port());
    site.write_config("file://./data/objects", &listen, None, "");
    let real = site.token("dock", "dock-01", Some("keys/dock-01.key.pub"));
    let audit = site.token("auditor", "audit-1", None);
    let ledger_url = format!("http://{listen}");
    let config = site.write_config(
        "file://./data/objects",
        &listen,
        Some((&via(&ledger_url), &token(&real))),
        "",
    );
    let ledger = LedgerProcess::start(&config);
    (site, ledger, audit, real)
}

fn run(cmd: &mut Command) -> (i32, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_wrong_token_keeps_the_events_until_it_is_fixed() {
    let wrong = |t: &str| {
        let mut w = t.to_owned();
        let last = w.pop().unwrap();
        w.push(if last == 'A' { 'B' } else { 'A' });
        w
    };
    let (site, ledger, audit, real) = site(|u| u.to_owned(), wrong);
    let config = site.path("custos.toml");
    let files = util::recorder(
        &site.path("rec"),
        "SIM0301",
        "100301",
        0,
        &[20_000, 30_000],
        301,
    );

    let (code, stderr) = run(&mut ingest(&config, &files.root, 8));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("401"),
        "the operator is not told why: {stderr}"
    );
    assert_eq!(util::remaining(&files.root).len(), files.files.len());
    assert!(util::dock_entries(&ledger.url, &audit).is_empty());

    // The operator fixes the token; the next run delivers what waited.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace(&wrong(&real), &real)).unwrap();
    let (code, stderr) = run(&mut ingest(&config, &files.root, 120));
    assert_eq!(code, 0, "{stderr}");
    assert!(util::remaining(&files.root).is_empty());
    let entries = util::dock_entries(&ledger.url, &audit);
    let manifests = util::check_segment_entries(&entries, true);
    assert_eq!(manifests.len(), files.files.len());
    let docked = entries
        .iter()
        .filter(|e| e.action == "recorder.docked")
        .count();
    assert_eq!(docked, 2, "the first run's docking is on the record too");
}

#[test]
fn rate_and_body_limits_of_a_proxy_are_retried() {
    let proxy = Mutex::new(None);
    let (site, ledger, audit, _) = site(
        |u| {
            let p = Proxy::start(
                u,
                vec![
                    Fault::Status(429, "Too Many Requests"),
                    Fault::Status(429, "Too Many Requests"),
                    Fault::Status(413, "Request Entity Too Large"),
                    Fault::Status(429, "Too Many Requests"),
                    Fault::Status(413, "Request Entity Too Large"),
                ],
            );
            let url = p.url.clone();
            *proxy.lock().unwrap() = Some(p);
            url
        },
        |t| t.to_owned(),
    );
    let proxy = proxy.into_inner().unwrap().unwrap();
    let files = util::recorder(
        &site.path("rec"),
        "SIM0302",
        "100302",
        0,
        &[10_000, 12_000, 14_000],
        302,
    );
    let started = Instant::now();
    let (code, stderr) = run(&mut ingest(&site.path("custos.toml"), &files.root, 120));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(proxy.applied(), 5);
    assert_eq!(proxy.pending(), 0);
    assert!(util::remaining(&files.root).is_empty());
    let entries = util::dock_entries(&ledger.url, &audit);
    assert_eq!(
        util::check_segment_entries(&entries, true).len(),
        files.files.len()
    );
    assert!(started.elapsed() < Duration::from_secs(100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_refused_for_its_content_is_final_and_shown() {
    let proxy = Mutex::new(None);
    let (site, ledger, audit, _) = site(
        |u| {
            let p = Proxy::start(u, vec![Fault::BreakVerifiedSignature]);
            let url = p.url.clone();
            *proxy.lock().unwrap() = Some(p);
            url
        },
        |t| t.to_owned(),
    );
    let proxy = proxy.into_inner().unwrap().unwrap();
    let files = util::recorder(
        &site.path("rec"),
        "SIM0303",
        "100303",
        0,
        &[10_000, 12_000],
        303,
    );
    let assembled = custos_cli::in_process::assemble(&site.config())
        .await
        .unwrap();
    let dock = assembled.dock.clone();
    let stop = CancellationToken::new();
    let pump = dock.start(stop.clone());
    let transport = DirectoryTransport::new(
        &files.root,
        dock.profiles().clone(),
        Some("simulated".into()),
        None,
        None,
    );
    let (_t, report) = dock
        .ingest(
            "slot-r",
            Box::new(transport),
            CancellationToken::new(),
            Some(Instant::now() + Duration::from_secs(120)),
        )
        .await;
    assert_eq!(proxy.applied(), 1);
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert_eq!(report.done, files.files.len() - 1, "{report:?}");
    let (refused, why) = &report.failed[0];
    assert!(
        why.contains("segment.verified") && why.contains("bad_signature"),
        "{why}"
    );
    // The slot shows it, in the ledger's words.
    let slot = dock.status().slot("slot-r");
    let message = slot.message.unwrap_or_default();
    assert!(
        message.contains("bad_signature") && message.contains("bad signature"),
        "{message}"
    );
    assert!(!slot.safe_to_undock);
    // It stays on the recorder; the other one is wiped.
    assert_eq!(util::remaining(&files.root).len(), 1);
    dock.undock("slot-r", &report).await;
    assert!(
        dock.drain(Some(Instant::now() + Duration::from_secs(30)), &stop)
            .await
    );
    stop.cancel();
    pump.await.unwrap();
    let entries = tokio::task::spawn_blocking({
        let (url, audit) = (ledger.url.clone(), audit.clone());
        move || util::dock_entries(&url, &audit)
    })
    .await
    .unwrap();
    let per = util::by_segment(&entries);
    let actions: Vec<&str> = per[refused].iter().map(|(_, a)| a.as_str()).collect();
    assert_eq!(actions, ["segment.ingested"], "{per:?}");
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.action == "recorder.undocked")
            .count(),
        1,
        "a final refusal must not hold up the events after it"
    );
    drop(ledger);
}
