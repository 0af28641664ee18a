//! Administration with the service stopped: `custos token create` opens
//! the ledger's sled directory itself.
//!
//! sled allows one process per database, so this works only while `custos
//! ledger serve` is not running on the same `data_dir`; otherwise opening
//! fails with [`crate::StoreError::Locked`], whose message says so. The
//! token is created through the same writer path as in the service, so its
//! `token.created` entry and its rows are written in one durable batch.
//!
//! Nothing here may bypass the writer or the start-up check.

use std::path::Path;

use custos_core::entry::Actor;
use custos_core::keys::{SigningKey, VerifierKey};

use crate::auth::{NewToken, Role};
use crate::ledger::{Ledger, LedgerOptions, TokenError};
use crate::serve::ServeError;

/// Why an offline operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OfflineError {
    /// The ledger could not be opened (key, lock, start-up check).
    #[error(transparent)]
    Open(#[from] ServeError),
    /// The token could not be created.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The runtime could not be started.
    #[error("starting the runtime: {0}")]
    Runtime(std::io::Error),
}

impl From<std::io::Error> for OfflineError {
    fn from(e: std::io::Error) -> Self {
        OfflineError::Runtime(e)
    }
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
    // A thread of its own, so that this works from synchronous code and
    // from inside a Tokio runtime alike.
    let key_file = key_file.to_owned();
    let name = name.to_owned();
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let signing = SigningKey::load(&key_file).map_err(|error| ServeError::Key {
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
                    let token = ledger.create_token(creator, role, &name, key).await;
                    ledger.close().await;
                    Ok(token?)
                })
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}
