//! Running the service: load the key, open the ledger, bind, serve, stop.
//!
//! `custos ledger serve` and the bench binary both call [`run`]; tests that
//! want a real socket call [`start`] and [`Server::shutdown`].
//!
//! # Shutdown protocol
//!
//! 1. A signal (Ctrl-C, SIGTERM) or [`Server::shutdown`] tells axum to stop
//!    accepting connections and to finish the requests in flight.
//! 2. When they are done, [`Ledger::close`] lets the writer write every
//!    append already queued, flush, and stop.
//! 3. The sled database is flushed and closed when the last handle drops.
//!
//! The scheduled retention sweep ([`ServeOptions::sweep_interval`],
//! `[retention] sweep_interval`) runs [`custos_ledger::governance::sweep`] on a
//! task of its own, one interval after start-up and then every interval;
//! shutdown waits for a sweep in progress to finish (so no deletion is
//! left half done: its entry written, its object not yet deleted) before
//! the ledger closes.
//!
//! With `[ledger] tiles_url`, the tiles publisher
//! ([`custos_ledger::tiles`]) runs on a task of its own; shutdown lets it
//! publish once more, after the last request and before the ledger closes.
//!
//! A `kill -9` skips all of it; the append path's crash rules
//! ([`custos_ledger::append`]) still hold: nothing acknowledged is lost.
//!
//! # Slow and stalled clients
//!
//! Connections are served by hyper's HTTP/1 server with a header-read
//! timeout of [`ApiConfig::request_timeout`](crate::ApiConfig): a client
//! that stops in the middle of its request line or headers (or never
//! sends the next request on a kept-alive connection) is disconnected
//! after it. Once the headers are in, the API's own timeout layer bounds
//! the rest, the body upload included: a stalled body is answered 503
//! `timeout` and the connection closed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use custos_core::config::Config;
use custos_core::keys::KeyError;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::api::{app, ApiConfig, AppState};
use crate::tls::{ConnectionInfo, TlsError, TlsFiles, TlsSetup};
use custos_ledger::error::OpenError;
use custos_ledger::ledger::{Ledger, LedgerOptions};

/// What the service needs to start.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Listen address, e.g. `127.0.0.1:8700` (port 0: any free port).
    pub listen: String,
    /// How to open the ledger.
    pub ledger: LedgerOptions,
    /// The Ed25519 seed that signs checkpoints.
    pub key_file: PathBuf,
    /// HTTP limits.
    pub api: ApiConfig,
    /// Run the full verification ([`Ledger::spawn_verify_all`]) in the
    /// background after start-up.
    pub verify_on_start: bool,
    /// Access policy, retention, and the object store footage is read from.
    pub governance: custos_ledger::governance::Governance,
    /// Run the retention sweeper every this long (`None`: never). It needs
    /// [`custos_ledger::governance::Governance::objects`].
    pub sweep_interval: Option<Duration>,
    /// Serve HTTPS with these files (`None`: plain HTTP).
    pub tls: Option<TlsFiles>,
    /// Serve plain HTTP on an address that is not loopback (else refused).
    pub allow_plain_http: bool,
    /// Publish the log as tlog-tiles here (`None`: not published). The
    /// caller builds the store from `[ledger] tiles_url`.
    pub tiles: Option<custos_ledger::tiles::PublishOptions>,
}

impl ServeOptions {
    /// Options from the `[ledger]` section of the configuration.
    pub fn from_config(config: &Config) -> ServeOptions {
        let l = &config.ledger;
        ServeOptions {
            listen: l.listen.clone(),
            ledger: LedgerOptions {
                batch_signatures: l.batch_signatures,
                report_font: l.report_font.clone(),
                ..LedgerOptions::new(&l.data_dir, &l.origin).with_config_keys(config)
            },
            key_file: l.key_file.clone(),
            api: ApiConfig::default(),
            verify_on_start: true,
            governance: custos_ledger::governance::Governance::from_access(&config.access)
                .unwrap_or_else(|_| custos_ledger::governance::Governance::strict())
                .with_retention(config.retention.clone()),
            // `Config::parse` refused an interval that does not parse.
            sweep_interval: config.retention.sweep_every().ok().flatten(),
            // `Config::parse` refused a certificate without its key.
            tls: match (&l.tls_cert, &l.tls_key) {
                (Some(cert), Some(key)) => Some(TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                    client_ca: l.tls_client_ca.clone(),
                }),
                _ => None,
            },
            allow_plain_http: l.allow_plain_http,
            tiles: None,
        }
    }
}

/// The tiles publisher's settings from `[ledger] tiles_url` and
/// `checkpoint_interval` (`None` when `tiles_url = "off"`); the store is
/// built as `[storage] url`'s is (custos-ingest's `IngestStore::from_url`).
pub fn tiles_options(
    config: &Config,
) -> Result<Option<custos_ledger::tiles::PublishOptions>, ServeError> {
    let Some(url) = config.ledger.tiles_url() else {
        return Ok(None);
    };
    let bad = |reason: String| ServeError::Tiles {
        url: url.clone(),
        reason,
    };
    let store = custos_ingest::IngestStore::from_url(&url).map_err(|e| bad(e.to_string()))?;
    let interval = config
        .ledger
        .checkpoint_every()
        .map_err(|e| bad(e.to_string()))?;
    let cosigner = crate::cosign::WitnessSubmitter::from_config(config)
        .map_err(|e| bad(format!("[[ledger.witnesses]]: {e}")))?
        .map(|w| std::sync::Arc::new(w) as std::sync::Arc<dyn custos_ledger::tiles::Cosigner>);
    Ok(Some(custos_ledger::tiles::PublishOptions {
        store: store.object_store().clone(),
        url: url.clone(),
        interval,
        cosigner,
    }))
}

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The ledger key could not be loaded.
    #[error("ledger key {path}: {error} (create one with `custos keygen --out {path}`)")]
    Key {
        /// The key file.
        path: PathBuf,
        /// Why (its message is part of this one's).
        error: KeyError,
    },
    /// The ledger refused to open.
    #[error("ledger {path}: {error}")]
    Open {
        /// The data directory.
        path: PathBuf,
        /// Why (its message is part of this one's).
        error: OpenError,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// The address.
        addr: String,
        /// Why (its message is part of this one's).
        error: std::io::Error,
    },
    /// The TLS files could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Plain HTTP on an address other hosts reach, not allowed.
    #[error("refusing to serve plain HTTP on {addr}, which is not a loopback address: tokens would cross the network in the clear; set [ledger] tls_cert and tls_key, or allow_plain_http = true (a TLS proxy in front)")]
    PlainHttp {
        /// The listen address.
        addr: String,
    },
    /// Serving failed.
    #[error("serving the ledger API: {0}")]
    Io(std::io::Error),
    /// `[ledger] tiles_url` or `checkpoint_interval` cannot be used.
    #[error("configuration [ledger] tiles_url {url:?}: {reason}")]
    Tiles {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
}

impl From<std::io::Error> for ServeError {
    fn from(e: std::io::Error) -> Self {
        ServeError::Io(e)
    }
}

/// A running service.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    ledger: Ledger,
    /// Created by `start`; sending (or dropping) it starts step 1 of the
    /// shutdown protocol.
    stop: oneshot::Sender<()>,
    /// The axum server task; ends after step 1.
    task: JoinHandle<std::io::Result<()>>,
    /// The scheduled retention sweep, if one runs.
    sweeper: Option<Sweeper>,
    /// The tiles publisher, if the log is published; stopped after the
    /// ledger's last append, before it closes.
    publisher: Option<custos_ledger::tiles::PublisherTask>,
    /// The TLS configuration, when it serves HTTPS.
    tls: Option<Arc<TlsSetup>>,
}

/// The scheduled retention sweep's task and its stop signal.
#[derive(Debug)]
struct Sweeper {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Sweeper {
    fn spawn(
        ledger: Ledger,
        governance: custos_ledger::governance::Governance,
        every: Duration,
    ) -> Self {
        let every = every.max(Duration::from_millis(100));
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let start = tokio::time::Instant::now() + every;
            let mut ticker = tokio::time::interval_at(start, every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = stopped.changed() => return,
                }
                sweep_once(&ledger, &governance).await;
            }
        });
        Sweeper { stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// One scheduled sweep, its outcome logged.
async fn sweep_once(ledger: &Ledger, governance: &custos_ledger::governance::Governance) {
    let swept = custos_ledger::governance::sweep(
        ledger,
        &governance.retention,
        governance.objects.as_ref(),
        false,
    )
    .await;
    match swept {
        Ok(items) => {
            for item in &items {
                let segment = item.status.segment_id.as_str();
                match (&item.error, item.deleted_seq) {
                    (Some(error), seq) => {
                        tracing::warn!(segment, ?seq, %error, "retention sweep: entry written, object not deleted")
                    }
                    (None, seq) => tracing::info!(segment, ?seq, "retention sweep: deleted"),
                }
            }
            tracing::info!(deleted = items.len(), "retention sweep done");
        }
        Err(error) => tracing::warn!(%error, "retention sweep failed"),
    }
}

/// Whether every address `listen` names is a loopback address (a name is
/// resolved as binding resolves it).
async fn loopback_only(listen: &str) -> Result<bool, ServeError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(listen)
        .await
        .map_err(|error| ServeError::Bind {
            addr: listen.to_owned(),
            error,
        })?
        .collect();
    Ok(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()))
}

/// Open the ledger and start serving (see the module documentation).
pub async fn start(options: ServeOptions) -> Result<Server, ServeError> {
    // The network settings first: a refusal here changes nothing.
    let tls = match &options.tls {
        Some(files) => Some(Arc::new(TlsSetup::load(files.clone())?)),
        None => {
            if !loopback_only(&options.listen).await? {
                if !options.allow_plain_http {
                    return Err(ServeError::PlainHttp {
                        addr: options.listen.clone(),
                    });
                }
                tracing::warn!(
                    listen = %options.listen,
                    "serving plain HTTP on an address that is not loopback ([ledger] allow_plain_http = true): bearer tokens and footage cross the network unencrypted unless a TLS proxy fronts every path to it"
                );
            }
            None
        }
    };
    let key_file = options.key_file.clone();
    let data_dir = options.ledger.data_dir.clone();
    let ledger_options = options.ledger.clone();
    let ledger = tokio::task::spawn_blocking(move || {
        let key = ledger_options
            .load_keys(&key_file)
            .map_err(|error| ServeError::Key {
                path: key_file.clone(),
                error,
            })?;
        Ledger::open(ledger_options, key).map_err(|error| ServeError::Open {
            path: data_dir,
            error,
        })
    })
    .await
    .map_err(|e| ServeError::Io(std::io::Error::other(e)))??;
    if options.verify_on_start {
        ledger.spawn_verify_all()?;
    }
    // Finish any coverage check a crash or shutdown interrupted
    // (governance::settle_all); serving does not wait for it.
    let settling = ledger.clone();
    tokio::spawn(async move {
        match custos_ledger::governance::settle_all(&settling).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(findings = n, "coverage findings recorded at start-up"),
            Err(error) => tracing::warn!(%error, "coverage check at start-up failed"),
        }
    });
    let listener = TcpListener::bind(&options.listen)
        .await
        .map_err(|error| ServeError::Bind {
            addr: options.listen.clone(),
            error,
        })?;
    let addr = listener.local_addr()?;
    let sweeper = match options.sweep_interval {
        Some(every) if options.governance.objects.is_some() => Some(Sweeper::spawn(
            ledger.clone(),
            options.governance.clone(),
            every,
        )),
        Some(_) => {
            tracing::warn!("no object store: the scheduled retention sweep is off");
            None
        }
        None => None,
    };
    let publisher = options
        .tiles
        .clone()
        .map(|tiles| custos_ledger::tiles::spawn(ledger.clone(), tiles));
    let router = app(AppState {
        ledger: ledger.clone(),
        config: options.api,
        governance: std::sync::Arc::new(options.governance.clone()),
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_connections(
        listener,
        router,
        tls.clone(),
        options.api.request_timeout,
        stopped,
    ));
    tracing::info!(%addr, tls = tls.is_some(), "ledger API listening");
    Ok(Server {
        addr,
        ledger,
        stop,
        task,
        sweeper,
        publisher,
        tls,
    })
}

/// Accept connections and serve `router` on each (HTTP/1.1, headers read
/// within `header_timeout`; over TLS when `tls` is given, the handshake
/// within the same time) until `stopped` fires; then stop accepting, let
/// every connection finish its request in flight, and return.
async fn serve_connections(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<Arc<TlsSetup>>,
    header_timeout: Duration,
    mut stopped: oneshot::Receiver<()>,
) -> std::io::Result<()> {
    let (closing, closing_rx) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: wait, retry.
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let router = router.clone();
                let closing = closing_rx.clone();
                let acceptor = tls.as_ref().map(|t| (t.acceptor(), t.docks_need_certificate()));
                connections.spawn(async move {
                    let Some((acceptor, docks_need_certificate)) = acceptor else {
                        let info = ConnectionInfo::default();
                        serve_one(stream, router, info, header_timeout, closing).await;
                        return;
                    };
                    let handshake =
                        tokio::time::timeout(header_timeout, acceptor.accept(stream)).await;
                    let stream = match handshake {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::info!(%peer, error = %e, "TLS handshake refused");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let client_certificate = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .map(|c| c.clone().into_owned());
                    let info = ConnectionInfo {
                        tls: true,
                        docks_need_certificate,
                        client_certificate,
                    };
                    serve_one(stream, router, info, header_timeout, closing).await;
                });
            }
        }
    }
    drop(listener);
    let _ = closing.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Serve HTTP/1.1 on one connection, each request stamped with `info`,
/// until the client closes it or `closing` asks it to finish.
async fn serve_one<S>(
    stream: S,
    router: axum::Router,
    info: ConnectionInfo,
    header_timeout: Duration,
    mut closing: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use tower::ServiceExt as _;
    let stamped = router.map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(info.clone());
        req
    });
    let service = hyper_util::service::TowerToHyperService::new(stamped);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout);
    let conn = builder
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = closing.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

impl Server {
    /// Read the TLS files again (SIGHUP): new connections get the new
    /// certificate, open ones keep theirs; on an error the old one stays.
    /// Without TLS, nothing to do.
    pub fn reload_tls(&self) -> Result<(), TlsError> {
        match &self.tls {
            Some(tls) => tls.reload(),
            None => Ok(()),
        }
    }

    /// Whether it serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, or `https://ADDR` over TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The ledger it serves.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Stop: steps 1 to 3 of the shutdown protocol.
    pub async fn shutdown(self) -> Result<(), ServeError> {
        let _ = self.stop.send(());
        let served = self
            .task
            .await
            .map_err(|e| ServeError::Io(std::io::Error::other(e)))?;
        if let Some(sweeper) = self.sweeper {
            sweeper.stop().await;
        }
        if let Some(publisher) = self.publisher {
            publisher.stop().await;
        }
        self.ledger.close().await;
        Ok(served?)
    }
}

/// Wait for Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// The stream of SIGHUPs (registered when called).
#[cfg(unix)]
fn hangups() -> Option<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP: the TLS certificate is not reloadable");
            None
        }
    }
}

#[cfg(not(unix))]
fn hangups() -> Option<()> {
    None
}

/// How often the TLS files are looked at for a change.
const TLS_WATCH_INTERVAL: Duration = Duration::from_secs(5);

/// How often the certificate's end is warned about while it is near.
const EXPIRY_WARNING_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// The TLS files' keeper: on every SIGHUP, and whenever a file changed on
/// disk, reload them (one log line either way); at start, after each
/// reload and once a day, warn when the certificate ends within
/// [`crate::tls::EXPIRY_WARNING_DAYS`] or has ended.
#[cfg(unix)]
async fn keep_tls(
    hangups: Option<tokio::signal::unix::Signal>,
    tls: Option<Arc<TlsSetup>>,
    ledger: Ledger,
) {
    let Some(tls) = tls else {
        // Plain HTTP: a SIGHUP has nothing to reload.
        if let Some(mut hangups) = hangups {
            while hangups.recv().await.is_some() {
                tracing::info!("SIGHUP: no TLS certificate to reload (plain HTTP)");
            }
        }
        return;
    };
    let mut hangups = hangups;
    let mut file_check = tokio::time::interval(TLS_WATCH_INTERVAL);
    file_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_warning: Option<tokio::time::Instant> = None;
    loop {
        let hangup = async {
            match hangups.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        let reloaded = tokio::select! {
            signal = hangup => {
                if signal.is_none() {
                    hangups = None;
                    continue;
                }
                match tls.reload() {
                    Ok(()) => {
                        tracing::info!(
                            cert = %tls.files().cert.display(),
                            "SIGHUP: TLS certificate reloaded; new connections use it"
                        );
                        true
                    }
                    Err(error) => {
                        tracing::error!(
                            "SIGHUP: TLS reload failed, still serving the previous certificate: {error}"
                        );
                        false
                    }
                }
            }
            _ = file_check.tick() => match tls.reload_if_changed() {
                Ok(changed) => {
                    if changed {
                        tracing::info!(
                            cert = %tls.files().cert.display(),
                            "the TLS files changed: certificate reloaded; new connections use it"
                        );
                    }
                    changed
                }
                Err(error) => {
                    tracing::error!(
                        "the TLS files changed but do not load; still serving the previous certificate: {error}"
                    );
                    false
                }
            },
        };
        let due = last_warning.is_none_or(|t| t.elapsed() >= EXPIRY_WARNING_INTERVAL);
        if reloaded || due {
            last_warning = Some(tokio::time::Instant::now());
            warn_if_ending(&tls, &ledger);
        }
    }
}

/// One warning (or error, once ended) when the certificate in force ends
/// soon, by the ledger's clock.
fn warn_if_ending(tls: &TlsSetup, ledger: &Ledger) {
    let Some(not_after) = tls.not_after() else {
        return;
    };
    let cert = tls.files().cert.display();
    match crate::tls::expiry(not_after, ledger.now().unix_seconds()) {
        None => {}
        Some(crate::tls::Expiry::Soon { days }) => tracing::warn!(
            %cert,
            days_left = days,
            "the ledger's TLS certificate ends in {days} days: renew it (replace the files; they are re-read)"
        ),
        Some(crate::tls::Expiry::Ended { days }) => tracing::error!(
            %cert,
            days_ago = days,
            "the ledger's TLS certificate ended {days} days ago: clients refuse it; renew it now"
        ),
    }
}

#[cfg(not(unix))]
async fn keep_tls(_: Option<()>, _: Option<Arc<TlsSetup>>, _: Ledger) {}

/// Start, call `ready` with the server (to print its URL), serve until
/// Ctrl-C or SIGTERM, then shut down cleanly.
pub async fn run(options: ServeOptions, ready: impl FnOnce(&Server)) -> Result<(), ServeError> {
    let server = start(options).await?;
    // Listening for SIGHUP before `ready` says the service is up: from
    // then on a SIGHUP reloads, it never ends the process.
    let reloads = tokio::spawn(keep_tls(
        hangups(),
        server.tls.clone(),
        server.ledger.clone(),
    ));
    ready(&server);
    shutdown_signal().await;
    reloads.abort();
    tracing::info!("shutting down");
    server.shutdown().await
}

/// [`run`] on a Tokio runtime of its own, for a synchronous `main`.
pub fn run_blocking(options: ServeOptions, ready: impl FnOnce(&Server)) -> Result<(), ServeError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("custos-ledger")
        .build()?
        .block_on(run(options, ready))
}

/// How log lines are written: `CUSTOS_LOG_FORMAT=json` (one JSON object
/// per line) or text; colour codes only when standard error is a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogFormat {
    /// One JSON object per line.
    pub json: bool,
    /// ANSI colours.
    pub colour: bool,
}

impl LogFormat {
    /// The format for `CUSTOS_LOG_FORMAT`'s value and whether standard
    /// error is a terminal. `json` (any case) asks for JSON; anything else
    /// is text.
    pub fn choose(setting: Option<&str>, terminal: bool) -> LogFormat {
        let json = setting.is_some_and(|s| s.trim().eq_ignore_ascii_case("json"));
        LogFormat {
            json,
            colour: terminal && !json,
        }
    }
}

/// Send `tracing` output to standard error, filtered by `RUST_LOG`
/// (default `info`), as [`LogFormat::choose`] says. For binaries; call once.
pub fn init_logging() {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let format = LogFormat::choose(
        std::env::var("CUSTOS_LOG_FORMAT").ok().as_deref(),
        std::io::stderr().is_terminal(),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(format.colour);
    let _ = if format.json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::LogFormat;

    #[test]
    fn logs_are_json_when_asked_and_coloured_only_on_a_terminal() {
        assert_eq!(
            LogFormat::choose(Some("json"), true),
            LogFormat {
                json: true,
                colour: false
            }
        );
        assert_eq!(
            LogFormat::choose(None, false),
            LogFormat {
                json: false,
                colour: false
            }
        );
        assert!(LogFormat::choose(None, true).colour);
        assert!(!LogFormat::choose(Some("text"), false).json);
        assert!(LogFormat::choose(Some(" JSON "), false).json);
    }
}
