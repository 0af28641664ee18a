//! The ledger's own TLS: `[ledger] tls_cert`, `tls_key`, `tls_client_ca`.
//!
//! [`TlsSetup::load`] reads the PEM files into a rustls server
//! configuration (ring, TLS 1.2 and 1.3, HTTP/1.1 by ALPN). The connection
//! loop of [`crate::serve`] takes the configuration in force for each new
//! connection ([`TlsSetup::acceptor`]); [`TlsSetup::reload`] (on SIGHUP)
//! builds a new one from the same files and swaps it in only when the
//! whole of it loaded, so that a broken file is one error line and the
//! service keeps the certificate it had. Connections already open keep the
//! session they negotiated: nothing is dropped by a reload. The client CA
//! is re-read with the certificate. [`TlsSetup::reload_if_changed`] does
//! the same when a file's size or modification time changed since it was
//! read (the serve loop asks every few seconds, so a renewal tool that only
//! replaces the files needs no signal); a set of files that failed to load
//! is not retried until one of them changes again.
//!
//! [`expiry`] says when the certificate in force ends soon (within
//! [`EXPIRY_WARNING_DAYS`]) or has ended, for the warning the serve loop
//! logs at start, after each reload and once a day.
//!
//! # Client certificates of docking stations
//!
//! With `tls_client_ca` set, the handshake asks every client for a
//! certificate and verifies one that is offered against that CA, but lets
//! a client without one connect (console users and auditors have none).
//! What a connection proved is stamped on each of its requests as a
//! [`ConnectionInfo`]; the API's authorisation step then refuses a request
//! made with a **dock** token unless ([`ConnectionInfo::check_dock`]):
//!
//! 1. the connection presented a certificate the CA verified, and
//! 2. that certificate names the dock: a DNS subjectAltName equal to the
//!    dock token's name (the station id, `[dock] id`).
//!
//! So a stolen dock token alone appends nothing, and one station's
//! certificate does not lend its name to another station's token. Other
//! roles are not bound to a certificate.
//!
//! This module must never log a key or accept a configuration that did not
//! load whole.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// The files of `[ledger] tls_cert`, `tls_key` and `tls_client_ca`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain (PEM, leaf first).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The CA of the docks' client certificates (PEM), if they must
    /// present one.
    pub client_ca: Option<PathBuf>,
}

/// Why the TLS files could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{what} {path}: {why}")]
    File {
        /// `[ledger] tls_cert`, `tls_key` or `tls_client_ca`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The files read but do not make a server configuration (a key that
    /// is not the certificate's, a CA rustls refuses).
    #[error("[ledger] tls_cert {cert} with tls_key {key}: {why}")]
    Config {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason.
        why: String,
    },
}

/// Warn this many days before the certificate in force ends.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// The size and modification time of each TLS file (`None`: unreadable),
/// to notice a file replaced on disk.
type FileStamp = Vec<Option<(SystemTime, u64)>>;

/// A configuration built from the files, with what it was built from.
#[derive(Debug)]
struct Loaded {
    config: Arc<ServerConfig>,
    /// The end of the leaf certificate's validity (Unix seconds), when it
    /// parses.
    not_after: Option<i64>,
    stamp: FileStamp,
}

/// The TLS configuration in force, swapped whole by [`TlsSetup::reload`].
#[derive(Debug)]
pub struct TlsSetup {
    files: TlsFiles,
    current: RwLock<Loaded>,
    /// The files as they were when they last failed to load.
    failed: Mutex<Option<FileStamp>>,
}

impl TlsSetup {
    /// Load `files` (see the module documentation).
    pub fn load(files: TlsFiles) -> Result<TlsSetup, TlsError> {
        let loaded = load(&files)?;
        Ok(TlsSetup {
            files,
            current: RwLock::new(loaded),
            failed: Mutex::new(None),
        })
    }

    /// Read the files again; on success the new configuration serves every
    /// connection accepted from now on, on failure the old one stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let result = load(&self.files);
        self.take(result)
    }

    /// [`TlsSetup::reload`] when a file changed on disk since it was last
    /// read (or last failed to load): `Ok(true)` when a new certificate now
    /// serves, `Ok(false)` when nothing changed.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let stamp = stamp(&self.files);
        let unchanged = self.read().stamp == stamp
            || self
                .failed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .as_ref()
                == Some(&stamp);
        if unchanged {
            return Ok(false);
        }
        self.reload().map(|()| true)
    }

    fn take(&self, result: Result<Loaded, TlsError>) -> Result<(), TlsError> {
        let mut failed = self
            .failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match result {
            Ok(loaded) => {
                *failed = None;
                *self
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = loaded;
                Ok(())
            }
            Err(e) => {
                *failed = Some(stamp(&self.files));
                Err(e)
            }
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Loaded> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The acceptor of the configuration in force.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.read().config.clone())
    }

    /// The end of the validity of the certificate in force (Unix seconds),
    /// when its leaf parses as X.509.
    pub fn not_after(&self) -> Option<i64> {
        self.read().not_after
    }

    /// Whether requests with a dock token need a client certificate
    /// (`tls_client_ca` is set).
    pub fn docks_need_certificate(&self) -> bool {
        self.files.client_ca.is_some()
    }

    /// The files it loads.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }
}

/// Certificates of a PEM file; an empty one is an error.
fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |why: String| TlsError::File {
        what,
        path: path.to_owned(),
        why,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(pem_error(&e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(pem_error(&e)))?;
    if certs.is_empty() {
        return Err(bad("no PEM CERTIFICATE block in the file".into()));
    }
    Ok(certs)
}

/// A PEM error in words (an unreadable file: the I/O error alone).
fn pem_error(e: &rustls_pki_types::pem::Error) -> String {
    match e {
        rustls_pki_types::pem::Error::Io(io) => io.to_string(),
        other => format!("not a valid PEM file ({other:?})"),
    }
}

/// Whether a certificate ending at `not_after` deserves a warning at `now`
/// (both Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// It ends within [`EXPIRY_WARNING_DAYS`]: in this many whole days.
    Soon {
        /// Whole days left (0: less than one).
        days: i64,
    },
    /// It has ended, this many whole days ago: clients refuse it.
    Ended {
        /// Whole days since it ended.
        days: i64,
    },
}

/// When to warn about a certificate ending at `not_after` (see [`Expiry`]);
/// `None` when it has more than [`EXPIRY_WARNING_DAYS`] to run.
pub fn expiry(not_after: i64, now: i64) -> Option<Expiry> {
    const DAY: i64 = 86_400;
    let left = not_after.saturating_sub(now);
    if left < 0 {
        Some(Expiry::Ended {
            days: left.saturating_neg() / DAY,
        })
    } else if left <= EXPIRY_WARNING_DAYS * DAY {
        Some(Expiry::Soon { days: left / DAY })
    } else {
        None
    }
}

fn stamp(files: &TlsFiles) -> FileStamp {
    std::iter::once(&files.cert)
        .chain(std::iter::once(&files.key))
        .chain(files.client_ca.as_ref())
        .map(|p| {
            let m = std::fs::metadata(p).ok()?;
            Some((m.modified().ok()?, m.len()))
        })
        .collect()
}

/// The files' stamp (taken first: a file replaced while it is read shows
/// as changed at the next look), then the configuration they make.
fn load(files: &TlsFiles) -> Result<Loaded, TlsError> {
    let stamp = stamp(files);
    let (config, not_after) = build(files)?;
    Ok(Loaded {
        config,
        not_after,
        stamp,
    })
}

/// The end of a certificate's validity (Unix seconds); `None` when it does
/// not parse as X.509 (rustls, not this, decides whether it serves).
fn not_after(cert: &CertificateDer<'_>) -> Option<i64> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    Some(parsed.validity().not_after.timestamp())
}

fn build(files: &TlsFiles) -> Result<(Arc<ServerConfig>, Option<i64>), TlsError> {
    let chain = certificates("[ledger] tls_cert", &files.cert)?;
    let leaf_not_after = chain.first().and_then(not_after);
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError::File {
        what: "[ledger] tls_key",
        path: files.key.clone(),
        why: match e {
            rustls_pki_types::pem::Error::NoItemsFound => {
                "no PEM PRIVATE KEY block in the file".into()
            }
            other => pem_error(&other),
        },
    })?;
    let config_error = |why: String| TlsError::Config {
        cert: files.cert.clone(),
        key: files.key.clone(),
        why,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error(e.to_string()))?;
    let builder = match &files.client_ca {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates("[ledger] tls_client_ca", path)? {
                roots.add(cert).map_err(|e| TlsError::File {
                    what: "[ledger] tls_client_ca",
                    path: path.clone(),
                    why: e.to_string(),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::File {
                    what: "[ledger] tls_client_ca",
                    path: path.clone(),
                    why: e.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => config_error(
            "the key is not the private key of the certificate (the chain's first)".into(),
        ),
        other => config_error(other.to_string()),
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), leaf_not_after))
}

/// What a connection proved, stamped on each of its requests by the
/// connection loop of [`crate::serve`].
#[derive(Debug, Clone, Default)]
pub struct ConnectionInfo {
    /// The connection is TLS.
    pub tls: bool,
    /// Requests with a dock token need a client certificate naming the
    /// dock (`tls_client_ca` is set).
    pub docks_need_certificate: bool,
    /// The client's certificate, verified against `tls_client_ca` in the
    /// handshake.
    pub client_certificate: Option<CertificateDer<'static>>,
}

/// Why a dock's request was refused for its connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DockCertificateRefusal {
    /// No client certificate on the connection.
    #[error("dock {dock}: this ledger takes a dock token only over a connection with the station's client certificate ([ledger] tls_client_ca); set [dock] tls_cert and tls_key")]
    Missing {
        /// The dock token's name.
        dock: String,
    },
    /// A certificate that does not name the dock.
    #[error("dock {dock}: the client certificate does not name this dock (it needs a DNS subjectAltName {dock:?}); the token and the certificate must be the same station's")]
    OtherStation {
        /// The dock token's name.
        dock: String,
    },
}

impl ConnectionInfo {
    /// May a request with the dock token named `dock` be served on this
    /// connection? (See the module documentation.)
    pub fn check_dock(&self, dock: &str) -> Result<(), DockCertificateRefusal> {
        if !self.docks_need_certificate {
            return Ok(());
        }
        let Some(der) = &self.client_certificate else {
            return Err(DockCertificateRefusal::Missing {
                dock: dock.to_owned(),
            });
        };
        let other = || DockCertificateRefusal::OtherStation {
            dock: dock.to_owned(),
        };
        let name = ServerName::try_from(dock).map_err(|_| other())?;
        let cert = webpki::EndEntityCert::try_from(der).map_err(|_| other())?;
        cert.verify_is_valid_for_subject_name(&name)
            .map_err(|_| other())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn expiry_warns_within_thirty_days_and_after_the_end() {
        let now = 1_800_000_000;
        assert_eq!(expiry(now + 365 * DAY, now), None);
        assert_eq!(expiry(now + 30 * DAY + 1, now), None);
        assert_eq!(expiry(now + 30 * DAY, now), Some(Expiry::Soon { days: 30 }));
        assert_eq!(
            expiry(now + 10 * DAY + 5, now),
            Some(Expiry::Soon { days: 10 })
        );
        assert_eq!(expiry(now, now), Some(Expiry::Soon { days: 0 }));
        assert_eq!(expiry(now - 1, now), Some(Expiry::Ended { days: 0 }));
        assert_eq!(expiry(now - 3 * DAY, now), Some(Expiry::Ended { days: 3 }));
        assert_eq!(
            expiry(i64::MIN, i64::MAX),
            Some(Expiry::Ended {
                days: i64::MAX / DAY
            })
        );
    }
}
