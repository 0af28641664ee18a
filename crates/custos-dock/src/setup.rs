//! Putting a dock together from the configuration file: its key, its
//! profiles, its store, and its ledger link — remote over HTTP when `[dock]
//! ledger_url` is set ([`remote_ledger`]); else the caller wires in the
//! ledger it opened in this process from `[ledger]` (the embedded default;
//! the `custos` binary does that, since the dock never sees the ledger
//! itself).
//!
//! Every failure names the file or setting at fault. This module must never
//! start a dock with a profile, key or store it could not fully check.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use custos_client::{ClientTls, LedgerClient};
use custos_core::config::Config;
use custos_core::keys::{KeyError, KeySet};
use custos_ingest::{IngestStore, StoreError};

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
    /// A TLS file of `[dock]` (`ledger_ca`, `tls_cert`, `tls_key`) is
    /// unusable.
    #[error("{0}")]
    Tls(String),
    /// The officer roster is unreadable or malformed.
    #[error("[dock] roster {path}: {why}")]
    Roster {
        /// The file.
        path: PathBuf,
        /// What is wrong (with the line number).
        why: String,
    },
    /// The dock itself could not start.
    #[error(transparent)]
    Dock(#[from] DockError),
}

/// Officer names from a roster's text: `officer_id,name` per line, `#`
/// comments and blank lines ignored. Refuses a line without both parts and
/// an officer listed twice, naming the line.
pub fn parse_roster(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut names = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let n = i + 1;
        let Some((id, name)) = line.split_once(',') else {
            return Err(format!("line {n}: expected \"officer_id,name\""));
        };
        let (id, name) = (id.trim(), name.trim());
        if id.is_empty() || name.is_empty() {
            return Err(format!(
                "line {n}: the officer id and the name must both be given"
            ));
        }
        if names.insert(id.to_owned(), name.to_owned()).is_some() {
            return Err(format!("line {n}: officer {id} is listed twice"));
        }
    }
    Ok(names)
}

/// The dock's signing keys: one per suite of `[crypto] signatures`,
/// `[dock] key_file` for Ed25519 and `[dock] sm2_key_file` for SM2.
pub fn dock_key(config: &Config) -> Result<KeySet, SetupError> {
    let d = &config.dock;
    KeySet::load(&config.dock_key_files()).map_err(|source| SetupError::Key {
        what: "dock",
        path: match &source {
            KeyError::Io { path, .. }
            | KeyError::TooOpen { path, .. }
            | KeyError::BadSeedLength { path, .. }
            | KeyError::BadPrivateKey { path, .. }
            | KeyError::Mismatch { path } => path.clone(),
            _ => d.key_file.clone(),
        },
        source,
    })
}

/// The remote ledger of `[dock] ledger_url` (with `ledger_token`, and over
/// `https://` trusting `ledger_ca` and presenting `tls_cert`), or
/// `None` when the configuration names none (the dock then needs a ledger
/// in its own process).
pub fn remote_ledger(config: &Config) -> Result<Option<LedgerLink>, SetupError> {
    let d = &config.dock;
    let Some(url) = &d.ledger_url else {
        return Ok(None);
    };
    let tls = ClientTls::from_files(
        "[dock]",
        d.ledger_ca.as_deref(),
        d.tls_cert.as_deref(),
        d.tls_key.as_deref(),
    )
    .map_err(|e| SetupError::Tls(e.to_string()))?;
    let client = LedgerClient::configured(
        url,
        d.ledger_token.as_deref(),
        custos_client::DEFAULT_TIMEOUT,
        &tls,
    )
    .map_err(|e| SetupError::LedgerUrl(e.to_string()))?;
    Ok(Some(Arc::new(client)))
}

/// Put the dock together from `config`, signing with `key` (from
/// [`dock_key`]) and sending its events to `ledger` (from
/// [`remote_ledger`], or a ledger in this process).
pub async fn open(
    config: &Config,
    key: KeySet,
    ledger: LedgerLink,
) -> Result<Arc<Dock>, SetupError> {
    let d = &config.dock;
    let profiles = Profiles::load_dir(&d.profiles_dir)?;
    let store = IngestStore::from_url(&config.storage.url)?;
    let mut settings = DockSettings::from_config(config);
    if let Some(path) = &d.roster {
        let bad = |why: String| SetupError::Roster {
            path: path.clone(),
            why,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        settings.board.roster = parse_roster(&text).map_err(bad)?;
    }
    Ok(Dock::open(settings, key, store, ledger, profiles).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_roster_names_officers_and_refuses_what_it_cannot_read() {
        let r = parse_roster("# officers\n100233, 张三\n\n100234,李四\n").unwrap();
        assert_eq!(r.get("100233").map(String::as_str), Some("张三"));
        assert_eq!(r.len(), 2);
        assert_eq!(
            parse_roster("100233 张三").unwrap_err(),
            "line 1: expected \"officer_id,name\""
        );
        assert!(parse_roster("1,a\n1,b").unwrap_err().contains("line 2"));
        assert!(parse_roster(",a").unwrap_err().contains("both"));
    }
}
