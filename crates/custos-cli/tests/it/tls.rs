//! The ledger's own TLS, against the real `custos ledger serve` with a
//! site CA and certificates made in the test (rcgen): a dock token counts
//! only with its station's certificate when `tls_client_ca` is set, clients
//! refuse a certificate from a CA they do not trust or one that expired,
//! the console's cookies are `Secure`, SIGHUP (or replacing the files)
//! swaps the certificate without dropping an open connection (and a broken
//! file keeps the old one), a certificate near its end is warned about, and
//! plain HTTP on an address other hosts reach is refused unless the
//! configuration allows it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use custos_client::{ClientError, ClientTls, LedgerClient};
use custos_testsupport::fixtures::{dock_key, docked_event};
use custos_testsupport::pki::{CertFiles, TestCa, Validity};

use crate::util::*;

const ORIGIN: &str = "tls.test/ledger";

/// A ledger service over TLS, its directory and its site CA.
struct TlsLedger {
    dir: tempfile::TempDir,
    ca: TestCa,
    server_cert: CertFiles,
    child: Child,
    url: String,
}

impl Drop for TlsLedger {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the ledger's configuration says about TLS.
struct Setup {
    client_ca: bool,
    validity: Validity,
}

fn write_config(dir: &Path, tls: &str) -> PathBuf {
    let config = dir.join("custos.toml");
    std::fs::write(
        &config,
        format!(
            "[ledger]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"./ledger\"\norigin = \"{ORIGIN}\"\nkey_file = \"./ledger.key\"\n{tls}"
        ),
    )
    .unwrap();
    config
}

fn keygen(dir: &Path) {
    let out = custos()
        .args(["keygen", "--out"])
        .arg(dir.join("ledger.key"))
        .output()
        .unwrap();
    ok(&out);
}

impl TlsLedger {
    fn start(setup: Setup) -> TlsLedger {
        Self::start_with(setup, |_, _| {})
    }

    /// Start after `before` made what it needs (tokens) in the directory
    /// with the configuration.
    fn start_with(setup: Setup, before: impl FnOnce(&Path, &Path)) -> TlsLedger {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new(dir.path(), "site-ca").unwrap();
        let server_cert = ca
            .server("ledger", &["127.0.0.1", "localhost"], setup.validity)
            .unwrap();
        let mut tls = "tls_cert = \"ledger.crt\"\ntls_key = \"ledger.key.pem\"\n".to_owned();
        // The ledger's signing key is ledger.key: the TLS key gets another name.
        std::fs::rename(&server_cert.key, dir.path().join("ledger.key.pem")).unwrap();
        let server_cert = CertFiles {
            cert: server_cert.cert,
            key: dir.path().join("ledger.key.pem"),
        };
        if setup.client_ca {
            tls.push_str("tls_client_ca = \"site-ca.pem\"\n");
        }
        let config = write_config(dir.path(), &tls);
        keygen(dir.path());
        before(dir.path(), &config);
        let mut serve = custos();
        serve
            .args(["ledger", "serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .stderr(log_file(dir.path()));
        let (child, url) = custos_testsupport::serve_ledger(serve).unwrap();
        TlsLedger {
            dir,
            ca,
            server_cert,
            child,
            url,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("ledger.log")).unwrap_or_default()
    }

    fn client(&self, token: Option<&str>, tls: &ClientTls) -> LedgerClient {
        LedgerClient::configured(&self.url, token, Duration::from_secs(10), tls).unwrap()
    }

    fn trusting(&self) -> ClientTls {
        ClientTls::default()
            .trust_ca("test ca", &self.ca.cert_path())
            .unwrap()
    }
}

fn log_file(dir: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("ledger.log"))
        .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn rejected_code(e: &ClientError) -> Option<(u16, String)> {
    e.ledger_message().map(|(s, code, _)| (s, code.to_owned()))
}

#[test]
fn a_dock_token_counts_only_with_its_station_certificate() {
    let dock = dock_key();
    let mut tokens = (String::new(), String::new());
    let ledger = TlsLedger::start_with(
        Setup {
            client_ca: true,
            validity: Validity::Current,
        },
        |dir, config| {
            let dock_pub = dir.join("dock.pub");
            std::fs::write(&dock_pub, format!("{}\n", dock.verifier_key())).unwrap();
            tokens.0 = token(config, "dock", dock.name(), Some(&dock_pub));
            tokens.1 = token(config, "auditor", "aud-1", None);
        },
    );
    assert!(
        ledger.url.starts_with("https://127.0.0.1:"),
        "{}",
        ledger.url
    );
    let (dock_token, auditor_token) = tokens;
    let own = ledger.ca.client("dock-01-station", &["dock-01"]).unwrap();
    let other = ledger.ca.client("dock-02-station", &["dock-02"]).unwrap();
    let rogue_ca = TestCa::new(&ledger.path(""), "rogue-ca").unwrap();
    let rogue = rogue_ca.client("rogue-station", &["dock-01"]).unwrap();
    let rt = runtime();
    let presenting = |files: &CertFiles| {
        ledger
            .trusting()
            .present(("cert", &files.cert), ("key", &files.key))
            .unwrap()
    };

    // An auditor without a certificate reads, as before.
    let auditor = ledger.client(Some(&auditor_token), &ledger.trusting());
    rt.block_on(auditor.checkpoint()).unwrap();

    // The stolen token alone: refused, and nothing appended.
    let stolen = ledger.client(Some(&dock_token), &ledger.trusting());
    let err = rt
        .block_on(stolen.append_envelope(&docked_event("REC-1")))
        .unwrap_err();
    assert_eq!(
        rejected_code(&err),
        Some((403, "client_certificate_required".into())),
        "{err}"
    );
    assert!(err.to_string().contains("tls_client_ca"), "{err}");
    assert!(
        !err.is_final_refusal(),
        "a configuration fix lifts it: {err}"
    );

    // Another station's certificate (same CA) does not lend its name.
    let borrowed = ledger.client(Some(&dock_token), &presenting(&other));
    let err = rt
        .block_on(borrowed.append_envelope(&docked_event("REC-1")))
        .unwrap_err();
    assert_eq!(
        rejected_code(&err),
        Some((403, "client_certificate_mismatch".into())),
        "{err}"
    );

    // A certificate naming the dock from a CA the ledger does not trust:
    // the handshake itself is refused.
    let forged = ledger.client(Some(&dock_token), &presenting(&rogue));
    let err = rt
        .block_on(forged.append_envelope(&docked_event("REC-1")))
        .unwrap_err();
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err}");

    let size = rt.block_on(auditor.entries(0, None)).unwrap().len();

    // The station's own certificate with its token: appended.
    let station = ledger.client(Some(&dock_token), &presenting(&own));
    let receipt = rt
        .block_on(station.append_envelope(&docked_event("REC-1")))
        .unwrap();
    assert_eq!(receipt.seq, size as u64, "{receipt:?}");
    let after = rt.block_on(auditor.entries(0, None)).unwrap().len();
    assert_eq!(after, size + 1, "exactly the station's entry was added");

    // The refusals are in the service's log, token id and reason.
    let log = ledger.log();
    assert!(log.contains("dock token refused"), "{log}");

    // Plain HTTP to the TLS port gets no answer a client could use.
    let plain = LedgerClient::new(&ledger.url.replace("https://", "http://"), None).unwrap();
    assert!(rt.block_on(plain.checkpoint()).is_err());
}

/// Run `custos verify log` against `url`, trusting `ca`; its output.
fn verify_log(url: &str, key: &Path, ca: Option<&Path>) -> Output {
    let mut cmd: Command = custos();
    cmd.args(["verify", "log", "--ledger", url, "--ledger-key"])
        .arg(key)
        .env_remove("CUSTOS_CLIENT_LEDGER_CA");
    if let Some(ca) = ca {
        cmd.arg("--ledger-ca").arg(ca);
    }
    cmd.output().unwrap()
}

/// Exit 2 and one line on stderr containing one of `says` (any case).
fn assert_refused(out: &Output, says: &[&str]) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    let lower = stderr.to_lowercase();
    assert!(
        says.iter().any(|s| lower.contains(&s.to_lowercase())),
        "want one of {says:?} in {stderr:?}"
    );
}

#[test]
fn clients_refuse_a_wrong_ca_and_an_expired_certificate() {
    let ledger = TlsLedger::start(Setup {
        client_ca: false,
        validity: Validity::Current,
    });
    let key = ledger.path("ledger.key.pub");
    // Trusting the site CA: the log verifies over https.
    let out = verify_log(&ledger.url, &key, Some(&ledger.ca.cert_path()));
    ok(&out);
    // Another CA: refused, saying why.
    let other = TestCa::new(&ledger.path(""), "other-ca").unwrap();
    let out = verify_log(&ledger.url, &key, Some(&other.cert_path()));
    assert_refused(&out, &["UnknownIssuer", "unknown issuer"]);
    // The public web roots do not know a site's private CA either.
    let out = verify_log(&ledger.url, &key, None);
    assert_refused(&out, &["UnknownIssuer", "unknown issuer"]);
    // A file that is not a certificate: one line naming it.
    let out = verify_log(&ledger.url, &key, Some(&key));
    assert_refused(&out, &["--ledger-ca"]);

    let expired = TlsLedger::start(Setup {
        client_ca: false,
        validity: Validity::Expired,
    });
    let out = verify_log(
        &expired.url,
        &expired.path("ledger.key.pub"),
        Some(&expired.ca.cert_path()),
    );
    assert_refused(&out, &["expired"]);
}

fn https_client(ca: &Path) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap())
        .tls_info(true)
        .build()
        .unwrap()
}

#[test]
fn the_console_cookie_is_secure_over_tls() {
    let ledger = TlsLedger::start(Setup {
        client_ca: true,
        validity: Validity::Current,
    });
    let rt = runtime();
    let client = https_client(&ledger.ca.cert_path());
    let resp = rt
        .block_on(client.get(format!("{}/ui/login", ledger.url)).send())
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let cookies: Vec<_> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(!cookies.is_empty(), "the sign-in page sets its CSRF cookie");
    for c in &cookies {
        assert!(c.contains("; Secure"), "{c}");
        assert!(c.contains("HttpOnly"), "{c}");
    }
}

/// The DER of the certificate a response's connection was served with.
fn served_cert(resp: &reqwest::Response) -> Vec<u8> {
    resp.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .expect("TLS info on the response")
        .to_vec()
}

fn hangup(child: &Child) {
    let out = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// The DER of the certificate in a PEM file.
fn der_of_pem(path: &Path) -> Vec<u8> {
    let body: String = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

/// The certificate a new connection gets, asked until it is no longer
/// `old` or `limit` passes.
fn served_after_change(fresh_cert: impl Fn() -> Vec<u8>, old: &[u8], limit: Duration) -> Vec<u8> {
    let deadline = Instant::now() + limit;
    let mut seen = fresh_cert();
    while seen == old && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        seen = fresh_cert();
    }
    seen
}

#[test]
fn sighup_swaps_the_certificate_and_keeps_open_connections() {
    let ledger = TlsLedger::start(Setup {
        client_ca: false,
        validity: Validity::Current,
    });
    let rt = runtime();
    let kept = https_client(&ledger.ca.cert_path());
    let url = format!("{}/healthz", ledger.url);
    let first = rt.block_on(kept.get(&url).send()).unwrap();
    let old = served_cert(&first);
    rt.block_on(first.bytes()).unwrap();

    // The new certificate (same CA, a new key) replaces the files; SIGHUP.
    let renewed = ledger
        .ca
        .server("renewed", &["127.0.0.1", "localhost"], Validity::Current)
        .unwrap();
    std::fs::copy(&renewed.cert, &ledger.server_cert.cert).unwrap();
    std::fs::copy(&renewed.key, &ledger.server_cert.key).unwrap();
    hangup(&ledger.child);
    let fresh_cert = || {
        let fresh = https_client(&ledger.ca.cert_path());
        let resp = rt.block_on(fresh.get(&url).send()).unwrap();
        served_cert(&resp)
    };
    let seen = served_after_change(fresh_cert, &old, Duration::from_secs(10));
    assert_ne!(seen, old, "new connections get the renewed certificate");
    assert_eq!(der_of_pem(&renewed.cert), seen);

    // The kept-alive connection was not dropped: it still speaks with the
    // certificate it negotiated (a new connection would get the new one).
    let again = rt.block_on(kept.get(&url).send()).unwrap();
    assert!(again.status().is_success());
    assert_eq!(served_cert(&again), old, "the open connection was kept");

    // A broken file: one clear error line, the renewed certificate stays.
    std::fs::write(&ledger.server_cert.cert, "not a certificate\n").unwrap();
    hangup(&ledger.child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ledger.log().contains("TLS reload failed") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = ledger.log();
    let failures: Vec<_> = log
        .lines()
        .filter(|l| l.contains("TLS reload failed"))
        .collect();
    assert_eq!(failures.len(), 1, "{log}");
    assert!(failures[0].contains("tls_cert"), "{}", failures[0]);
    assert!(failures[0].contains("still serving the previous certificate"));
    assert_eq!(fresh_cert(), seen, "the previous certificate still serves");
}

#[test]
fn a_replaced_certificate_file_is_served_without_a_signal() {
    let ledger = TlsLedger::start(Setup {
        client_ca: false,
        validity: Validity::Current,
    });
    let rt = runtime();
    let url = format!("{}/healthz", ledger.url);
    let fresh_cert = || {
        let fresh = https_client(&ledger.ca.cert_path());
        let resp = rt.block_on(fresh.get(&url).send()).unwrap();
        served_cert(&resp)
    };
    let old = fresh_cert();
    // A renewal tool replaces the files (key first) and signals nobody.
    let renewed = ledger
        .ca
        .server("renewed", &["127.0.0.1", "localhost"], Validity::Current)
        .unwrap();
    std::fs::copy(&renewed.key, &ledger.server_cert.key).unwrap();
    std::fs::copy(&renewed.cert, &ledger.server_cert.cert).unwrap();
    let seen = served_after_change(fresh_cert, &old, Duration::from_secs(30));
    assert_ne!(
        seen,
        old,
        "the replaced files were not picked up: {}",
        ledger.log()
    );
    assert_eq!(der_of_pem(&renewed.cert), seen);
    assert!(
        ledger
            .log()
            .contains("the TLS files changed: certificate reloaded"),
        "{}",
        ledger.log()
    );
}

#[test]
fn a_certificate_near_its_end_is_warned_about_at_start() {
    let ledger = TlsLedger::start(Setup {
        client_ca: false,
        validity: Validity::EndingSoon,
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ledger.log().contains("TLS certificate ends in") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = ledger.log();
    let warnings: Vec<_> = log
        .lines()
        .filter(|l| l.contains("TLS certificate ends in"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    // Ten days from now, less the moments since it was made.
    assert!(
        warnings[0].contains("ends in 9 days") || warnings[0].contains("ends in 10 days"),
        "{}",
        warnings[0]
    );
    assert!(warnings[0].contains("WARN"), "{}", warnings[0]);

    // A certificate with a year to run is not warned about.
    let fine = TlsLedger::start(Setup {
        client_ca: false,
        validity: Validity::Current,
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !fine.log().contains("TLS certificate end"),
        "{}",
        fine.log()
    );
}

#[test]
fn plain_http_on_a_non_loopback_address_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    keygen(dir.path());
    let config = write_config(dir.path(), "");
    let text_of = |s: &str| {
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("127.0.0.1:0", s)
    };
    std::fs::write(&config, text_of("0.0.0.0:0")).unwrap();
    let out = custos()
        .args(["ledger", "serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("allow_plain_http = true"), "{stderr}");
    assert!(stderr.contains("0.0.0.0:0"), "{stderr}");
    assert!(
        !dir.path().join("ledger").exists(),
        "a refusal changes nothing: no ledger was opened"
    );

    // Allowed in the configuration: it serves, and says so at start.
    let allowed = format!(
        "{}allow_plain_http = true\n",
        std::fs::read_to_string(&config).unwrap()
    );
    std::fs::write(&config, allowed).unwrap();
    let mut serve = custos();
    serve
        .args(["ledger", "serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stderr(log_file(dir.path()));
    let (mut child, url) = custos_testsupport::serve_ledger(serve).unwrap();
    let log = std::fs::read_to_string(dir.path().join("ledger.log")).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(url.starts_with("http://0.0.0.0:"), "{url}");
    assert!(log.contains("serving plain HTTP"), "{log}");

    // Loopback needs no setting and gets no warning.
    let dir = tempfile::tempdir().unwrap();
    keygen(dir.path());
    let config = write_config(dir.path(), "");
    let mut serve = custos();
    serve
        .args(["ledger", "serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped());
    let (mut child, _) = custos_testsupport::serve_ledger(serve).unwrap();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(
        !text(&out.stderr).contains("plain HTTP"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn tls_files_that_do_not_load_stop_the_start_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    keygen(dir.path());
    let ca = TestCa::new(dir.path(), "site-ca").unwrap();
    let one = ca.server("one", &["127.0.0.1"], Validity::Current).unwrap();
    let two = ca.server("two", &["127.0.0.1"], Validity::Current).unwrap();
    std::fs::write(dir.path().join("junk.pem"), "not PEM\n").unwrap();
    for (cert, key, says) in [
        (one.cert.clone(), dir.path().join("absent.key"), "tls_key"),
        (
            dir.path().join("junk.pem"),
            one.key.clone(),
            "no PEM CERTIFICATE",
        ),
        (one.cert.clone(), two.key.clone(), "not the private key"),
    ] {
        let config = write_config(
            dir.path(),
            &format!(
                "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
                cert.display(),
                key.display()
            ),
        );
        let out = custos()
            .args(["ledger", "serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(says), "want {says:?}: {stderr}");
        assert!(!dir.path().join("ledger").exists(), "nothing was opened");
    }
}
