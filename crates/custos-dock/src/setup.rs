//! Putting a dock together from the configuration file: its key, its
//! profiles, its store, and its ledger — remote over HTTP when `[dock]
//! ledger_url` is set, else the ledger opened in this process from
//! `[ledger]` (the embedded default).
//!
//! Every failure names the file or setting at fault. This module must never
//! start a dock with a profile, key or store it could not fully check.

use std::path::PathBuf;
use std::sync::Arc;

use custos_core::config::Config;
use custos_core::entry::{Actor, ActorKind};
use custos_core::keys::{KeyError, SigningKey};
use custos_ingest::{IngestStore, StoreError};
use custos_ledger::auth::{Caller, DockKeyRecord, Role, DOCK_KEYS};
use custos_ledger::{Ledger, LedgerClient, LedgerOptions, LocalSink};

use crate::engine::{Dock, DockError, DockSettings};
use crate::outbox::LedgerLink;
use crate::profile::{ProfileError, Profiles};

/// Why the dock could not be put together.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// A key file could not be loaded.
    #[error("{what} key {path}: {source} (create one with `custos keygen --out {path}`)")]
    Key {
        /// `dock` or `ledger`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: KeyError,
    },
    /// A firmware profile is invalid.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// The object store could not be opened.
    #[error("[storage] url: {0}")]
    Store(#[from] StoreError),
    /// The remote ledger's URL is unusable.
    #[error("[dock] ledger_url: {0}")]
    LedgerUrl(String),
    /// The in-process ledger could not be opened.
    #[error("the in-process ledger at {path}: {why}")]
    LocalLedger {
        /// Its data directory.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The dock itself could not start.
    #[error(transparent)]
    Dock(#[from] DockError),
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

/// Put the dock together from `config` (see the module documentation).
pub async fn open(config: &Config) -> Result<Assembled, SetupError> {
    let d = &config.dock;
    let key = SigningKey::load(&d.key_file).map_err(|source| SetupError::Key {
        what: "dock",
        path: d.key_file.clone(),
        source,
    })?;
    let profiles = Profiles::load_dir(&d.profiles_dir)?;
    let store = IngestStore::from_url(&config.storage.url)?;
    let (link, local_ledger) = match &d.ledger_url {
        Some(url) => {
            let client = LedgerClient::new(url, d.ledger_token.as_deref())
                .map_err(|e| SetupError::LedgerUrl(e.to_string()))?;
            (LedgerLink::Remote(client), None)
        }
        None => {
            let l = &config.ledger;
            let ledger_key = SigningKey::load(&l.key_file).map_err(|source| SetupError::Key {
                what: "ledger",
                path: l.key_file.clone(),
                source,
            })?;
            let options = LedgerOptions::new(&l.data_dir, &l.origin);
            let path = l.data_dir.clone();
            let ledger = tokio::task::spawn_blocking(move || Ledger::open(options, ledger_key))
                .await
                .map_err(|e| SetupError::LocalLedger {
                    path: path.clone(),
                    why: e.to_string(),
                })?
                .map_err(|e| SetupError::LocalLedger {
                    path: path.clone(),
                    why: e.to_string(),
                })?;
            register_local_dock_key(&ledger, &d.id, &key)
                .await
                .map_err(|why| SetupError::LocalLedger {
                    path: l.data_dir.clone(),
                    why,
                })?;
            let caller = Caller::in_process_dock(&d.id, key.verifier_key());
            (
                LedgerLink::Local(LocalSink::new(ledger.clone(), caller)),
                Some(ledger),
            )
        }
    };
    let settings = DockSettings::from_config(config);
    let dock = Dock::open(settings, key, store, link, profiles).await?;
    Ok(Assembled { dock, local_ledger })
}

/// Register the dock's key with its in-process ledger on first start, as
/// `custos token create --role dock --key` does for a remote one, so that the
/// log itself says which key signs this dock's manifests and events (export
/// bundles and `custos verify log` rely on that `token.created` entry). The
/// token made with it is never shown: an in-process dock needs none.
async fn register_local_dock_key(
    ledger: &Ledger,
    dock_id: &str,
    key: &SigningKey,
) -> Result<(), String> {
    let vk = key.verifier_key();
    let known = ledger
        .store()
        .table_get_json::<DockKeyRecord>(DOCK_KEYS, vk.key_id().as_bytes())
        .map_err(|e| e.to_string())?;
    match known {
        Some(row) if row.dock == dock_id => Ok(()),
        Some(row) => Err(format!(
            "key {} is registered to dock {:?}, not {dock_id:?}",
            vk.key_id(),
            row.dock
        )),
        None => {
            let creator = Actor {
                kind: ActorKind::System,
                id: format!("dock-setup:{dock_id}"),
            };
            ledger
                .create_token(creator, Role::Dock, dock_id, Some(vk))
                .await
                .map(|_| ())
                .map_err(|e| format!("registering the dock key: {e}"))
        }
    }
}
