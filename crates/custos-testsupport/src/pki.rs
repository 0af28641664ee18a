//! A site's private PKI for TLS tests: a CA made with rcgen, and the
//! certificates it issues (the ledger's server certificate, a station's
//! client certificate), written as PEM files the way an agency's IT would
//! hand them out.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, PKCS#8).
    pub key: PathBuf,
}

/// A CA that issues certificates into a directory.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    dir: PathBuf,
    name: String,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").field("name", &self.name).finish()
    }
}

/// How long ago and for how long a certificate is valid.
#[derive(Debug, Clone, Copy)]
pub enum Validity {
    /// From a day ago for a year.
    Current,
    /// Expired: from sixty days ago to thirty days ago.
    Expired,
    /// Near its end: from a day ago to ten days from now.
    EndingSoon,
}

impl TestCa {
    /// A new CA named `name`; its certificate is written to `DIR/NAME.pem`.
    pub fn new(dir: &Path, name: &str) -> Result<TestCa> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        let ca = TestCa {
            issuer,
            dir: dir.to_owned(),
            name: name.to_owned(),
        };
        std::fs::write(ca.cert_path(), ca.issuer.pem())
            .with_context(|| format!("writing {}", ca.cert_path().display()))?;
        Ok(ca)
    }

    /// The CA certificate's PEM file.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join(format!("{}.pem", self.name))
    }

    fn issue(
        &self,
        file: &str,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
        validity: Validity,
    ) -> Result<CertFiles> {
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or(file));
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        #[expect(
            clippy::disallowed_methods,
            reason = "a certificate's validity is checked by rustls against the real clock"
        )]
        let now = time::OffsetDateTime::now_utc();
        let (from, to) = match validity {
            Validity::Current => (
                now - time::Duration::days(1),
                now + time::Duration::days(365),
            ),
            Validity::Expired => (
                now - time::Duration::days(60),
                now - time::Duration::days(30),
            ),
            Validity::EndingSoon => (
                now - time::Duration::days(1),
                now + time::Duration::days(10),
            ),
        };
        params.not_before = from;
        params.not_after = to;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let files = CertFiles {
            cert: self.dir.join(format!("{file}.crt")),
            key: self.dir.join(format!("{file}.key")),
        };
        std::fs::write(&files.cert, cert.pem())
            .with_context(|| format!("writing {}", files.cert.display()))?;
        std::fs::write(&files.key, key.serialize_pem())
            .with_context(|| format!("writing {}", files.key.display()))?;
        Ok(files)
    }

    /// A server certificate for `names` (DNS names or IP addresses),
    /// written to `DIR/FILE.crt` and `DIR/FILE.key`.
    pub fn server(&self, file: &str, names: &[&str], validity: Validity) -> Result<CertFiles> {
        self.issue(file, names, ExtendedKeyUsagePurpose::ServerAuth, validity)
    }

    /// A client certificate naming `names` (DNS subjectAltNames: a
    /// station's id), written to `DIR/FILE.crt` and `DIR/FILE.key`.
    pub fn client(&self, file: &str, names: &[&str]) -> Result<CertFiles> {
        self.issue(
            file,
            names,
            ExtendedKeyUsagePurpose::ClientAuth,
            Validity::Current,
        )
    }
}
