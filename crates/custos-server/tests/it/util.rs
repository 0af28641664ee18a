//! The one harness of the ledger's integration tests: a ledger in a temp
//! dir with a token per role (and more by name), its router, requests sent
//! through it without a socket, and what came back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use custos_core::dsse::{Envelope, EVENT_PAYLOAD_TYPE};
use custos_core::entry::{Actor, ActorKind};
use custos_core::manifest::Timestamp;
use custos_ledger::clock::Clock;
use custos_ledger::governance::Governance;
use custos_ledger::wire::ErrorBody;
use custos_ledger::{Ledger, LedgerOptions, Role};
use custos_server::{app, AppState};
use serde_json::Value;
use tempfile::TempDir;
use tower::ServiceExt as _;

pub(crate) use custos_testsupport::fixtures::{
    dock_key, docked_event, event, event_by, ingest_event, ingest_event_with, ledger_key, manifest,
    now, stored_manifest, verified_event, wiped_event,
};

pub(crate) const ORIGIN: &str = "test.custos.local/ledger";

pub(crate) fn admin_actor() -> Actor {
    Actor {
        kind: ActorKind::Admin,
        id: "test-setup".into(),
    }
}

/// A ledger in a temp dir with one token per role (the dock's with its key).
pub(crate) struct TestLedger {
    /// Kept so the directory lives as long as the ledger.
    pub _dir: TempDir,
    pub ledger: Ledger,
    pub tokens: HashMap<Role, String>,
    /// Every token by its name: `dock-01` and `<role>-1` for the tokens
    /// above, and those [`LedgerSetup::named`] asked for.
    pub named: HashMap<String, String>,
    pub app: Router,
}

/// What a test ledger differs in.
#[derive(Default)]
pub(crate) struct LedgerSetup {
    /// The clock entries, approvals and the sweeper read (the system's
    /// when absent).
    pub clock: Option<Arc<dyn Clock>>,
    /// The governance rules and footage store of the API (none when absent).
    pub governance: Option<Governance>,
    /// More tokens, by name and role (a dock's carries the dock key).
    pub named: Vec<(&'static str, Role)>,
}

/// A response: status, headers, body.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as the API's error shape (panics if it is not).
    pub(crate) fn error(&self) -> ErrorBody {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not the error shape ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }

    /// The Content-Type header ("" when absent).
    pub(crate) fn content_type(&self) -> &str {
        self.header(header::CONTENT_TYPE.as_str())
    }

    /// A header's value ("" when absent).
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    /// Every Set-Cookie header.
    pub(crate) fn cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    /// The Set-Cookie header of cookie `name`.
    pub(crate) fn cookie(&self, name: &str) -> Option<String> {
        self.cookies()
            .into_iter()
            .find(|c| c.starts_with(&format!("{name}=")))
    }

    /// The Location header ("" when absent).
    pub(crate) fn location(&self) -> &str {
        self.header(header::LOCATION.as_str())
    }
}

impl TestLedger {
    pub(crate) async fn new() -> TestLedger {
        Self::with_options(|_| {}).await
    }

    pub(crate) async fn with_options(tweak: impl FnOnce(&mut LedgerOptions)) -> TestLedger {
        Self::open(LedgerSetup::default(), tweak).await
    }

    /// A ledger as `setup` says, its options changed by `tweak`.
    pub(crate) async fn open(
        setup: LedgerSetup,
        tweak: impl FnOnce(&mut LedgerOptions),
    ) -> TestLedger {
        let dir = tempfile::tempdir().unwrap();
        let mut options = LedgerOptions::new(dir.path().join("ledger"), ORIGIN);
        if let Some(clock) = setup.clock {
            options.clock = clock;
        }
        tweak(&mut options);
        let ledger = Ledger::open(options, ledger_key()).unwrap();
        let mut tokens = HashMap::new();
        let mut named = HashMap::new();
        for role in Role::ALL {
            let name = match role {
                Role::Dock => "dock-01".to_owned(),
                other => format!("{other}-1"),
            };
            let token = new_token(&ledger, role, &name).await;
            tokens.insert(role, token.clone());
            named.insert(name, token);
        }
        for (name, role) in setup.named {
            named.insert(name.to_owned(), new_token(&ledger, role, name).await);
        }
        let mut state = AppState::new(ledger.clone());
        if let Some(governance) = setup.governance {
            state = state.with_governance(governance);
        }
        TestLedger {
            _dir: dir,
            app: app(state),
            ledger,
            tokens,
            named,
        }
    }

    pub(crate) fn token(&self, role: Role) -> &str {
        &self.tokens[&role]
    }

    /// The token named `name`.
    pub(crate) fn token_named(&self, name: &str) -> &str {
        &self.named[name]
    }

    /// Send a request through the router (no socket).
    pub(crate) async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let body = match body {
            Some((ct, bytes)) => {
                req = req.header("content-type", ct);
                Body::from(bytes)
            }
            None => Body::empty(),
        };
        self.send(req.body(body).unwrap()).await
    }

    /// Send `request` through the router (no socket).
    pub(crate) async fn send(&self, request: Request<Body>) -> Answer {
        let resp = self.app.clone().oneshot(request).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Every published entry of `action`, as JSON.
    pub(crate) fn entries_of(&self, action: &str) -> Vec<Value> {
        let size = self.size();
        let mut out = Vec::new();
        let mut start = 0;
        while start < size {
            let lines = self.ledger.entries(start, None).unwrap();
            start += lines.len() as u64;
            for line in lines {
                let v: Value = serde_json::from_str(line.entry.get()).unwrap();
                if v["action"] == action {
                    out.push(v);
                }
            }
        }
        out
    }

    pub(crate) async fn get(&self, uri: &str, role: Option<Role>) -> Answer {
        let token = role.map(|r| self.token(r).to_owned());
        self.call(Method::GET, uri, token.as_deref(), None).await
    }

    /// POST an envelope to /v1/events with the dock's token.
    pub(crate) async fn post_event(&self, envelope: &Envelope) -> Answer {
        self.call(
            Method::POST,
            "/v1/events",
            Some(self.token(Role::Dock)),
            Some(("application/json", envelope.to_json())),
        )
        .await
    }

    pub(crate) fn size(&self) -> u64 {
        self.ledger.published().size
    }
}

/// A new token for `name` in `role` (a dock's registers the dock key).
pub(crate) async fn new_token(ledger: &Ledger, role: Role, name: &str) -> String {
    let key = (role == Role::Dock).then(|| dock_key().verifier_key());
    ledger
        .create_token(admin_actor(), role, name, key)
        .await
        .unwrap()
        .token
}

/// An envelope of another payload type signed by the dock key.
pub(crate) fn envelope_of_type(payload_type: &str, payload: Vec<u8>) -> Envelope {
    Envelope::sign(payload_type, payload, &[&dock_key()]).unwrap()
}

pub(crate) const EVENT_TYPE: &str = EVENT_PAYLOAD_TYPE;

/// A ledger clock the test sets: entry times, approvals' ends, tokens'
/// expiry and the sweeper's "now" all read it.
#[derive(Debug, Clone)]
pub(crate) struct TestClock(Arc<Mutex<Timestamp>>);

impl TestClock {
    /// A clock at [`now`].
    pub(crate) fn new() -> TestClock {
        TestClock(Arc::new(Mutex::new(now())))
    }

    /// A clock at the RFC 3339 time `text`.
    pub(crate) fn at(text: &str) -> TestClock {
        TestClock(Arc::new(Mutex::new(Timestamp::parse(text).unwrap())))
    }

    /// Set it to the RFC 3339 time `text`.
    pub(crate) fn set(&self, text: &str) {
        *self.0.lock().unwrap() = Timestamp::parse(text).unwrap();
    }

    /// Move it on by `seconds`.
    pub(crate) fn advance(&self, seconds: i64) {
        let mut t = self.0.lock().unwrap();
        *t = t.checked_add(time::Duration::seconds(seconds)).unwrap();
    }
}

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap()
    }
}
