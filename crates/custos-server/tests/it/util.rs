//! Small helpers shared by the ledger's integration tests.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use custos_core::dsse::{Envelope, EVENT_PAYLOAD_TYPE};
use custos_core::entry::{Actor, ActorKind};
use custos_ledger::wire::ErrorBody;
use custos_ledger::{Ledger, LedgerOptions, Role};
use custos_server::{app, AppState};
use serde_json::Value;
use tempfile::TempDir;
use tower::ServiceExt as _;

pub(crate) use custos_testsupport::fixtures::{
    dock_key, docked_event, event, event_by, ingest_event, ingest_event_with, ledger_key, manifest,
    now, verified_event, wiped_event,
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
    pub app: Router,
}

/// A response: status, content type, body.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub content_type: String,
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
}

impl TestLedger {
    pub(crate) async fn new() -> TestLedger {
        Self::with_options(|_| {}).await
    }

    pub(crate) async fn with_options(tweak: impl FnOnce(&mut LedgerOptions)) -> TestLedger {
        let dir = tempfile::tempdir().unwrap();
        let mut options = LedgerOptions::new(dir.path().join("ledger"), ORIGIN);
        tweak(&mut options);
        let ledger = Ledger::open(options, ledger_key()).unwrap();
        let mut tokens = HashMap::new();
        for role in Role::ALL {
            let key = (role == Role::Dock).then(|| dock_key().verifier_key());
            let name = match role {
                Role::Dock => "dock-01".to_owned(),
                other => format!("{other}-1"),
            };
            let token = ledger
                .create_token(admin_actor(), role, &name, key)
                .await
                .unwrap();
            tokens.insert(role, token.token);
        }
        let app = app(AppState::new(ledger.clone()));
        TestLedger {
            _dir: dir,
            ledger,
            tokens,
            app,
        }
    }

    pub(crate) fn token(&self, role: Role) -> &str {
        &self.tokens[&role]
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
        let resp = self
            .app
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let content_type = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        Answer {
            status,
            content_type,
            body,
        }
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

/// An envelope of another payload type signed by the dock key.
pub(crate) fn envelope_of_type(payload_type: &str, payload: Vec<u8>) -> Envelope {
    Envelope::sign(payload_type, payload, &[&dock_key()]).unwrap()
}

pub(crate) const EVENT_TYPE: &str = EVENT_PAYLOAD_TYPE;
