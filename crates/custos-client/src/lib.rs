//! # custos-client: the typed HTTP client of the Custos ledger API
//!
//! [`LedgerClient`] is what the dock and the command line use to talk to a
//! ledger over HTTP(S): each method is one route of DESIGN.md's API and
//! returns its typed answer ([`custos_core::wire`]). Errors say whether
//! retrying can help ([`ClientError::is_retryable`]). Only a refusal that
//! names the request itself as invalid is final
//! ([`ClientError::is_final_refusal`]): 400, 409 or 422, or one of
//! [`INVALID_REQUEST_CODES`] (a bad signature on the event, an action a dock
//! may not record). Everything else may succeed later with the very same
//! bytes: an unreachable ledger, a 5xx, and the refusals a fix of the
//! configuration or of the ledger's load lifts — 401 (wrong or expired
//! token), 403 (a role or key not registered yet, or `not_own_work`:
//! another dock's token configured here), 408, 413 (a proxy's body limit),
//! 429 (rate limits), a 404 for the route itself (a wrong URL prefix). The
//! dock's offline queue retries all of these and sets aside only the final
//! ones.
//!
//! Over `https://`, [`ClientTls`] holds what the site's PKI gives a client:
//! the CA that issued the ledger's certificate (`ledger_ca`: then only it
//! is trusted, not the public web roots) and, for a docking station, its
//! client certificate and key (mutual TLS). A refused handshake (an
//! unknown issuer, an expired certificate, a name that does not match) is
//! [`ClientError::Unreachable`], its message naming rustls's reason.
//!
//! Besides the ledger, [`dock_status`] reads a docking station's status
//! endpoint (`custos dock status`).
//!
//! This crate depends on custos-core and the HTTP client alone: it knows
//! the API's shapes and codes, never the ledger's rules or storage.
//!
//! ## What this crate must never do
//!
//! Log or display its bearer token, or take an answer that does not parse
//! as the API promises for a success.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use custos_core::checkpoint::{Checkpoint, CheckpointError};
use custos_core::dsse::Envelope;
use custos_core::keys::VerifierKey;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use url::Url;

use custos_core::wire::{
    ConsistencyProof, CoverageList, CoverageQuery, Custody, EntryLine, ErrorBody, ExportRequest,
    Health, InclusionProof, Receipt, SearchResults, SegmentQuery, SegmentView, Supervision,
    SupervisionQuery,
};

/// What went wrong talking to the ledger.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The base URL is not an http(s) URL.
    #[error("bad ledger URL {url:?}: {why}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong.
        why: String,
    },
    /// The ledger could not be reached, or did not answer in time, or the
    /// TLS handshake failed.
    #[error("cannot reach the ledger at {url}: {}", error_chain(error))]
    Unreachable {
        /// The request URL.
        url: String,
        /// The transport error (its message is part of this one's).
        error: reqwest::Error,
    },
    /// A witness could not be reached, or did not answer in time
    /// ([`WitnessClient`]).
    #[error("cannot reach the witness at {url}: {}", error_chain(error))]
    WitnessUnreachable {
        /// The request URL.
        url: String,
        /// The transport error.
        error: reqwest::Error,
    },
    /// The ledger refused the request (4xx). Final only if
    /// [`ClientError::is_final_refusal`]; else a fix of the configuration
    /// or a lighter load may let the same request through.
    #[error("the ledger refused {url}: {status} {code}: {message}")]
    Rejected {
        /// The request URL.
        url: String,
        /// The status code.
        status: u16,
        /// The error code.
        code: String,
        /// The ledger's message.
        message: String,
    },
    /// The ledger failed (5xx): retry later.
    #[error("the ledger failed on {url}: {status} {code}: {message}")]
    Server {
        /// The request URL.
        url: String,
        /// The status code.
        status: u16,
        /// The error code.
        code: String,
        /// The ledger's message.
        message: String,
    },
    /// The answer is not what the API promises.
    #[error("unexpected answer from the ledger at {url}: {why}")]
    BadResponse {
        /// The request URL.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// The checkpoint does not open with the expected key and origin.
    #[error("the ledger's checkpoint does not verify: {0}")]
    Checkpoint(CheckpointError),
    /// Writing what the ledger sent to the caller's output failed.
    #[error("writing what the ledger sent: {0}")]
    Output(#[source] std::io::Error),
    /// A TLS file of the client (`ledger_ca`, `tls_cert`, `tls_key`) could
    /// not be read or used.
    #[error("{what} {path}: {why}")]
    TlsFile {
        /// The setting, e.g. `[dock] ledger_ca`.
        what: String,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// An error and its sources, `: `-separated on one line (reqwest's own
/// message leaves out why a request failed, e.g. the certificate refused).
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = e.source();
    }
    text
}

/// The TLS side of a client: the CA it trusts for the ledger and the
/// client certificate it presents (see the crate documentation).
#[derive(Clone, Default)]
pub struct ClientTls {
    /// CA certificates trusted instead of the public web roots.
    ca: Vec<reqwest::Certificate>,
    /// The client certificate and key.
    identity: Option<reqwest::Identity>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("ca_certificates", &self.ca.len())
            .field("client_certificate", &self.identity.is_some())
            .finish()
    }
}

impl ClientTls {
    /// Trust the CA certificates of the PEM file `path` (setting `what`,
    /// e.g. `[dock] ledger_ca`, for error messages) for the ledger,
    /// instead of the public web roots.
    pub fn trust_ca(mut self, what: &str, path: &Path) -> Result<ClientTls, ClientError> {
        let bad = |why: String| ClientError::TlsFile {
            what: what.to_owned(),
            path: path.to_owned(),
            why,
        };
        let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| bad(format!("not PEM certificates: {}", error_chain(&e))))?;
        if certs.is_empty() {
            return Err(bad("no PEM CERTIFICATE block in the file".into()));
        }
        self.ca.extend(certs);
        Ok(self)
    }

    /// Present the client certificate (chain) of the PEM file `cert` with
    /// the private key of the PEM file `key` (setting names `what_cert`,
    /// `what_key` for error messages).
    pub fn present(
        mut self,
        (what_cert, cert): (&str, &Path),
        (what_key, key): (&str, &Path),
    ) -> Result<ClientTls, ClientError> {
        let read = |what: &str, path: &Path| {
            std::fs::read(path).map_err(|e| ClientError::TlsFile {
                what: what.to_owned(),
                path: path.to_owned(),
                why: e.to_string(),
            })
        };
        let mut pem = read(what_cert, cert)?;
        if !pem.windows(16).any(|w| w == b"-----BEGIN CERTI") {
            return Err(ClientError::TlsFile {
                what: what_cert.to_owned(),
                path: cert.to_owned(),
                why: "no PEM CERTIFICATE block in the file".into(),
            });
        }
        pem.push(b'\n');
        pem.extend(read(what_key, key)?);
        let identity = reqwest::Identity::from_pem(&pem).map_err(|e| ClientError::TlsFile {
            what: what_key.to_owned(),
            path: key.to_owned(),
            why: format!(
                "not a PEM private key for {}: {}",
                cert.display(),
                error_chain(&e)
            ),
        })?;
        self.identity = Some(identity);
        Ok(self)
    }

    /// From the optional files of a configuration section: `ca` (named
    /// `SECTION ledger_ca`) and `cert` with `key` (`SECTION tls_cert`,
    /// `tls_key`; one without the other is an error).
    pub fn from_files(
        section: &str,
        ca: Option<&Path>,
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<ClientTls, ClientError> {
        let mut tls = ClientTls::default();
        if let Some(ca) = ca {
            tls = tls.trust_ca(&format!("{section} ledger_ca"), ca)?;
        }
        match (cert, key) {
            (Some(cert), Some(key)) => {
                tls = tls.present(
                    (&format!("{section} tls_cert"), cert),
                    (&format!("{section} tls_key"), key),
                )?;
            }
            (None, None) => {}
            (Some(path), None) | (None, Some(path)) => {
                return Err(ClientError::TlsFile {
                    what: format!("{section} tls_cert/tls_key"),
                    path: path.to_owned(),
                    why: "a client certificate needs both tls_cert and tls_key".into(),
                })
            }
        }
        Ok(tls)
    }
}

impl From<CheckpointError> for ClientError {
    fn from(e: CheckpointError) -> Self {
        ClientError::Checkpoint(e)
    }
}

/// Error codes by which the ledger refuses the request's own content,
/// whatever its status: the same bytes will never be accepted, by any
/// token or configuration (see [`ClientError::is_final_refusal`]).
pub const INVALID_REQUEST_CODES: &[&str] = &[
    "bad_envelope",
    "bad_signature",
    "wrong_payload_type",
    "bad_event",
    "bad_manifest",
    "action_forbidden",
    "invalid_entry",
    "segment_exists",
    "unknown_segment",
    // The manifest names an object key that another segment holds.
    "object_key_taken",
    "empty_body",
    "not_utf8",
    "bad_json",
];

/// Statuses that always refuse the request's own content: 400 Bad
/// Request, 409 Conflict, 422 Unprocessable Content.
const INVALID_REQUEST_STATUSES: &[u16] = &[400, 409, 422];

impl ClientError {
    /// Whether the same request may succeed later, unchanged: the ledger
    /// unreachable, failing (5xx) or answering oddly, or a refusal that is
    /// not final ([`ClientError::is_final_refusal`]) — 401, 403, 404 for a
    /// route, 408, 413, 429, which a fix of the configuration (a token, a
    /// registered key, a proxy's limit, a URL) or a lighter load lifts.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Unreachable { .. }
            | ClientError::WitnessUnreachable { .. }
            | ClientError::Server { .. }
            | ClientError::BadResponse { .. } => true,
            ClientError::Rejected { .. } => !self.is_final_refusal(),
            ClientError::BadUrl { .. }
            | ClientError::Checkpoint(_)
            | ClientError::Output(_)
            | ClientError::TlsFile { .. } => false,
        }
    }

    /// Whether the ledger refused the request for its own content, so that
    /// sending the same bytes again can never succeed: a 400, 409 or 422,
    /// or a refusal coded as one of [`INVALID_REQUEST_CODES`] (a 403
    /// `bad_signature` is about the envelope, a 403 `forbidden` about the
    /// token).
    pub fn is_final_refusal(&self) -> bool {
        match self {
            ClientError::Rejected { status, code, .. } => {
                INVALID_REQUEST_STATUSES.contains(status)
                    || INVALID_REQUEST_CODES.contains(&code.as_str())
            }
            _ => false,
        }
    }

    /// The error for a ledger's answer of `status` (4xx or 5xx) with its
    /// error `code` and `message`, from `url` (for an in-process ledger, a
    /// name saying so): [`ClientError::Server`] for a 5xx, else
    /// [`ClientError::Rejected`].
    pub fn answered(
        url: impl Into<String>,
        status: u16,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> ClientError {
        let (url, code, message) = (url.into(), code.into(), message.into());
        if status >= 500 {
            ClientError::Server {
                url,
                status,
                code,
                message,
            }
        } else {
            ClientError::Rejected {
                url,
                status,
                code,
                message,
            }
        }
    }

    /// The ledger's status and its own words, when it refused or failed.
    pub fn ledger_message(&self) -> Option<(u16, &str, &str)> {
        match self {
            ClientError::Rejected {
                status,
                code,
                message,
                ..
            }
            | ClientError::Server {
                status,
                code,
                message,
                ..
            } => Some((*status, code, message)),
            _ => None,
        }
    }
}

/// How a [`LedgerClient`] tries a request again after a failure that may
/// pass ([`LedgerClient::retrying`]). A request that may have reached the
/// ledger is tried again only when sending it twice changes nothing (a
/// GET); a POST is sent again only when it never left (the connection was
/// not made) or the ledger turned it away unread (429).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retries {
    /// Attempts in all, the first included (1: no retry).
    pub attempts: u32,
    /// The wait before the second attempt; it doubles after each.
    pub first_delay: Duration,
}

impl Retries {
    /// No retry: one attempt (the dock's default, whose journal retries).
    pub const NONE: Retries = Retries {
        attempts: 1,
        first_delay: Duration::ZERO,
    };

    /// A command line's: four attempts, 1 s, 2 s and 4 s apart, so that a
    /// ledger restarting or a proxy's brief failure does not end a command.
    pub const COMMAND: Retries = Retries {
        attempts: 4,
        first_delay: Duration::from_secs(1),
    };

    /// The wait after failed attempt `attempt` (from 1).
    pub fn delay(&self, attempt: u32) -> Duration {
        self.first_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
    }
}

/// A client of one ledger, with one bearer token.
#[derive(Clone)]
pub struct LedgerClient {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
    retries: Retries,
}

impl std::fmt::Debug for LedgerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerClient")
            .field("base", &self.base.as_str())
            .field("token", &self.token.as_ref().map(|_| "<secret>"))
            .finish()
    }
}

/// How long one request may take by default: a durable append takes
/// milliseconds; a minute covers a page of entries on a slow link.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long connecting may take before the ledger counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The status document of the docking station whose status endpoint is at
/// `base_url` (`http://127.0.0.1:8710`): `GET /status`, no token.
pub async fn dock_status(
    base_url: &str,
) -> Result<custos_core::wire::dock::DockStatus, ClientError> {
    LedgerClient::new(base_url, None)?
        .get_json("/status", &[])
        .await
}

impl LedgerClient {
    /// A client of the ledger at `base_url` (`http(s)://host:port`), with
    /// `token` if the routes used need one.
    pub fn new(base_url: &str, token: Option<&str>) -> Result<LedgerClient, ClientError> {
        Self::with_timeout(base_url, token, DEFAULT_TIMEOUT)
    }

    /// [`LedgerClient::new`] with another request timeout.
    pub fn with_timeout(
        base_url: &str,
        token: Option<&str>,
        timeout: Duration,
    ) -> Result<LedgerClient, ClientError> {
        Self::configured(base_url, token, timeout, &ClientTls::default())
    }

    /// [`LedgerClient::with_timeout`] with the site's TLS settings.
    pub fn configured(
        base_url: &str,
        token: Option<&str>,
        timeout: Duration,
        tls: &ClientTls,
    ) -> Result<LedgerClient, ClientError> {
        let bad = |why: &str| ClientError::BadUrl {
            url: base_url.to_owned(),
            why: why.to_owned(),
        };
        let base = Url::parse(base_url).map_err(|e| bad(&e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(bad("the scheme must be http or https"));
        }
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(timeout)
            .connect_timeout(CONNECT_TIMEOUT);
        if !tls.ca.is_empty() {
            // The site's private CA, and it alone.
            builder = builder.tls_built_in_root_certs(false);
            for cert in &tls.ca {
                builder = builder.add_root_certificate(cert.clone());
            }
        }
        if let Some(identity) = &tls.identity {
            builder = builder.identity(identity.clone());
        }
        let http = builder.build().map_err(|e| bad(&e.to_string()))?;
        Ok(LedgerClient {
            http,
            base,
            token: token.map(str::to_owned),
            retries: Retries::NONE,
        })
    }

    /// This client, trying each request again as `retries` says after a
    /// failure that may pass, with a `warn` log line for each retry that
    /// names the URL, the failure and the wait (never the token).
    pub fn retrying(mut self, retries: Retries) -> LedgerClient {
        self.retries = retries;
        self
    }

    /// The ledger's base URL.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    fn url(&self, path: &str) -> Result<Url, ClientError> {
        self.base.join(path).map_err(|e| ClientError::BadUrl {
            url: format!("{}{path}", self.base),
            why: e.to_string(),
        })
    }

    /// Send a request and return the response of a successful one, with its
    /// URL as shown in errors; the body is read only for an error answer.
    /// Tried again as [`LedgerClient::retrying`] says.
    async fn start(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
        timeout: Option<Duration>,
    ) -> Result<(reqwest::Response, String), ClientError> {
        let mut attempt = 1;
        loop {
            let result = self
                .start_once(method.clone(), path, query, body.clone(), timeout)
                .await;
            match result {
                Err(e) if attempt < self.retries.attempts && may_send_again(&method, &e) => {
                    let wait = self.retries.delay(attempt);
                    tracing::warn!(
                        "{e}; trying again in {} s (attempt {} of {})",
                        wait.as_secs_f32(),
                        attempt + 1,
                        self.retries.attempts
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// One attempt of [`LedgerClient::start`].
    async fn start_once(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
        timeout: Option<Duration>,
    ) -> Result<(reqwest::Response, String), ClientError> {
        let url = self.url(path)?;
        let shown = url.to_string();
        let mut req = self.http.request(method, url).query(query);
        if let Some(timeout) = timeout {
            req = req.timeout(timeout);
        }
        if let Some(token) = &self.token {
            req = req.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(body) = body {
            req = req.header(CONTENT_TYPE, "application/json").body(body);
        }
        let unreachable = |error| ClientError::Unreachable {
            url: shown.clone(),
            error,
        };
        let resp = req.send().await.map_err(unreachable)?;
        let status = resp.status();
        if status.is_success() {
            return Ok((resp, shown));
        }
        let bytes = resp.bytes().await.map_err(unreachable)?;
        let (code, message) = error_of(&bytes);
        Err(ClientError::answered(shown, status.as_u16(), code, message))
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, bytes::Bytes, String), ClientError> {
        let (resp, shown) = self.start(method, path, query, body, None).await?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|error| ClientError::Unreachable {
                url: shown.clone(),
                error,
            })?;
        Ok((status, bytes, shown))
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, ClientError> {
        let (_, bytes, url) = self.send(Method::GET, path, query, None).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::BadResponse {
            url,
            why: e.to_string(),
        })
    }

    /// `POST /v1/events`: append a dock's signed event.
    pub async fn append_envelope(&self, envelope: &Envelope) -> Result<Receipt, ClientError> {
        let (_, bytes, url) = self
            .send(Method::POST, "/v1/events", &[], Some(envelope.to_json()))
            .await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::BadResponse {
            url,
            why: e.to_string(),
        })
    }

    /// `GET /v1/checkpoint`: the signed checkpoint text, unverified.
    pub async fn checkpoint(&self) -> Result<String, ClientError> {
        let (_, bytes, url) = self.send(Method::GET, "/v1/checkpoint", &[], None).await?;
        String::from_utf8(bytes.to_vec()).map_err(|_| ClientError::BadResponse {
            url,
            why: "the checkpoint is not UTF-8".into(),
        })
    }

    /// The checkpoint, opened with the ledger's key (and origin, if given).
    pub async fn verified_checkpoint(
        &self,
        key: &VerifierKey,
        origin: Option<&str>,
    ) -> Result<(Checkpoint, String), ClientError> {
        let text = self.checkpoint().await?;
        let checkpoint = Checkpoint::open(text.as_bytes(), key, origin)?;
        Ok((checkpoint, text))
    }

    /// `GET /v1/entries`: entries from `start`, up to `end` (exclusive). The
    /// answer may stop early (tree size, page limit).
    pub async fn entries(
        &self,
        start: u64,
        end: Option<u64>,
    ) -> Result<Vec<EntryLine>, ClientError> {
        let mut query = vec![("start", start.to_string())];
        if let Some(end) = end {
            query.push(("end", end.to_string()));
        }
        let (_, bytes, url) = self.send(Method::GET, "/v1/entries", &query, None).await?;
        let mut lines = Vec::new();
        for (n, line) in bytes.split(|b| *b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            let parsed: EntryLine =
                serde_json::from_slice(line).map_err(|e| ClientError::BadResponse {
                    url: url.clone(),
                    why: format!("line {}: {e}", n + 1),
                })?;
            lines.push(parsed);
        }
        Ok(lines)
    }

    /// `GET /v1/proof/inclusion`.
    pub async fn inclusion_proof(
        &self,
        index: u64,
        size: u64,
    ) -> Result<InclusionProof, ClientError> {
        self.get_json(
            "/v1/proof/inclusion",
            &[("index", index.to_string()), ("size", size.to_string())],
        )
        .await
    }

    /// `GET /v1/proof/consistency`.
    pub async fn consistency_proof(
        &self,
        from: u64,
        to: u64,
    ) -> Result<ConsistencyProof, ClientError> {
        self.get_json(
            "/v1/proof/consistency",
            &[("from", from.to_string()), ("to", to.to_string())],
        )
        .await
    }

    /// `GET /v1/segments`: search the catalogue.
    pub async fn search(&self, query: &SegmentQuery) -> Result<Vec<SegmentView>, ClientError> {
        let mut q = Vec::new();
        for (name, value) in [
            ("officer", &query.officer),
            ("recorder", &query.recorder),
            ("from", &query.from),
            ("to", &query.to),
            ("case", &query.case),
        ] {
            if let Some(v) = value {
                q.push((name, v.clone()));
            }
        }
        if let Some(limit) = query.limit {
            q.push(("limit", limit.to_string()));
        }
        let results: SearchResults = self.get_json("/v1/segments", &q).await?;
        Ok(results.segments)
    }

    /// `GET /v1/coverage`: the coverage findings `query` asks for.
    pub async fn coverage(&self, query: &CoverageQuery) -> Result<CoverageList, ClientError> {
        let mut q = Vec::new();
        for (name, value) in [
            ("recorder", &query.recorder),
            ("officer", &query.officer),
            ("from", &query.from),
            ("to", &query.to),
        ] {
            if let Some(v) = value {
                q.push((name, v.clone()));
            }
        }
        if let Some(open) = query.open {
            q.push(("open", open.to_string()));
        }
        self.get_json("/v1/coverage", &q).await
    }

    /// `POST /v1/coverage/{seq}/explanation`: a supervisor's explanation of
    /// the finding recorded at entry `seq`.
    pub async fn explain_finding(&self, seq: u64, reason: &str) -> Result<Receipt, ClientError> {
        let body = serde_json::json!({ "reason": reason })
            .to_string()
            .into_bytes();
        let path = format!("/v1/coverage/{seq}/explanation");
        let (_, bytes, url) = self.send(Method::POST, &path, &[], Some(body)).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::BadResponse {
            url,
            why: e.to_string(),
        })
    }

    fn supervision_params(query: &SupervisionQuery) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        for (name, value) in [
            ("from", &query.from),
            ("to", &query.to),
            ("officer", &query.officer),
            ("recorder", &query.recorder),
        ] {
            if let Some(v) = value {
                q.push((name, v.clone()));
            }
        }
        q
    }

    /// `GET /v1/supervision`: per officer and recorder over a period.
    pub async fn supervision(&self, query: &SupervisionQuery) -> Result<Supervision, ClientError> {
        self.get_json("/v1/supervision", &Self::supervision_params(query))
            .await
    }

    /// `GET /v1/supervision?format=csv`: the same rows as the ledger's CSV.
    pub async fn supervision_csv(&self, query: &SupervisionQuery) -> Result<String, ClientError> {
        let mut q = Self::supervision_params(query);
        q.push(("format", "csv".to_owned()));
        let (_, bytes, url) = self.send(Method::GET, "/v1/supervision", &q, None).await?;
        String::from_utf8(bytes.to_vec()).map_err(|e| ClientError::BadResponse {
            url,
            why: e.to_string(),
        })
    }

    /// `GET /v1/segments/{id}`.
    pub async fn segment(&self, id: &str) -> Result<SegmentView, ClientError> {
        let path = format!("/v1/segments/{}", self.segment_path(id)?);
        self.get_json(&path, &[]).await
    }

    /// `GET /v1/segments/{id}/custody`.
    pub async fn custody(&self, id: &str) -> Result<Custody, ClientError> {
        let path = format!("/v1/segments/{}/custody", self.segment_path(id)?);
        self.get_json(&path, &[]).await
    }

    /// A segment id as one path segment; `.`, `..` and the empty id cannot
    /// be one (URL resolution would remove them).
    fn segment_path(&self, id: &str) -> Result<String, ClientError> {
        if matches!(id, "" | "." | "..") {
            return Err(ClientError::BadUrl {
                url: format!("{}v1/segments/{id}", self.base),
                why: format!("{id:?} cannot be sent as a segment id"),
            });
        }
        Ok(encode_segment(id))
    }

    /// `GET /healthz`; a 503 answer (the ledger refuses to serve or to
    /// append) is returned as its [`Health`] too.
    pub async fn health(&self) -> Result<Health, ClientError> {
        let url = self.url("/healthz")?;
        let shown = url.to_string();
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|error| ClientError::Unreachable {
                url: shown.clone(),
                error,
            })?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|error| ClientError::Unreachable {
                url: shown.clone(),
                error,
            })?;
        if status != StatusCode::OK && status != StatusCode::SERVICE_UNAVAILABLE {
            return Err(ClientError::BadResponse {
                url: shown,
                why: format!("/healthz answered {status}"),
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::BadResponse {
            url: shown,
            why: e.to_string(),
        })
    }
}

/// How long an export may stream: a bundle of many gigabytes over a slow
/// link takes hours, not the minute of [`DEFAULT_TIMEOUT`].
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

impl LedgerClient {
    /// `POST /v1/exports`: ask the ledger to export `request` and copy the
    /// streamed bundle into `out`, chunk by chunk; returns the bytes
    /// written. A transfer cut short is an error: `out` then holds a
    /// partial archive that must be discarded.
    pub async fn export<W: std::io::Write>(
        &self,
        request: &ExportRequest,
        out: &mut W,
    ) -> Result<u64, ClientError> {
        // INVARIANT: a struct of strings serialises.
        let body = serde_json::to_vec(request).expect("INVARIANT: serialisable");
        let (mut response, shown) = self
            .start(
                Method::POST,
                "/v1/exports",
                &[],
                Some(body),
                Some(EXPORT_TIMEOUT),
            )
            .await?;
        let mut written = 0u64;
        loop {
            let chunk = response
                .chunk()
                .await
                .map_err(|e| ClientError::BadResponse {
                    url: shown.clone(),
                    why: format!("the bundle stopped after {written} bytes: {e}"),
                })?;
            let Some(chunk) = chunk else { break };
            out.write_all(&chunk).map_err(ClientError::Output)?;
            written += chunk.len() as u64;
        }
        Ok(written)
    }
}

impl LedgerClient {
    /// `GET /v1/backup` (an admin's token): copy the ledger's streamed
    /// backup into `out`, chunk by chunk, calling `progress` with the bytes
    /// written so far; returns the bytes written and the backup's size
    /// (the `x-custos-backup-size` header). A transfer cut short is an
    /// error: `out` then holds a partial backup that must be discarded.
    pub async fn backup<W: std::io::Write>(
        &self,
        out: &mut W,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(u64, Option<u64>), ClientError> {
        let (mut response, shown) = self
            .start(Method::GET, "/v1/backup", &[], None, Some(EXPORT_TIMEOUT))
            .await?;
        let size = response
            .headers()
            .get("x-custos-backup-size")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let mut written = 0u64;
        loop {
            let chunk = response
                .chunk()
                .await
                .map_err(|e| ClientError::BadResponse {
                    url: shown.clone(),
                    why: format!("the backup stopped after {written} bytes: {e}"),
                })?;
            let Some(chunk) = chunk else { break };
            out.write_all(&chunk).map_err(ClientError::Output)?;
            written += chunk.len() as u64;
            progress(written);
        }
        Ok((written, size))
    }
}

/// The code and message of an error answer's body (`{"error","message"}`),
/// or `unknown` and the start of the body as text.
fn error_of(bytes: &[u8]) -> (String, String) {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(e) => (e.error, e.message),
        Err(_) => (
            "unknown".to_owned(),
            String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned(),
        ),
    }
}

/// Percent-encode a segment id for one path segment.
fn encode_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What a witness answered a C2SP tlog-witness `add-checkpoint` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WitnessAnswer {
    /// 200: its cosignature lines (unverified: the caller checks them
    /// under the witness's key).
    Cosigned(String),
    /// 409 with the size it last cosigned: the request's old size was not
    /// its own (ask again from that size), or it has another tree there.
    Conflict(u64),
    /// Any other answer: its status and what it said.
    Refused {
        /// The HTTP status.
        status: u16,
        /// The body, as text.
        why: String,
    },
}

/// A client of C2SP tlog-witnesses, for the ledger's submitter: one HTTP
/// connection pool, each request within one timeout.
#[derive(Debug, Clone)]
pub struct WitnessClient {
    http: reqwest::Client,
}

impl WitnessClient {
    /// A client whose requests (connection included) end after `timeout`.
    pub fn new(timeout: Duration) -> Result<WitnessClient, ClientError> {
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| ClientError::BadUrl {
                url: "(the witnesses' client)".into(),
                why: e.to_string(),
            })?;
        Ok(WitnessClient { http })
    }

    /// `POST <base_url>/add-checkpoint` with `request`: the witness's
    /// answer, or why none came.
    pub async fn add_checkpoint(
        &self,
        base_url: &str,
        request: &custos_core::witness::AddCheckpoint,
    ) -> Result<WitnessAnswer, ClientError> {
        let url = format!("{}/add-checkpoint", base_url.trim_end_matches('/'));
        let unreachable = |error| ClientError::WitnessUnreachable {
            url: url.clone(),
            error,
        };
        let response = self
            .http
            .post(&url)
            .body(request.to_bytes())
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable)?;
        if status == StatusCode::CONFLICT {
            return match custos_core::witness::parse_size_body(&bytes) {
                Some(size) => Ok(WitnessAnswer::Conflict(size)),
                None => Err(ClientError::BadResponse {
                    url,
                    why: "409 without the witness's size".into(),
                }),
            };
        }
        if !status.is_success() {
            return Ok(WitnessAnswer::Refused {
                status: status.as_u16(),
                why: String::from_utf8_lossy(&bytes).trim().to_owned(),
            });
        }
        // The lines exactly as sent (each ends with a newline).
        String::from_utf8(bytes.to_vec())
            .map(WitnessAnswer::Cosigned)
            .map_err(|_| ClientError::BadResponse {
                url,
                why: "the cosignature lines are not UTF-8".into(),
            })
    }
}

/// Whether a request that failed with `error` may be sent again: the
/// failure may pass (the ledger unreachable, failing, overloaded or slow:
/// not a refusal a retry cannot lift in a command's few seconds), and a
/// second copy cannot do what the first did — a GET, or a request that
/// never reached the ledger (no connection) or that it turned away unread
/// (429).
fn may_send_again(method: &Method, error: &ClientError) -> bool {
    let passing = match error {
        ClientError::Unreachable { .. } | ClientError::Server { .. } => true,
        ClientError::Rejected { status, .. } => matches!(status, 408 | 429),
        _ => false,
    };
    if let ClientError::Unreachable { error, .. } = error {
        if refused_by_tls(error) {
            // A certificate the site's CA did not issue, or expired: no
            // retry changes it.
            return false;
        }
    }
    let unread = match error {
        ClientError::Unreachable { error, .. } => error.is_connect(),
        ClientError::Rejected { status, .. } => *status == 429,
        _ => false,
    };
    passing && (*method == Method::GET || *method == Method::HEAD || unread)
}

/// Whether the TLS handshake refused the ledger's certificate (or ours):
/// rustls's error somewhere in `error`'s chain, also inside (nested) I/O
/// errors, which do not list what they wrap as their source.
fn refused_by_tls(error: &reqwest::Error) -> bool {
    fn is_rustls(e: &(dyn std::error::Error + 'static)) -> bool {
        if e.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        e.downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .is_some_and(|inner| is_rustls(inner))
    }
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = next {
        if is_rustls(e) {
            return true;
        }
        next = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_ids_are_escaped() {
        assert_eq!(encode_segment("rec-1_a.mp4"), "rec-1_a.mp4");
        assert_eq!(encode_segment("a/b c"), "a%2Fb%20c");
        assert_eq!(encode_segment("../x"), "..%2Fx");
    }

    fn rejected(status: u16, code: &str) -> ClientError {
        ClientError::Rejected {
            url: "http://l/v1/events".into(),
            status,
            code: code.into(),
            message: "m".into(),
        }
    }

    #[test]
    fn only_refusals_of_the_request_itself_are_final() {
        for (status, code) in [
            (401, "invalid_token"),
            (401, "revoked_token"),
            (403, "forbidden"),
            (403, "unknown_key"),
            (403, "no_registered_key"),
            (404, "not_found"),
            (408, "unknown"),
            (413, "body_too_large"),
            (413, "unknown"),
            (429, "unknown"),
        ] {
            let e = rejected(status, code);
            assert!(e.is_retryable(), "{status} {code}");
            assert!(!e.is_final_refusal(), "{status} {code}");
        }
        for (status, code) in [
            (400, "bad_event"),
            (400, "anything"),
            (403, "bad_signature"),
            (403, "action_forbidden"),
            (404, "unknown_segment"),
            (409, "segment_exists"),
            (422, "unknown"),
        ] {
            let e = rejected(status, code);
            assert!(e.is_final_refusal(), "{status} {code}");
            assert!(!e.is_retryable(), "{status} {code}");
        }
        let server = ClientError::Server {
            url: "u".into(),
            status: 503,
            code: "storage_failed".into(),
            message: "m".into(),
        };
        assert!(server.is_retryable() && !server.is_final_refusal());
    }

    #[test]
    fn urls_are_checked() {
        assert!(LedgerClient::new("ftp://x", None).is_err());
        assert!(LedgerClient::new("not a url", None).is_err());
        assert!(LedgerClient::new("http://127.0.0.1:8700", Some("t")).is_ok());
        let shown = format!(
            "{:?}",
            LedgerClient::new("http://h", Some("custos_secret")).unwrap()
        );
        assert!(!shown.contains("custos_secret"));
    }

    /// A ledger stand-in on loopback that answers its `n`th connection with
    /// `answers[n]` (the raw status line and body), then closes; how many
    /// connections it took.
    fn scripted(
        answers: Vec<(&'static str, &'static str)>,
    ) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::{Read as _, Write as _};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let taken = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = taken.clone();
        std::thread::spawn(move || {
            for (status, body) in answers {
                let Ok((mut conn, _)) = listener.accept() else {
                    return;
                };
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                let reply = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(reply.as_bytes());
            }
        });
        (url, taken)
    }

    const QUICK: Retries = Retries {
        attempts: 3,
        first_delay: Duration::from_millis(50),
    };
    const FAILING: (&str, &str) = (
        "503 Service Unavailable",
        r#"{"error":"store_unreachable","message":"the store did not answer"}"#,
    );

    #[tokio::test]
    async fn a_read_is_tried_again_after_a_failure_that_may_pass() {
        let (url, taken) = scripted(vec![FAILING, FAILING, ("200 OK", "origin\n1\nroot\n")]);
        let client = LedgerClient::new(&url, None).unwrap().retrying(QUICK);
        assert_eq!(client.checkpoint().await.unwrap(), "origin\n1\nroot\n");
        assert_eq!(taken.load(std::sync::atomic::Ordering::SeqCst), 3);

        // Without retries (the dock's default), the first failure is the
        // answer.
        let (url, taken) = scripted(vec![FAILING, ("200 OK", "x")]);
        let err = LedgerClient::new(&url, None)
            .unwrap()
            .checkpoint()
            .await
            .unwrap_err();
        assert!(
            matches!(err, ClientError::Server { status: 503, .. }),
            "{err}"
        );
        assert_eq!(taken.load(std::sync::atomic::Ordering::SeqCst), 1);

        // Attempts run out: the last failure is the answer.
        let (url, taken) = scripted(vec![FAILING, FAILING, FAILING, ("200 OK", "x")]);
        let client = LedgerClient::new(&url, None).unwrap().retrying(QUICK);
        assert!(client.checkpoint().await.is_err());
        assert_eq!(taken.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_write_the_ledger_may_have_read_is_never_sent_twice() {
        let (url, taken) = scripted(vec![FAILING, ("200 OK", "{}")]);
        let client = LedgerClient::new(&url, Some("t")).unwrap().retrying(QUICK);
        let err = client.explain_finding(7, "battery").await.unwrap_err();
        assert!(
            matches!(err, ClientError::Server { status: 503, .. }),
            "{err}"
        );
        assert_eq!(taken.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn which_failures_are_sent_again() {
        let server = ClientError::answered("u", 502, "bad_gateway", "m");
        assert!(may_send_again(&Method::GET, &server));
        assert!(!may_send_again(&Method::POST, &server));
        let busy = rejected(429, "too_many_requests");
        assert!(may_send_again(&Method::GET, &busy));
        assert!(may_send_again(&Method::POST, &busy));
        for status in [400, 401, 403, 404, 409, 422] {
            assert!(
                !may_send_again(&Method::GET, &rejected(status, "x")),
                "{status}"
            );
        }
        assert_eq!(Retries::COMMAND.delay(1), Duration::from_secs(1));
        assert_eq!(Retries::COMMAND.delay(3), Duration::from_secs(4));
        assert_eq!(Retries::NONE.attempts, 1);
    }
}
