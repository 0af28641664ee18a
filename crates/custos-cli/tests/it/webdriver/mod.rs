//! A small W3C WebDriver client (over reqwest) and the set-up the browser
//! tests share: Debian's `chromedriver` driving headless `chromium`, a
//! `custos demo` directory (footage ingested through the real dock path),
//! and `custos ledger serve` on a free port.
//!
//! Only what the tests use: sessions, navigation, elements, scripts,
//! screenshots, alerts.

#![allow(dead_code)]

use crate::util::free_port;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use custos_media::synth::SyntheticClip;
use serde_json::{json, Value};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A child process killed when dropped, with every process it started
/// (chromedriver's Chromium: left behind, a failed test's browser would
/// load the machine for the tests after it).
pub(crate) struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let mut doomed = vec![self.0.id()];
        let mut at = 0;
        while at < doomed.len() {
            let parent = doomed[at];
            doomed.extend(children_of(parent));
            at += 1;
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
        for pid in &doomed[1..] {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The pids whose parent is `parent` (from /proc).
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // /proc/PID/stat: "pid (comm) state ppid ...", comm may hold spaces.
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let rest = &stat[stat.rfind(')')? + 2..];
                    rest.split(' ').nth(1)?.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

/// Where the tests keep their screenshots: `target/ui-screenshots/`.
pub(crate) fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `chromedriver` on a free port.
pub(crate) struct Driver {
    _proc: Proc,
    url: String,
    http: reqwest::Client,
}

/// The HTTP client of these tests (WebDriver calls, the ledger's API): a
/// call unanswered after 2 minutes fails the test instead of hanging it
/// (Chromium's own renderer timeout is 30 s).
fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("an HTTP client")
}

impl Driver {
    /// Start Debian's chromedriver and wait until it answers.
    pub(crate) async fn start() -> Driver {
        let exe = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect(
                "chromedriver is not installed (scripts/install-deps installs chromium-driver)",
            );
        let port = free_port();
        let child = Command::new(exe)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let driver = Driver {
            _proc: Proc(child),
            url: format!("http://127.0.0.1:{port}"),
            http: http_client(),
        };
        let started = Instant::now();
        loop {
            if let Ok(r) = driver
                .http
                .get(format!("{}/status", driver.url))
                .send()
                .await
            {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        driver
    }

    /// A new headless Chromium with an empty profile, downloading into
    /// `downloads`.
    pub(crate) async fn browser(&self, downloads: &Path, lang: &str) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let chromium = ["/usr/bin/chromium", "/usr/lib/chromium/chromium"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("chromium is not installed (scripts/install-deps installs it)");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required",
                    "--window-size=1280,1000",
                    format!("--lang={lang}"),
                    format!("--user-data-dir={}", profile.path().display()),
                ],
                "prefs": {
                    "download.default_directory": downloads.display().to_string(),
                    "download.prompt_for_download": false,
                    "intl.accept_languages": lang,
                }
            }
        }}});
        let v = post(&self.http, &format!("{}/session", self.url), &caps).await;
        let id = v["sessionId"].as_str().expect("a session id").to_owned();
        let b = Browser {
            http: self.http.clone(),
            base: format!("{}/session/{id}", self.url),
            _profile: profile,
        };
        b.call(
            "POST",
            "/timeouts",
            json!({"script": 30000, "pageLoad": 30000}),
        )
        .await
        .unwrap();
        b
    }
}

async fn post(http: &reqwest::Client, url: &str, body: &Value) -> Value {
    let r = http.post(url).json(body).send().await.unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert!(status.is_success(), "{url}: {status} {v}");
    v["value"].clone()
}

/// One browser session.
pub(crate) struct Browser {
    http: reqwest::Client,
    base: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// A WebDriver command: the `value`, or the error's `error` code.
    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        body: Value,
    ) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self.http.post(&url).json(&body),
        };
        let r = req.send().await.map_err(|e| e.to_string())?;
        let ok = r.status().is_success();
        let v: Value = r.json().await.map_err(|e| e.to_string())?;
        if ok {
            Ok(v["value"].clone())
        } else {
            Err(format!(
                "{}: {}",
                v["value"]["error"].as_str().unwrap_or("?"),
                v["value"]["message"].as_str().unwrap_or("")
            ))
        }
    }

    /// Navigate and wait for the page to load.
    pub(crate) async fn goto(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url }))
            .await
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// The current URL.
    pub(crate) async fn url(&self) -> String {
        self.call("GET", "/url", Value::Null)
            .await
            .unwrap()
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// The first element matching `css`, if any.
    pub(crate) async fn try_find(&self, css: &str) -> Option<String> {
        self.call(
            "POST",
            "/element",
            json!({"using": "css selector", "value": css}),
        )
        .await
        .ok()
        .and_then(|v| v[ELEMENT].as_str().map(str::to_owned))
    }

    /// The first element matching `css`, waiting up to 10 s for it.
    pub(crate) async fn find(&self, css: &str) -> String {
        let started = Instant::now();
        loop {
            if let Some(e) = self.try_find(css).await {
                return e;
            }
            if started.elapsed() > Duration::from_secs(10) {
                let url = self.url().await;
                let text = self.text("body").await;
                panic!("no element {css:?} on {url}:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every element matching `css`.
    pub(crate) async fn find_all(&self, css: &str) -> Vec<String> {
        self.call(
            "POST",
            "/elements",
            json!({"using": "css selector", "value": css}),
        )
        .await
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v[ELEMENT].as_str().map(str::to_owned))
        .collect()
    }

    /// Click the element matching `css`.
    pub(crate) async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.call("POST", &format!("/element/{e}/click"), json!({}))
            .await
            .unwrap_or_else(|err| panic!("click {css}: {err}"));
    }

    /// Type into the element matching `css` (after clearing it).
    pub(crate) async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        let _ = self
            .call("POST", &format!("/element/{e}/clear"), json!({}))
            .await;
        self.call(
            "POST",
            &format!("/element/{e}/value"),
            json!({ "text": text }),
        )
        .await
        .unwrap_or_else(|err| panic!("type into {css}: {err}"));
    }

    /// The visible text of the element matching `css`.
    pub(crate) async fn text(&self, css: &str) -> String {
        let Some(e) = self.try_find(css).await else {
            return String::new();
        };
        self.call("GET", &format!("/element/{e}/text"), Value::Null)
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// Run `script` (a function body; `arguments` are `args`).
    pub(crate) async fn js(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
        .await
        .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Run `script` asynchronously: it calls `arguments[arguments.length - 1]`
    /// with its result.
    pub(crate) async fn js_async(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/async",
            json!({"script": script, "args": args}),
        )
        .await
        .unwrap_or_else(|e| panic!("async script failed: {e}\n{script}"))
    }

    /// Wait until `script` returns something truthy; returns it.
    pub(crate) async fn wait_js(&self, script: &str, what: &str) -> Value {
        let started = Instant::now();
        loop {
            let v = self.js(script, json!([])).await;
            let truthy = !(v.is_null() || v == json!(false) || v == json!("") || v == json!(0));
            if truthy {
                return v;
            }
            if started.elapsed() > Duration::from_secs(20) {
                panic!("timed out waiting for {what} on {}", self.url().await);
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// The text of an open alert/confirm/prompt dialog, if one is open.
    pub(crate) async fn alert(&self) -> Option<String> {
        self.call("GET", "/alert/text", Value::Null)
            .await
            .ok()
            .map(|v| v.as_str().unwrap_or("").to_owned())
    }

    /// Save a PNG screenshot as `target/ui-screenshots/NAME.png`.
    pub(crate) async fn screenshot(&self, name: &str) {
        let v = self.call("GET", "/screenshot", Value::Null).await.unwrap();
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        std::fs::write(screenshot_dir().join(format!("{name}.png")), png).unwrap();
    }

    /// Print the page as the browser prints it (A4, the page's print CSS,
    /// backgrounds off) into `target/ui-screenshots/NAME.pdf`; its path.
    pub(crate) async fn print_pdf(&self, name: &str) -> PathBuf {
        let v = self
            .call(
                "POST",
                "/print",
                json!({ "page": { "width": 21.0, "height": 29.7 }, "background": false }),
            )
            .await
            .unwrap();
        let pdf = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        let path = screenshot_dir().join(format!("{name}.pdf"));
        std::fs::write(&path, pdf).unwrap();
        path
    }

    /// The browser console's messages so far.
    pub(crate) async fn console_log(&self) -> Vec<String> {
        self.call("POST", "/se/log", json!({"type": "browser"}))
            .await
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .map(|e| e["message"].as_str().unwrap_or("").to_owned())
            .collect()
    }

    /// Sign in to the console at `base` with `token`.
    pub(crate) async fn sign_in(&self, base: &str, token: &str) {
        self.goto(&format!("{base}/ui/login")).await;
        self.fill("#token", token).await;
        self.click("#sign-in").await;
        self.find("#who").await;
    }

    /// End the session (closes the browser).
    pub(crate) async fn quit(self) {
        let _ = self.call("DELETE", "", Value::Null).await;
    }
}

/// A demo directory with one clip ingested, plus the tokens it printed
/// and the extra ones a test asks for.
pub(crate) struct Demo {
    pub tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub exe: PathBuf,
}

impl Demo {
    /// `custos demo --clips 1 --seconds 3`: real clips, the real dock
    /// ingest, keys, tokens.
    pub(crate) fn new(exe: &str) -> Demo {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("demo");
        let out = Command::new(exe)
            .args(["demo", "--clips", "1", "--seconds", "3", "--workdir"])
            .arg(&dir)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "demo failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Demo {
            tmp,
            dir,
            exe: exe.into(),
        }
    }

    pub(crate) fn config(&self) -> PathBuf {
        self.dir.join("custos.toml")
    }

    /// A token the demo printed, by role.
    pub(crate) fn token(&self, role: &str) -> String {
        let text = std::fs::read_to_string(self.dir.join("tokens.txt")).unwrap();
        text.lines()
            .filter_map(|l| {
                let f: Vec<_> = l.split('\t').collect();
                (f.len() == 3 && f[0] == role).then(|| f[2].to_owned())
            })
            .next()
            .unwrap()
    }

    /// `custos token create` (before the server runs).
    pub(crate) fn new_token(&self, role: &str, name: &str) -> String {
        let out = Command::new(&self.exe)
            .args([
                "token", "create", "--role", role, "--name", name, "--config",
            ])
            .arg(self.config())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap()
            .trim()
            .to_owned()
    }

    /// Dock a second recorder holding one short clip called `name`, through
    /// `custos dock ingest` (before the server runs).
    pub(crate) fn ingest_named(&self, folder: &str, name: &str) {
        let rec = self.dir.join(folder);
        std::fs::create_dir_all(&rec).unwrap();
        let clip = rec.join(name);
        SyntheticClip::new(2)
            .video(320, 180, 25)
            .silent()
            .preset("veryfast")
            .write(&clip)
            .unwrap();
        let out = Command::new(&self.exe)
            .args(["dock", "ingest", "--progress", "never", "--config"])
            .arg(self.config())
            .arg("--source")
            .arg(&rec)
            // Its names name no device: the id is given, never guessed.
            .args(["--recorder-id", folder])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }

    /// `custos ledger serve` on a free port; returns it and its base URL.
    pub(crate) async fn serve(&self) -> (Proc, String) {
        let port = free_port();
        let child = Command::new(&self.exe)
            .args(["ledger", "serve", "--config"])
            .arg(self.config())
            .env("CUSTOS_LEDGER_LISTEN", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let http = http_client();
        let started = Instant::now();
        loop {
            if let Ok(r) = http.get(format!("{base}/healthz")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "ledger did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (Proc(child), base)
    }
}

/// Every entry of the log (NDJSON lines of `/v1/entries`), read with `token`.
pub(crate) async fn entries(base: &str, token: &str) -> Vec<Value> {
    let text = http_client()
        .get(format!("{base}/v1/entries?start=0"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["entry"].clone())
        .collect()
}

/// Every message id of both catalogues.
pub(crate) fn catalogue_keys() -> BTreeSet<String> {
    let mut keys = custos_i18n::keys(custos_i18n::Lang::En);
    keys.extend(custos_i18n::keys(custos_i18n::Lang::ZhCn));
    keys
}

/// No dialog is open and no element or script came from page content.
pub(crate) async fn assert_inert(b: &Browser, page: &str) {
    assert_eq!(b.alert().await, None, "a dialog opened on {page}");
    let v = b
        .js(
            "return {imgs: document.images.length, scripts: Array.from(document.scripts).map(s => s.src)};",
            json!([]),
        )
        .await;
    assert_eq!(v["imgs"], json!(0), "an <img> element on {page}");
    for s in v["scripts"].as_array().unwrap() {
        let src = s.as_str().unwrap();
        assert!(src.contains("/ui/static/"), "script {src:?} on {page}");
    }
}

/// Whether `text` holds `id` as a word of its own (not inside a URL such
/// as `/v1/access-requests` or a longer identifier).
fn shows_id(text: &str, id: &str) -> bool {
    let part = |c: char| c.is_ascii_alphanumeric() || "-_./".contains(c);
    text.match_indices(id).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + id.len()..].chars().next();
        !before.is_some_and(part) && !after.is_some_and(part)
    })
}

/// The page is in `lang` and shows no message id in place of a message.
pub(crate) async fn assert_translated(
    b: &Browser,
    page: &str,
    lang: &str,
    keys: &BTreeSet<String>,
) {
    let v = b
        .js(
            "return {lang: document.documentElement.lang, text: document.body.innerText, title: document.title};",
            json!([]),
        )
        .await;
    assert_eq!(v["lang"], json!(lang), "{page}");
    let text = format!(
        "{} {}",
        v["title"].as_str().unwrap(),
        v["text"].as_str().unwrap()
    );
    for k in keys {
        assert!(
            !shows_id(&text, k),
            "{page} ({lang}) shows message id {k}:\n{text}"
        );
    }
    let cjk = text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
    if lang == "zh-CN" {
        assert!(cjk, "{page} in zh-CN has no Chinese text:\n{text}");
    }
}
