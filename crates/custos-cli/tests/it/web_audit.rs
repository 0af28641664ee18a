//! The auditor's page in a real browser: custody proofs and the checkpoint
//! signature checked by the browser's WebCrypto, against the real
//! `custos ledger serve` with footage ingested by `custos demo`.
//!
//! The tampered case needs a server that lies: this test puts a proxy of
//! its own between the browser and the ledger (a test harness, not a code
//! path of the product) which, when told to, flips one byte of one entry
//! in the custody record it passes on. The page must then say not
//! verified. A consistency check against a pasted checkpoint passes for a
//! real older checkpoint and fails for a forged one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::webdriver::{assert_inert, assert_translated, catalogue_keys, Browser, Demo, Driver};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, Response, StatusCode};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use custos_core::checkpoint::Checkpoint;
use custos_core::keys::SigningKey;
use custos_core::merkle::Hash;
use serde_json::{json, Value};

#[derive(Clone)]
struct Proxy {
    upstream: String,
    http: reqwest::Client,
    tamper: Arc<AtomicBool>,
}

/// Flip one byte in the middle of the first entry's bytes.
fn tamper_custody(body: &[u8]) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(body).unwrap();
    let raw = v["entries"][0]["raw"].as_str().unwrap();
    let mut bytes = B64.decode(raw).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    v["entries"][0]["raw"] = json!(B64.encode(&bytes));
    serde_json::to_vec(&v).unwrap()
}

/// Pass a request on to the ledger; tamper with custody records if asked.
async fn forward(State(p): State<Proxy>, req: Request) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_default();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let mut out = p
        .http
        .request(parts.method.clone(), format!("{}{path}", p.upstream))
        .body(body.to_vec());
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            out = out.header(name, value);
        }
    }
    let answer = out.send().await.unwrap();
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    let headers = answer.headers().clone();
    let mut bytes = answer.bytes().await.unwrap().to_vec();
    if p.tamper.load(Ordering::SeqCst)
        && path.starts_with("/ui/audit/custody/")
        && status == StatusCode::OK
    {
        bytes = tamper_custody(&bytes);
    }
    let mut response = Response::builder().status(status);
    for (name, value) in &headers {
        if name != "content-length" && name != "transfer-encoding" {
            response = response.header(
                HeaderName::from_bytes(name.as_str().as_bytes()).unwrap(),
                value.as_bytes(),
            );
        }
    }
    response.body(Body::from(bytes)).unwrap()
}

async fn verdict(b: &Browser) -> String {
    b.wait_js(
        "const v = document.getElementById('verdict'); return v && v.dataset.state !== 'checking' && v.dataset.state;",
        "the browser's verdict",
    )
    .await
    .as_str()
    .unwrap()
    .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auditor_checks_proofs_in_the_browser() {
    let exe = env!("CARGO_BIN_EXE_custos");
    let demo = Demo::new(exe);
    let auditor = demo.token("auditor");
    let supervisor = demo.token("supervisor");
    let (_server, base) = demo.serve().await;
    let keys = catalogue_keys();

    let tamper = Arc::new(AtomicBool::new(false));
    let proxy = Proxy {
        upstream: base.clone(),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        tamper: tamper.clone(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            listener,
            axum::Router::new().fallback(forward).with_state(proxy),
        )
        .await
        .unwrap()
    });

    // The segment the demo ingested, and the checkpoint of that moment.
    let http = reqwest::Client::new();
    let found: Value = http
        .get(format!("{base}/v1/segments"))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let segment = found["segments"][0]["segment_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let old_checkpoint = http
        .get(format!("{base}/v1/checkpoint"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    // A browser whose language is Chinese gets the Chinese console.
    let downloads = demo.tmp.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let driver = Driver::start().await;
    let aud = driver.browser(&downloads, "zh-CN").await;
    aud.sign_in(&front, &auditor).await;
    aud.goto(&format!("{front}/ui/audit")).await;
    assert_translated(&aud, "audit", "zh-CN", &keys).await;
    assert!(aud.text("#checkpoint").await.contains("custos.demo/ledger"));
    aud.screenshot("audit-zh-CN").await;

    // Honest: every proof leads to the signed root, the signature holds.
    aud.goto(&format!("{front}/ui/audit?segment={segment}&lang=en"))
        .await;
    let v = verdict(&aud).await;
    assert_eq!(
        v,
        "verified",
        "{}\nledger key {:?}\ncheckpoint on the page:\n{}",
        aud.text("#proof").await,
        aud.js(
            "return document.getElementById('proof').dataset.vkey;",
            json!([])
        )
        .await,
        aud.text("#checkpoint").await
    );
    assert_eq!(
        aud.js(
            "return document.getElementById('signature-result').dataset.state;",
            json!([])
        )
        .await,
        json!("ok"),
        "Chromium checks Ed25519 with WebCrypto"
    );
    let states = aud
        .js(
            "return Array.from(document.querySelectorAll('#proof-results li')).map(li => li.dataset.state);",
            json!([]),
        )
        .await;
    let states = states.as_array().unwrap();
    assert!(states.len() >= 3, "{states:?}");
    assert!(states.iter().all(|s| s == "verified"), "{states:?}");
    assert_translated(&aud, "audit with proofs", "en", &keys).await;
    assert_inert(&aud, "audit").await;
    aud.screenshot("audit-verified-en").await;

    // Tampered: the proxy flips one byte of the first entry.
    tamper.store(true, Ordering::SeqCst);
    aud.goto(&format!("{front}/ui/audit?segment={segment}"))
        .await;
    assert_eq!(verdict(&aud).await, "failed");
    let first = aud
        .js(
            "return document.querySelector('#proof-results li').dataset.state;",
            json!([]),
        )
        .await;
    assert_eq!(first, json!("failed"));
    aud.screenshot("audit-tampered-en").await;
    tamper.store(false, Ordering::SeqCst);
    aud.goto(&format!("{front}/ui/audit?segment={segment}"))
        .await;
    assert_eq!(verdict(&aud).await, "verified");

    // The log grows; the pasted older checkpoint is consistent with it.
    let r = http
        .post(format!("{base}/v1/cases"))
        .bearer_auth(&supervisor)
        .json(&json!({"title": "growth for the consistency check"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    aud.goto(&format!("{front}/ui/audit")).await;
    aud.fill("#old-checkpoint", &old_checkpoint).await;
    aud.click("#check-consistency").await;
    let state = aud
        .wait_js(
            "return document.getElementById('consistency-result').dataset.state;",
            "the consistency verdict",
        )
        .await;
    assert_eq!(
        state,
        json!("verified"),
        "{}",
        aud.text("#consistency-result").await
    );
    aud.screenshot("audit-consistency-en").await;

    // A forged checkpoint (another root under the old signature) fails.
    let mut lines: Vec<String> = old_checkpoint.lines().map(str::to_owned).collect();
    lines[2] = B64.encode([7u8; 32]);
    let forged = lines.join("\n") + "\n";
    aud.goto(&format!("{front}/ui/audit")).await;
    aud.fill("#old-checkpoint", &forged).await;
    aud.click("#check-consistency").await;
    let state = aud
        .wait_js(
            "return document.getElementById('consistency-result').dataset.state;",
            "the consistency verdict",
        )
        .await;
    assert_eq!(state, json!("failed"));

    // The browser's signature check against keys of every shape: a C2SP
    // verifier key's base64 may hold '+' and '/' (the page once split the
    // key at every '+', and a random ledger key failed half the time).
    let mut with_plus = 0;
    for seed in 0u8..24 {
        let key = SigningKey::from_seed("ledger", &[seed; 32]).unwrap();
        let vkey = key.verifier_key().to_string();
        with_plus += usize::from(vkey.split('+').count() > 3);
        let note = Checkpoint::new("test.custos/ledger", 5, Hash::from([seed; 32]))
            .unwrap()
            .sign(&key);
        let mut lines: Vec<String> = note.lines().map(str::to_owned).collect();
        lines[1] = "6".into();
        let altered = lines.join("\n") + "\n";
        let check = "return window.CustosAudit.checkSignature(\
                     window.CustosAudit.parseCheckpoint(arguments[0]), arguments[1]);";
        assert_eq!(
            aud.js(check, json!([note, vkey])).await,
            json!("ok"),
            "{vkey}\n{note}"
        );
        assert_eq!(
            aud.js(check, json!([altered, vkey])).await,
            json!("bad"),
            "{vkey}\n{altered}"
        );
    }
    assert!(with_plus > 0, "no test key had a '+' in its base64");

    // The auditor's role reaches no footage, as in the API.
    aud.goto(&format!("{front}/ui/segments/{segment}")).await;
    assert!(aud.try_find("#player").await.is_none());
    aud.goto(&format!("{front}/ui/segments/{segment}/media"))
        .await;
    assert!(aud.text("#error-detail").await.contains("may not"));
    aud.goto(&format!("{front}/ui/queue")).await;
    aud.find("#error-detail").await;

    aud.quit().await;
}
