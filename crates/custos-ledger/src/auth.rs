//! Roles, bearer tokens, registered dock keys, and the role matrix.
//!
//! # Tokens
//!
//! A token reads `custos_<id>_<secret>`: `id` is 16 hex digits that name the
//! token (safe to log), `secret` is 32 random bytes in URL-safe base64. The
//! ledger stores, under the id, the token's role and name and the SHA-256 of
//! the secret, never the secret itself ([`TokenRecord`]). A presented token
//! is found by its id and its secret's hash compared in constant time, so
//! neither the store nor response timing tells anything about the secret;
//! the secret has 256 bits of entropy, so a fast unsalted hash is the right
//! tool (there is nothing to brute-force).
//!
//! A dock's token can carry its verifier key (`custos token create --role
//! dock --key NAME.pub`); the dock's events must be signed by that key and no
//! other. Creating a token is itself a custody entry (`token.created`), whose
//! state rows are written in the same batch as the entry.
//!
//! # Lifecycle
//!
//! A token may carry an end (`custos token create --expires 90d`): from
//! then on it answers 401 `expired_token`. Revoking one (`custos token
//! revoke`, `POST /v1/tokens/{name}/revoke`) is a `token.revoked` entry
//! whose row change is written in the same batch; the writer drops the
//! token from [`TokenCache`] before the revocation is acknowledged, so the
//! very next request with it answers 401 `revoked_token`, and the console
//! ends its sessions at their next request. A revoked dock token's key stays
//! in [`DOCK_KEYS`]: manifests and events it signed before still verify.
//! A dock's key is replaced by creating a new token with the new `--key`
//! and revoking the old token.
//!
//! Each row records the entry that created it (`created_seq`) and, once
//! revoked, the one that revoked it (`revoked_seq`); [`crate::check`]
//! checks rows against those entries, so a row changed behind the ledger's
//! back is found like a changed entry.
//!
//! # The role matrix
//!
//! [`ROUTES`] says, for every route of the API, which roles may call it;
//! the HTTP layer refuses anything else before a handler runs, and refuses
//! a route missing from the table (fail closed). [`DOCK_ACTIONS`] says which
//! actions a dock may sign. Tests call every route with every role.
//!
//! This module must never log or store a token's secret, nor compare one in
//! variable time.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use custos_core::entry::{actions, Actor, ActorKind};
use custos_core::keys::VerifierKey;
use custos_core::manifest::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::error::StoreError;
use crate::store::Store;

/// Table: token id → [`TokenRecord`].
pub const TOKENS: &str = "tokens";
/// Table: dock key id (`name+hash`) → [`DockKeyRecord`].
pub const DOCK_KEYS: &str = "dock_keys";

/// What a bearer token lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A docking station: appends signed events.
    Dock,
    /// An officer.
    Officer,
    /// A legal reviewer: searches, requests access, views, exports.
    Reviewer,
    /// A supervisor: cases, approvals, holds.
    Supervisor,
    /// An auditor: reads the log, the catalogue and the custody record.
    Auditor,
    /// An administrator: every use of an admin token is itself an entry.
    Admin,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 6] = [
        Role::Dock,
        Role::Officer,
        Role::Reviewer,
        Role::Supervisor,
        Role::Auditor,
        Role::Admin,
    ];

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Dock => "dock",
            Role::Officer => "officer",
            Role::Reviewer => "reviewer",
            Role::Supervisor => "supervisor",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }

    /// The actor kind of entries this role writes.
    pub fn actor_kind(self) -> ActorKind {
        match self {
            Role::Dock => ActorKind::Dock,
            Role::Officer => ActorKind::Officer,
            Role::Reviewer => ActorKind::Reviewer,
            Role::Supervisor => ActorKind::Supervisor,
            Role::Auditor => ActorKind::Auditor,
            Role::Admin => ActorKind::Admin,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not a role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}: expected dock, officer, reviewer, supervisor, auditor or admin")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

// ---------------------------------------------------------------------------
// The role matrix

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a token (a token, if sent, must still be valid).
    Public,
    /// A token of one of these roles.
    Roles(&'static [Role]),
}

impl Access {
    /// Whether `role` may call the route.
    pub fn allows(self, role: Role) -> bool {
        match self {
            Access::Public => true,
            Access::Roles(roles) => roles.contains(&role),
        }
    }
}

/// One row of the role matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteAccess {
    /// The HTTP method, upper case.
    pub method: &'static str,
    /// The route template, as axum and OpenAPI write it.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
}

use Role::{Admin, Auditor, Dock, Reviewer, Supervisor};

/// Roles that read the log's entries, the catalogue and custody records.
const READERS: &[Role] = &[Reviewer, Supervisor, Auditor, Admin];

/// The role matrix: every route of the API and who may call it.
///
/// The log's checkpoint and proofs are public: they are hashes, and anyone
/// must be able to check them. Entries name officers, recorders and cases,
/// so reading them takes a token. Footage, cases, holds, access requests and
/// exports follow the rules of the retrieval issue (the approval policy of
/// `[access]` applies on top of this table).
pub const ROUTES: &[RouteAccess] = &[
    RouteAccess {
        method: "POST",
        path: "/v1/events",
        access: Access::Roles(&[Dock]),
    },
    RouteAccess {
        method: "GET",
        path: "/v1/checkpoint",
        access: Access::Public,
    },
    RouteAccess {
        method: "GET",
        path: "/v1/entries",
        access: Access::Roles(READERS),
    },
    RouteAccess {
        method: "GET",
        path: "/v1/proof/inclusion",
        access: Access::Public,
    },
    RouteAccess {
        method: "GET",
        path: "/v1/proof/consistency",
        access: Access::Public,
    },
    RouteAccess {
        method: "GET",
        path: "/v1/segments",
        access: Access::Roles(READERS),
    },
    RouteAccess {
        method: "GET",
        path: "/v1/segments/{id}",
        access: Access::Roles(READERS),
    },
    RouteAccess {
        method: "GET",
        path: "/v1/segments/{id}/content",
        access: Access::Roles(&[Reviewer, Supervisor]),
    },
    RouteAccess {
        method: "GET",
        path: "/v1/segments/{id}/custody",
        access: Access::Roles(READERS),
    },
    RouteAccess {
        method: "POST",
        path: "/v1/cases",
        access: Access::Roles(&[Supervisor]),
    },
    RouteAccess {
        method: "POST",
        path: "/v1/cases/{id}/segments",
        access: Access::Roles(&[Supervisor]),
    },
    RouteAccess {
        method: "POST",
        path: "/v1/segments/{id}/hold",
        access: Access::Roles(&[Supervisor]),
    },
    RouteAccess {
        method: "DELETE",
        path: "/v1/segments/{id}/hold",
        access: Access::Roles(&[Supervisor]),
    },
    RouteAccess {
        method: "POST",
        path: "/v1/access-requests",
        access: Access::Roles(&[Reviewer, Supervisor]),
    },
    RouteAccess {
        method: "POST",
        path: "/v1/access-requests/{id}/approve",
        access: Access::Roles(&[Supervisor]),
    },
    RouteAccess {
        method: "POST",
        path: "/v1/access-requests/{id}/deny",
        access: Access::Roles(&[Supervisor]),
    },
    RouteAccess {
        method: "POST",
        path: "/v1/cases/{id}/close",
        access: Access::Roles(&[Supervisor]),
    },
    RouteAccess {
        method: "POST",
        path: "/v1/exports",
        access: Access::Roles(&[Reviewer, Supervisor]),
    },
    RouteAccess {
        method: "GET",
        path: "/v1/coverage",
        access: Access::Roles(READERS),
    },
    RouteAccess {
        method: "POST",
        path: "/v1/coverage/{seq}/explanation",
        access: Access::Roles(&[Supervisor]),
    },
    // Per officer and recorder: how each officer records. Supervisors
    // oversee it, auditors check that nothing was lost; reviewers work on
    // cases and get no view of officers' work, admins run the system.
    RouteAccess {
        method: "GET",
        path: "/v1/supervision",
        access: Access::Roles(&[Supervisor, Auditor]),
    },
    RouteAccess {
        method: "GET",
        path: "/v1/tokens",
        access: Access::Roles(&[Admin]),
    },
    RouteAccess {
        method: "POST",
        path: "/v1/tokens/{name}/revoke",
        access: Access::Roles(&[Admin]),
    },
    // A backup holds every token's hash and every dock key: admin only.
    RouteAccess {
        method: "GET",
        path: "/v1/backup",
        access: Access::Roles(&[Admin]),
    },
    RouteAccess {
        method: "GET",
        path: "/v1/openapi.json",
        access: Access::Public,
    },
    RouteAccess {
        method: "GET",
        path: "/healthz",
        access: Access::Public,
    },
    RouteAccess {
        method: "GET",
        path: "/livez",
        access: Access::Public,
    },
    RouteAccess {
        method: "GET",
        path: "/readyz",
        access: Access::Public,
    },
    RouteAccess {
        method: "GET",
        path: "/metrics",
        access: Access::Public,
    },
];

/// The matrix row for a route template and method.
pub fn route_access(method: &str, path: &str) -> Option<&'static RouteAccess> {
    ROUTES.iter().find(|r| r.method == method && r.path == path)
}

/// The actions a dock may sign, besides any `dock.*` action (its own
/// station events).
pub const DOCK_ACTIONS: &[&str] = &[
    actions::RECORDER_DOCKED,
    actions::RECORDER_UNDOCKED,
    actions::RECORDER_CLOCK_SET,
    actions::SEGMENT_INGESTED,
    actions::SEGMENT_VERIFIED,
    actions::SEGMENT_WIPED,
];

/// Whether a dock may sign `action`.
pub fn dock_may(action: &str) -> bool {
    DOCK_ACTIONS.contains(&action) || action.starts_with("dock.")
}

// ---------------------------------------------------------------------------
// Tokens

/// How a token's text starts.
pub const TOKEN_PREFIX: &str = "custos_";

/// A stored token (the secret's hash, never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The public id (16 hex digits).
    pub id: String,
    /// Its role.
    pub role: Role,
    /// The holder's name (the dock id for a dock); actor id of its entries.
    pub name: String,
    /// Hex SHA-256 of the secret part.
    pub secret_sha256: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// A dock's registered verifier key (C2SP text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// A dock's further keys (other suites), registered with the same token.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_keys: Vec<String>,
    /// Revoked tokens are refused.
    #[serde(default)]
    pub revoked: bool,
    /// From this instant on the token is refused (none: no end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// The `token.created` entry of this row (absent in rows written
    /// before rows recorded it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_seq: Option<u64>,
    /// The `token.revoked` entry, once revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_seq: Option<u64>,
}

impl TokenRecord {
    /// Whether the token is neither revoked nor expired at `now`.
    pub fn in_force(&self, now: Timestamp) -> bool {
        !self.revoked && self.expires_at.is_none_or(|end| now < end)
    }

    /// What `token.created` records of the secret's hash: a SHA-256 of it
    /// (hex), so that the start-up check can tie the row's hash to the log
    /// without the log holding the stored value itself.
    pub fn secret_check(&self) -> String {
        secret_check(&self.secret_sha256)
    }
}

/// See [`TokenRecord::secret_check`].
pub fn secret_check(secret_sha256_hex: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"custos token row v1\n");
    h.update(secret_sha256_hex.as_bytes());
    hex::encode(h.finalize())
}

/// A token as `GET /v1/tokens` and `custos token list` show it: never the
/// secret nor its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenInfo {
    /// The public id (16 hex digits).
    pub id: String,
    /// Its role.
    #[schema(value_type = String)]
    pub role: Role,
    /// The holder's name.
    pub name: String,
    /// When it was created.
    #[schema(value_type = String)]
    pub created_at: Timestamp,
    /// When it stops working, if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub expires_at: Option<Timestamp>,
    /// Whether it was revoked.
    pub revoked: bool,
    /// `active`, `expired` or `revoked`.
    pub state: String,
    /// A dock's registered key id (`name+hash`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The key ids of a dock's further keys (other suites), registered
    /// with the same token.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_key_ids: Vec<String>,
}

impl TokenInfo {
    /// What may be shown of `record` at `now`.
    pub fn of(record: &TokenRecord, now: Timestamp) -> TokenInfo {
        let state = if record.revoked {
            "revoked"
        } else if record.in_force(now) {
            "active"
        } else {
            "expired"
        };
        TokenInfo {
            id: record.id.clone(),
            role: record.role,
            name: record.name.clone(),
            created_at: record.created_at,
            expires_at: record.expires_at,
            revoked: record.revoked,
            state: state.to_owned(),
            key_id: record.key.as_deref().map(key_id_of),
            more_key_ids: record.more_keys.iter().map(|k| key_id_of(k)).collect(),
        }
    }
}

/// The `name+hash` of a verifier key's C2SP text (`name+hash+key`).
fn key_id_of(text: &str) -> String {
    text.split('+').take(2).collect::<Vec<_>>().join("+")
}

/// Every stored token, by id.
pub fn list_tokens(store: &Store) -> Result<Vec<TokenRecord>, StoreError> {
    let mut out = Vec::new();
    for row in store.table_scan(TOKENS, b"") {
        let (key, value) = row?;
        let record: TokenRecord =
            serde_json::from_slice(&value).map_err(|e| StoreError::Malformed {
                what: format!("token {}", String::from_utf8_lossy(&key)),
                why: e.to_string(),
            })?;
        out.push(record);
    }
    Ok(out)
}

/// A registered dock key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockKeyRecord {
    /// The dock (token name) it belongs to.
    pub dock: String,
    /// The verifier key (C2SP text).
    pub key: String,
    /// The token it was registered with.
    pub token_id: String,
}

/// A freshly generated token: the text to hand out once, and its record.
#[derive(Clone)]
pub struct NewToken {
    /// The whole token text. Shown once; only its hash is stored.
    pub token: String,
    /// The record to store.
    pub record: TokenRecord,
}

impl fmt::Debug for NewToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewToken")
            .field("token", &"<secret>")
            .field("record", &self.record)
            .finish()
    }
}

/// Generate a token for `role` and `name` from the caller's random source.
pub fn generate_token<R: rand_core::CryptoRngCore + ?Sized>(
    rng: &mut R,
    role: Role,
    name: &str,
    key: Option<&VerifierKey>,
    now: Timestamp,
) -> NewToken {
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut id);
    rng.fill_bytes(&mut secret);
    let id = hex::encode(id);
    let secret = URL_SAFE_NO_PAD.encode(secret);
    NewToken {
        token: format!("{TOKEN_PREFIX}{id}_{secret}"),
        record: TokenRecord {
            id,
            role,
            name: name.to_owned(),
            secret_sha256: hex::encode(Sha256::digest(secret.as_bytes())),
            created_at: now,
            key: key.map(|k| k.to_string()),
            more_keys: Vec::new(),
            revoked: false,
            expires_at: None,
            created_seq: None,
            revoked_seq: None,
        },
    }
}

/// Whether `name` is acceptable as a token holder's name (it becomes an
/// actor id): 1 to 128 printable characters without whitespace.
pub fn valid_name(name: &str) -> bool {
    (1..=128).contains(&name.len()) && name.chars().all(|c| !c.is_whitespace() && !c.is_control())
}

/// Who is calling: the identity behind a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Its role.
    pub role: Role,
    /// The token's holder name.
    pub name: String,
    /// The token's public id.
    pub token_id: String,
    /// A dock's registered verifier key.
    pub key: Option<VerifierKey>,
    /// A dock's further registered keys (its other suites).
    pub more_keys: Vec<VerifierKey>,
}

impl Caller {
    /// The identity of a dock running in the same process as the ledger
    /// (the embedded default): no token, its verifier key given directly.
    pub fn in_process_dock(name: &str, key: VerifierKey) -> Caller {
        Caller {
            role: Role::Dock,
            name: name.to_owned(),
            token_id: "in-process".to_owned(),
            key: Some(key),
            more_keys: Vec::new(),
        }
    }

    /// [`Caller::in_process_dock`] for a dock signing with several keys.
    pub fn in_process_dock_keys(name: &str, keys: &[VerifierKey]) -> Caller {
        Caller {
            role: Role::Dock,
            name: name.to_owned(),
            token_id: "in-process".to_owned(),
            key: keys.first().cloned(),
            more_keys: keys.iter().skip(1).cloned().collect(),
        }
    }

    /// Every key registered to this caller (a dock's), first key first.
    pub fn keys(&self) -> Vec<VerifierKey> {
        self.key.iter().chain(&self.more_keys).cloned().collect()
    }

    /// The actor of entries this caller causes.
    pub fn actor(&self) -> Actor {
        Actor {
            kind: self.role.actor_kind(),
            id: self.name.clone(),
        }
    }
}

/// Why a presented token was refused.
#[derive(Debug, thiserror::Error)]
// Exhaustive on purpose: custos-server maps every variant to an HTTP answer.
pub enum AuthError {
    /// No `Authorization: Bearer` header on a route that needs one.
    #[error("this route needs a bearer token (Authorization: Bearer custos_...)")]
    Missing,
    /// The header or token is not of the expected form.
    #[error("the Authorization header is not a Custos bearer token (expected \"Bearer custos_<id>_<secret>\")")]
    Malformed,
    /// No such token, or the secret does not match.
    #[error("the bearer token is not valid")]
    Invalid,
    /// The token was revoked.
    #[error("the bearer token {id} was revoked")]
    Revoked {
        /// Its public id.
        id: String,
    },
    /// The token's end has passed.
    #[error("the bearer token {id} expired at {at}")]
    Expired {
        /// Its public id.
        id: String,
        /// When it expired.
        at: Timestamp,
    },
    /// The caller's role may not call this.
    #[error("role {role} may not {what}")]
    Forbidden {
        /// The caller's role.
        role: Role,
        /// What was refused, e.g. "call POST /v1/events (allowed: dock)".
        what: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Split a token's text into its id and the SHA-256 of its secret.
fn parse_token(token: &str) -> Result<(&str, [u8; 32]), AuthError> {
    let rest = token
        .strip_prefix(TOKEN_PREFIX)
        .ok_or(AuthError::Malformed)?;
    let (id, secret) = rest.split_once('_').ok_or(AuthError::Malformed)?;
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) || secret.is_empty() {
        return Err(AuthError::Malformed);
    }
    Ok((id, Sha256::digest(secret.as_bytes()).into()))
}

/// A token record read back and checked for shape.
#[derive(Debug, Clone)]
struct KnownToken {
    secret_sha256: [u8; 32],
    revoked: bool,
    expires_at: Option<Timestamp>,
    caller: Caller,
}

fn load_token(store: &Store, id: &str) -> Result<Option<KnownToken>, AuthError> {
    let Some(record) = store.table_get_json::<TokenRecord>(TOKENS, id.as_bytes())? else {
        return Ok(None);
    };
    let malformed = |why: String| StoreError::Malformed {
        what: format!("token {id}"),
        why,
    };
    let mut secret_sha256 = [0u8; 32];
    hex::decode_to_slice(&record.secret_sha256, &mut secret_sha256)
        .map_err(|_| malformed("secret hash is not 64 hex digits".into()))?;
    let key = match &record.key {
        Some(text) => Some(
            text.parse::<VerifierKey>()
                .map_err(|e| malformed(format!("registered key: {e}")))?,
        ),
        None => None,
    };
    let more_keys = record
        .more_keys
        .iter()
        .map(|text| {
            text.parse::<VerifierKey>()
                .map_err(|e| malformed(format!("registered key: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(KnownToken {
        secret_sha256,
        revoked: record.revoked,
        expires_at: record.expires_at,
        caller: Caller {
            role: record.role,
            name: record.name,
            token_id: record.id,
            key,
            more_keys,
        },
    }))
}

fn check(known: &KnownToken, presented: &[u8; 32], now: Timestamp) -> Result<Caller, AuthError> {
    if !bool::from(known.secret_sha256.ct_eq(presented)) {
        return Err(AuthError::Invalid);
    }
    if known.revoked {
        return Err(AuthError::Revoked {
            id: known.caller.token_id.clone(),
        });
    }
    if let Some(at) = known.expires_at.filter(|end| now >= *end) {
        return Err(AuthError::Expired {
            id: known.caller.token_id.clone(),
            at,
        });
    }
    Ok(known.caller.clone())
}

/// Check a token's text against the store at `now` and return who holds it.
pub fn authenticate(store: &Store, token: &str, now: Timestamp) -> Result<Caller, AuthError> {
    let (id, presented) = parse_token(token)?;
    let known = load_token(store, id)?.ok_or(AuthError::Invalid)?;
    check(&known, &presented, now)
}

/// Token records kept in memory, so that checking the token of a request
/// reads no sled page: sled's batch writes take a process-wide lock that
/// blocks every reader while the append writer applies a batch, and a
/// request must not wait for that just to be let in.
///
/// Filled on first use of each token; the writer invalidates an id after
/// committing any change to its row ([`TokenCache::invalidate`]). A
/// generation counter keeps a read that raced with an invalidation from
/// caching the old row.
#[derive(Debug, Default)]
pub struct TokenCache {
    known: std::sync::RwLock<std::collections::HashMap<String, KnownToken>>,
    generation: std::sync::atomic::AtomicU64,
}

impl TokenCache {
    /// [`authenticate`], from memory when the token was seen before. The
    /// end of a token is compared with `now` on every call, so an expired
    /// token is refused whether cached or not.
    pub fn authenticate(
        &self,
        store: &Store,
        token: &str,
        now: Timestamp,
    ) -> Result<Caller, AuthError> {
        use std::sync::atomic::Ordering::SeqCst;
        let (id, presented) = parse_token(token)?;
        let cached = self
            .known
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned();
        if let Some(known) = cached {
            return check(&known, &presented, now);
        }
        let generation = self.generation.load(SeqCst);
        let known = load_token(store, id)?.ok_or(AuthError::Invalid)?;
        let mut map = self.known.write().unwrap_or_else(|p| p.into_inner());
        if self.generation.load(SeqCst) == generation {
            map.insert(id.to_owned(), known.clone());
        }
        drop(map);
        check(&known, &presented, now)
    }

    /// Forget token `id` (its row changed).
    pub fn invalidate(&self, id: &str) {
        let mut map = self.known.write().unwrap_or_else(|p| p.into_inner());
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        map.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
            assert_eq!(role.actor_kind().as_str(), role.as_str());
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn matrix_has_one_row_per_route() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(!(a.method == b.method && a.path == b.path), "{a:?} twice");
            }
        }
    }

    #[test]
    fn dock_actions() {
        assert!(dock_may("segment.ingested"));
        assert!(dock_may("dock.started"));
        assert!(!dock_may("case.created"));
        assert!(!dock_may("access.approved"));
    }

    #[test]
    fn names() {
        assert!(valid_name("dock-01"));
        assert!(!valid_name(""));
        assert!(!valid_name("a b"));
        assert!(!valid_name(&"x".repeat(129)));
    }
}
