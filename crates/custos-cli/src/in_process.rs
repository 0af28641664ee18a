//! A dock and its ledger in one process (the embedded default: no `[dock]
//! ledger_url`).
//!
//! The dock never sees the ledger itself (custos-dock does not depend on
//! custos-ledger): it sends its events to an [`EventSink`]. Here the sink is
//! [`LocalSink`], which hands each envelope to the ledger opened from
//! `[ledger]` as the dock's own [`Caller`] and answers with the same status
//! codes, error codes and messages the HTTP API would, so that the dock's
//! outbox retries, sets aside and reports exactly as it does over HTTP.
//!
//! Before the dock starts, its key is registered with the ledger
//! ([`Ledger::ensure_dock_key`]), as `custos token create --role dock
//! --key` does for a remote one: the log itself then says which key signs
//! the dock's manifests and events.

use std::path::PathBuf;
use std::sync::Arc;

use custos_client::ClientError;
use custos_core::config::Config;
use custos_core::dsse::Envelope;
use custos_core::keys::KeySet;
use custos_dock::queue::{EventSink, SendEvent};
use custos_dock::setup::{self, SetupError};
use custos_dock::{Dock, LedgerLink};
use custos_ledger::{Caller, Ledger, LedgerOptions};
use custos_server::api::ApiError;

/// The ledger in this process, seen by one dock.
#[derive(Debug, Clone)]
pub struct LocalSink {
    ledger: Ledger,
    dock: Caller,
}

impl LocalSink {
    /// A sink for `dock` (a [`Caller`] of role dock with its key, e.g. from
    /// [`Caller::in_process_dock`]).
    pub fn new(ledger: Ledger, dock: Caller) -> Self {
        LocalSink { ledger, dock }
    }
}

impl EventSink for LocalSink {
    fn send_event<'a>(&'a self, envelope: &'a Envelope) -> SendEvent<'a> {
        Box::pin(async move {
            self.ledger
                .append_envelope(&self.dock, envelope.clone())
                .await
                .map_err(|e| {
                    // The same status codes and messages as over HTTP.
                    let api = ApiError::from(e);
                    ClientError::answered(
                        "in-process ledger",
                        api.status.as_u16(),
                        api.code,
                        api.message,
                    )
                })
        })
    }
}

/// Why the dock and its ledger could not be put together.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AssembleError {
    /// The dock's own part (key, profiles, store, ledger URL).
    #[error(transparent)]
    Dock(#[from] SetupError),
    /// The in-process ledger could not be opened or registered the key.
    #[error("the in-process ledger at {path}: {why}")]
    Ledger {
        /// Its data directory.
        path: PathBuf,
        /// Why.
        why: String,
    },
}

/// A dock ready to run, and the ledger it opened in this process, if any
/// (close it after the dock stops).
#[derive(Debug)]
pub struct Assembled {
    /// The dock.
    pub dock: Arc<Dock>,
    /// The in-process ledger, when `[dock] ledger_url` is not set.
    pub local_ledger: Option<Ledger>,
}

/// Put the dock together from `config`: its events go to the remote ledger
/// of `[dock] ledger_url` when one is set, else to the ledger opened here
/// from `[ledger]`, with the dock's key registered first.
pub async fn assemble(config: &Config) -> Result<Assembled, AssembleError> {
    let key = setup::dock_key(config)?;
    let (link, local_ledger): (LedgerLink, _) = match setup::remote_ledger(config)? {
        Some(remote) => (remote, None),
        None => {
            let ledger = open_local(config, &key).await?;
            let caller = Caller::in_process_dock_keys(&config.dock.id, &key.verifier_keys());
            (
                Arc::new(LocalSink::new(ledger.clone(), caller)),
                Some(ledger),
            )
        }
    };
    let dock = setup::open(config, key, link).await?;
    Ok(Assembled { dock, local_ledger })
}

/// Open the ledger of `[ledger]` and register the dock's key with it.
async fn open_local(config: &Config, dock_key: &KeySet) -> Result<Ledger, AssembleError> {
    let l = &config.ledger;
    let failed = |why: String| AssembleError::Ledger {
        path: l.data_dir.clone(),
        why,
    };
    let ledger_key =
        KeySet::load(&config.ledger_key_files()).map_err(|source| SetupError::Key {
            what: "ledger",
            path: l.key_file.clone(),
            source,
        })?;
    let options = LedgerOptions::new(&l.data_dir, &l.origin);
    let ledger = tokio::task::spawn_blocking(move || Ledger::open(options, ledger_key))
        .await
        .map_err(|e| failed(e.to_string()))?
        .map_err(|e| failed(e.to_string()))?;
    ledger
        .ensure_dock_keys(&config.dock.id, dock_key.verifier_keys())
        .await
        .map_err(|e| failed(format!("registering the dock key: {e}")))?;
    Ok(ledger)
}
