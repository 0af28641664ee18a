//! Administration with the service stopped: `custos token create`,
//! `custos token revoke` and `custos token list` open the ledger's sled
//! directory themselves.
//!
//! sled allows one process per database, so this works only while `custos
//! ledger serve` is not running on the same `data_dir`; otherwise opening
//! fails with [`crate::StoreError::Locked`], whose message says so. A
//! token is created or revoked through the same writer path as in the
//! service, so its `token.created` or `token.revoked` entry and its rows
//! are written in one durable batch.
//!
//! Nothing here may bypass the writer or the start-up check.

use std::path::Path;

use custos_core::entry::Actor;
use custos_core::keys::VerifierKey;

use crate::serve::ServeError;
use custos_ledger::auth::{NewToken, Role, TokenInfo};
use custos_ledger::ledger::{Ledger, LedgerOptions, TokenError};

/// Why an offline operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OfflineError {
    /// The ledger could not be opened (key, lock, start-up check).
    #[error(transparent)]
    Open(#[from] ServeError),
    /// The token could not be created or revoked.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// Reading the tokens failed.
    #[error(transparent)]
    Store(#[from] custos_ledger::error::StoreError),
    /// The runtime could not be started.
    #[error("starting the runtime: {0}")]
    Runtime(std::io::Error),
}

impl From<std::io::Error> for OfflineError {
    fn from(e: std::io::Error) -> Self {
        OfflineError::Runtime(e)
    }
}

/// Open the ledger in `options.data_dir` with the key at `key_file`, run
/// `work` with it on a runtime of its own, and close the ledger.
fn with_ledger<T: Send>(
    options: LedgerOptions,
    key_file: &Path,
    work: impl FnOnce(
            Ledger,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<T, OfflineError>> + Send>,
        > + Send,
) -> Result<T, OfflineError> {
    // A thread of its own, so that this works from synchronous code and
    // from inside a Tokio runtime alike.
    let key_file = key_file.to_owned();
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let signing = options
                    .load_keys(&key_file)
                    .map_err(|error| ServeError::Key {
                        path: key_file.clone(),
                        error,
                    })?;
                let data_dir = options.data_dir.clone();
                let ledger = Ledger::open(options, signing).map_err(|error| ServeError::Open {
                    path: data_dir,
                    error,
                })?;
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async {
                    let result = work(ledger.clone()).await;
                    ledger.close().await;
                    result
                })
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Open the ledger in `options.data_dir` with the key at `key_file`, create
/// a token for `role` and `name` (registering `key` for a dock), recorded
/// as made by `creator`, and close the ledger.
pub fn create_token(
    options: LedgerOptions,
    key_file: &Path,
    creator: Actor,
    role: Role,
    name: &str,
    key: Option<VerifierKey>,
) -> Result<NewToken, OfflineError> {
    create_token_for(options, key_file, creator, role, name, key, None)
}

/// [`create_token`] for a token that stops working `lifetime` after now
/// (the ledger's clock).
pub fn create_token_for(
    options: LedgerOptions,
    key_file: &Path,
    creator: Actor,
    role: Role,
    name: &str,
    key: Option<VerifierKey>,
    lifetime: Option<std::time::Duration>,
) -> Result<NewToken, OfflineError> {
    create_token_with_keys(
        options,
        key_file,
        creator,
        role,
        name,
        key.into_iter().collect(),
        lifetime,
    )
}

/// [`create_token_for`] registering several keys of one dock (one per
/// suite it signs with), as [`Ledger::create_token_with_keys`] does.
pub fn create_token_with_keys(
    options: LedgerOptions,
    key_file: &Path,
    creator: Actor,
    role: Role,
    name: &str,
    keys: Vec<VerifierKey>,
    lifetime: Option<std::time::Duration>,
) -> Result<NewToken, OfflineError> {
    let name = name.to_owned();
    with_ledger(options, key_file, move |ledger| {
        Box::pin(async move {
            let expires_at = match lifetime {
                None => None,
                Some(d) => Some(
                    time::Duration::try_from(d)
                        .ok()
                        .and_then(|d| ledger.now().checked_add(d))
                        .ok_or(TokenError::LifetimeTooLong(d))?,
                ),
            };
            Ok(ledger
                .create_token_with_keys(creator, role, &name, keys, expires_at)
                .await?)
        })
    })
}

/// Revoke the tokens in force named `name` (only `token_id`, if given), as
/// [`Ledger::revoke_token`] does in the service. Returns the
/// `token.revoked` entry's seq and the ids revoked.
pub fn revoke_token(
    options: LedgerOptions,
    key_file: &Path,
    revoker: Actor,
    name: &str,
    token_id: Option<&str>,
) -> Result<(u64, Vec<String>), OfflineError> {
    let name = name.to_owned();
    let token_id = token_id.map(str::to_owned);
    with_ledger(options, key_file, move |ledger| {
        Box::pin(async move {
            let (receipt, ids) = ledger
                .revoke_token(revoker, &name, token_id.as_deref())
                .await?;
            Ok((receipt.seq, ids))
        })
    })
}

/// Every token, as `GET /v1/tokens` shows them.
pub fn list_tokens(
    options: LedgerOptions,
    key_file: &Path,
) -> Result<Vec<TokenInfo>, OfflineError> {
    with_ledger(options, key_file, |ledger| {
        Box::pin(async move { Ok(ledger.tokens()?) })
    })
}
