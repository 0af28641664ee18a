//! The Custos configuration: one TOML file (DESIGN.md "Configuration"), every
//! key overridable by a `CUSTOS_<SECTION>_<KEY>` environment variable.
//!
//! Parsing is pure: the caller hands in the file's text, the directory that
//! relative paths are resolved against (the file's own directory), and the
//! environment variables to consider. Unknown keys are refused, so a typo in
//! a key name is an error that names the key, never a silently ignored
//! setting. A retention below 180 days is refused here, at start-up.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The shortest retention the rules allow: 6 months.
pub const MIN_RETENTION_DAYS: u32 = 180;

/// Sections a `CUSTOS_<SECTION>_<KEY>` variable may name.
const SECTIONS: &[&str] = &[
    "storage",
    "ledger",
    "dock",
    "client",
    "retention",
    "access",
    "crypto",
    "witness",
];

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The TOML does not parse or does not fit the schema.
    #[error("{0}")]
    Invalid(String),
    /// An environment override could not be applied.
    #[error("environment variable {var}: {reason}")]
    BadOverride {
        /// The variable's name.
        var: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A retention period below the legal minimum.
    #[error("retention {key} = {days} days is below the minimum of {MIN_RETENTION_DAYS} days (6 months) that the rules require")]
    RetentionTooShort {
        /// The key (`default_days` or `categories.NAME`).
        key: String,
        /// The configured value.
        days: u32,
    },
}

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[storage]`: where footage objects go.
    pub storage: StorageConfig,
    /// `[ledger]`: the ledger service.
    pub ledger: LedgerConfig,
    /// `[dock]`: the docking station.
    pub dock: DockConfig,
    /// `[client]`: what export, verify log, audit and ledger backup talk to.
    pub client: ClientConfig,
    /// `[retention]`: how long footage is kept.
    pub retention: RetentionConfig,
    /// `[access]`: which roles need an approved request to see footage.
    pub access: AccessConfig,
    /// `[crypto]`: which signature suites the dock and the ledger sign with.
    pub crypto: CryptoConfig,
    /// `[witness]`: `custos witness serve`, a C2SP tlog-witness.
    pub witness: WitnessConfig,
}

/// `[witness]`: a witness that cosigns other logs' checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WitnessConfig {
    /// Listen address of `POST /add-checkpoint` (plain HTTP: what crosses
    /// it is public and signed).
    pub listen: String,
    /// The witness's Ed25519 seed (`custos keygen`, mode 0600); its name
    /// is the witness's name.
    pub key_file: PathBuf,
    /// Where the latest cosigned checkpoint of each log is kept.
    pub state_dir: PathBuf,
    /// The logs it witnesses (`[[witness.logs]]`).
    pub logs: Vec<WitnessedLogConfig>,
}

impl Default for WitnessConfig {
    fn default() -> Self {
        WitnessConfig {
            listen: "127.0.0.1:8720".into(),
            key_file: "./keys/witness.key".into(),
            state_dir: "./data/witness".into(),
            logs: Vec::new(),
        }
    }
}

/// `[[witness.logs]]`: one log a witness witnesses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessedLogConfig {
    /// Its checkpoint origin line.
    pub origin: String,
    /// Its verifier key(s) (`name+hash+base64`, the ledger key's `.pub`).
    pub keys: Vec<String>,
}

/// `[[ledger.witnesses]]`: a witness the ledger submits its checkpoints to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerWitnessConfig {
    /// Its submission prefix (`http://host:port`; `/add-checkpoint` is
    /// appended).
    pub url: String,
    /// Its cosigner key, `name+hash+base64(0x04 || key)` (what `custos
    /// witness key` prints); the name is the witness's.
    pub key: String,
}

/// `[crypto]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CryptoConfig {
    /// The suites every manifest, event and checkpoint is signed with, each
    /// by its own key: `["ed25519"]` (default), `["sm2"]` or
    /// `["ed25519", "sm2"]`. Ed25519 keys are `key_file`, SM2 keys
    /// `sm2_key_file` of `[dock]` and `[ledger]`. Checkpoints always carry
    /// the ledger's Ed25519 line (what standard C2SP verifiers check); with
    /// `sm2` they carry an SM2 line beside it.
    pub signatures: Vec<crate::keys::Algorithm>,
}

impl Default for CryptoConfig {
    fn default() -> Self {
        CryptoConfig {
            signatures: vec![crate::keys::Algorithm::Ed25519],
        }
    }
}

impl CryptoConfig {
    /// Whether `algorithm` is configured.
    pub fn uses(&self, algorithm: crate::keys::Algorithm) -> bool {
        self.signatures.contains(&algorithm)
    }
}

/// `[storage]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `file:///abs/path` or `s3://bucket[/prefix]`. A relative `file://./x`
    /// is resolved against the configuration file's directory.
    pub url: String,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            url: "file://./data/objects".into(),
        }
    }
}

/// `[ledger]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerConfig {
    /// Listen address of the HTTP API.
    pub listen: String,
    /// The sled directory.
    pub data_dir: PathBuf,
    /// The checkpoint origin line.
    pub origin: String,
    /// Ed25519 seed that signs checkpoints.
    pub key_file: PathBuf,
    /// Ed25519 seeds that sign checkpoints, newest first, while the
    /// ledger's key is rotated: `[new, old]` (each checkpoint is signed by
    /// every one). When set, its first file is the ledger's key and
    /// `key_file` is not read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub key_files: Vec<PathBuf>,
    /// SM2 private key (PKCS#8 PEM) that adds an SM2 line to every
    /// checkpoint when `[crypto] signatures` holds `sm2`.
    pub sm2_key_file: PathBuf,
    /// SM2 keys that sign checkpoints, newest first, while the ledger's SM2
    /// key is rotated: `[new, old]` (each adds its line to every
    /// checkpoint). When set, its first file is the ledger's SM2 key and
    /// `sm2_key_file` is not read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sm2_key_files: Vec<PathBuf>,
    /// Verify concurrent dock events' signatures in one batch (faster under
    /// load). Off by default: a dock's own key holder can craft a signature
    /// that a batch accepts and the single check (the auditors') refuses.
    pub batch_signatures: bool,
    /// The TrueType font (or collection) of chain-of-custody reports: it
    /// must hold CJK glyphs. Debian's fonts-wqy-microhei by default.
    pub report_font: PathBuf,
    /// The service's TLS certificate chain (PEM, leaf first); with
    /// `tls_key`, the API and the console are served over HTTPS only.
    /// Re-read on SIGHUP.
    pub tls_cert: Option<PathBuf>,
    /// The private key of `tls_cert` (PEM: PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<PathBuf>,
    /// CA certificates (PEM) of the docking stations' client certificates:
    /// when set, every request made with a dock token must come over a
    /// connection whose client certificate this CA issued and that names
    /// the dock (a DNS subjectAltName equal to the dock's id). Others
    /// (console users, auditors) connect without a certificate.
    pub tls_client_ca: Option<PathBuf>,
    /// Serve plain HTTP on an address that is not loopback. Refused
    /// unless set: bearer tokens would cross the network in the clear.
    pub allow_plain_http: bool,
    /// Where `custos ledger serve` publishes the log as C2SP tlog-tiles:
    /// `file:///dir`, `file://./rel`, `s3://bucket[/prefix]` (the `AWS_*`
    /// variables, as `[storage] url`), `off`, or empty (the default): the
    /// directory `<data_dir>-tiles` beside the ledger's sled directory
    /// ([`Config::tiles_url`]).
    pub tiles_url: String,
    /// At most one published checkpoint per this long while entries
    /// arrive: a number with a unit `ms`, `s`, `m` (default `1s`).
    pub checkpoint_interval: String,
    /// Witnesses each new published checkpoint is submitted to
    /// (`[[ledger.witnesses]]`); their cosignatures are added to it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub witnesses: Vec<LedgerWitnessConfig>,
    /// How many witness cosignatures an export's policy file requires
    /// (at most the number of witnesses; default 0).
    pub witness_quorum: u32,
    /// How long the ledger waits for a witness's answer before publishing
    /// without its cosignature (default `1s`).
    pub witness_timeout: String,
}

impl LedgerConfig {
    /// The keys being rotated out: `key_files` after the first.
    pub fn older_key_files(&self) -> &[PathBuf] {
        self.key_files.get(1..).unwrap_or_default()
    }

    /// The SM2 keys being rotated out: `sm2_key_files` after the first.
    pub fn older_sm2_key_files(&self) -> &[PathBuf] {
        self.sm2_key_files.get(1..).unwrap_or_default()
    }

    /// Where the tiles are published (`tiles_url` resolved; `None`: `off`).
    pub fn tiles_url(&self) -> Option<String> {
        match self.tiles_url.trim() {
            "" => Some(format!("file://{}-tiles", self.data_dir.display())),
            t if t.eq_ignore_ascii_case("off") => None,
            t => Some(t.to_owned()),
        }
    }

    /// `witness_timeout` as a duration.
    pub fn witness_wait(&self) -> Result<std::time::Duration, ConfigError> {
        let bad = |why: String| {
            ConfigError::Invalid(format!(
                "ledger.witness_timeout {:?}: {why}",
                self.witness_timeout
            ))
        };
        parse_interval(&self.witness_timeout)
            .map_err(bad)?
            .ok_or_else(|| bad("give a time such as \"1s\"".into()))
    }

    /// `checkpoint_interval` as a duration.
    pub fn checkpoint_every(&self) -> Result<std::time::Duration, ConfigError> {
        let bad = |why: String| {
            ConfigError::Invalid(format!(
                "ledger.checkpoint_interval {:?}: {why}",
                self.checkpoint_interval
            ))
        };
        parse_interval(&self.checkpoint_interval)
            .map_err(bad)?
            .ok_or_else(|| bad("checkpoints are always published; give a time such as \"1s\" (or tiles_url = \"off\")".into()))
    }
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig {
            listen: "127.0.0.1:8700".into(),
            data_dir: "./data/ledger".into(),
            origin: "custos.local/ledger".into(),
            key_file: "./keys/ledger.key".into(),
            key_files: Vec::new(),
            sm2_key_file: "./keys/ledger-sm2.key".into(),
            sm2_key_files: Vec::new(),
            batch_signatures: false,
            report_font: "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc".into(),
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            allow_plain_http: false,
            tiles_url: String::new(),
            checkpoint_interval: "1s".into(),
            witnesses: Vec::new(),
            witness_quorum: 0,
            witness_timeout: "1s".into(),
        }
    }
}

/// What the dock does with a segment on the recorder once it is safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum WipePolicy {
    /// Remove it once verified in storage and acknowledged by the ledger.
    #[default]
    AfterVerified,
    /// Leave it on the recorder.
    Never,
}

/// `[dock]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DockConfig {
    /// Station id.
    pub id: String,
    /// Ed25519 seed that signs manifests and events (when `[crypto]
    /// signatures` holds `ed25519`).
    pub key_file: PathBuf,
    /// SM2 private key (PKCS#8 PEM) that signs manifests and events when
    /// `[crypto] signatures` holds `sm2`.
    pub sm2_key_file: PathBuf,
    /// Journal (sled) and spool.
    pub data_dir: PathBuf,
    /// The ledger's URL; absent = the ledger runs in-process.
    pub ledger_url: Option<String>,
    /// Bearer token of role `dock`.
    pub ledger_token: Option<String>,
    /// Directory of firmware profiles.
    pub profiles_dir: PathBuf,
    /// Wipe policy.
    pub wipe: WipePolicy,
    /// Password of the recorders' vendor unlock sequence (firmware profiles
    /// with an unlock step that sends `{password}`); absent = none set.
    pub unlock_password: Option<String>,
    /// Where `custos dock run` mounts the volumes of USB recorders it
    /// unlocks (one directory per slot). Absolute.
    pub mount_root: PathBuf,
    /// Extra `mount -o` options for recorder volumes (e.g.
    /// `iocharset=utf8`); `nosuid,nodev,noexec` are always added.
    pub mount_options: String,
    /// Directories `custos dock run` watches as slots: a recorder mounted
    /// there by the operating system is ingested like a USB one. Absolute.
    pub slots: Vec<PathBuf>,
    /// Watch USB for recorders (rusb hotplug, or polling).
    pub usb: bool,
    /// Address of the status endpoint of `custos dock run`: the station's
    /// screen at `/`, JSON at `/status`, Prometheus at `/metrics`. Loopback
    /// unless set otherwise.
    pub status_listen: String,
    /// Language of the status screen: `zh-CN` or `en`; absent = the
    /// browser's (English when it asks for it), else zh-CN.
    pub status_language: Option<String>,
    /// A busy slot without progress for this long is flagged stuck (a
    /// number with a unit `s`, `m`, `h` or `d`).
    pub stuck_after: String,
    /// Officer names for the status screen: a text file of `officer_id,name`
    /// lines (`#` starts a comment).
    pub roster: Option<PathBuf>,
    /// Alert when a disk the dock writes to (`data_dir`, a `file://` store)
    /// has less than this percentage free.
    pub disk_min_free_percent: u8,
    /// Segments read and uploaded at once, across all slots.
    pub concurrency: u32,
    /// Multipart part size in MiB (at least 5, the S3 minimum).
    pub part_size_mib: u32,
    /// Compute SM3 digests as well as SHA-256.
    pub sm3: bool,
    /// CA certificates (PEM) trusted for an `https://` `ledger_url` (a
    /// site's private CA); absent = the public web roots.
    pub ledger_ca: Option<PathBuf>,
    /// The station's client certificate (PEM), presented to the ledger
    /// over TLS; required when the ledger sets `tls_client_ca`.
    pub tls_cert: Option<PathBuf>,
    /// The private key of `tls_cert` (PEM).
    pub tls_key: Option<PathBuf>,
}

impl Default for DockConfig {
    fn default() -> Self {
        DockConfig {
            id: "dock-01".into(),
            key_file: "./keys/dock.key".into(),
            sm2_key_file: "./keys/dock-sm2.key".into(),
            data_dir: "./data/dock".into(),
            ledger_url: None,
            ledger_token: None,
            profiles_dir: "./firmware-profiles".into(),
            wipe: WipePolicy::AfterVerified,
            unlock_password: None,
            mount_root: "/run/custos/recorders".into(),
            mount_options: String::new(),
            slots: Vec::new(),
            usb: true,
            status_listen: "127.0.0.1:8710".into(),
            status_language: None,
            stuck_after: "5m".into(),
            roster: None,
            disk_min_free_percent: 5,
            concurrency: 4,
            part_size_mib: 16,
            sm3: false,
            ledger_ca: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl DockConfig {
    /// `stuck_after` as a duration.
    pub fn stuck_after(&self) -> Result<std::time::Duration, ConfigError> {
        let bad = |why: String| {
            ConfigError::Invalid(format!("dock.stuck_after {:?}: {why}", self.stuck_after))
        };
        parse_interval(&self.stuck_after)
            .map_err(bad)?
            .ok_or_else(|| bad("a slot is always watched; give a time such as \"5m\"".into()))
    }
}

/// `[client]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ClientConfig {
    /// The ledger's URL.
    pub ledger_url: Option<String>,
    /// Bearer token.
    pub token: Option<String>,
    /// CA certificates (PEM) trusted for an `https://` `ledger_url` (a
    /// site's private CA); absent = the public web roots.
    pub ledger_ca: Option<PathBuf>,
}

/// `[retention]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Days footage is kept when no category says otherwise (≥ 180).
    pub default_days: u32,
    /// How often `custos ledger serve` runs the retention sweeper: `off`,
    /// or a number with a unit, `s`, `m`, `h` or `d` (default `1d`: daily;
    /// the first sweep runs one interval after start-up).
    pub sweep_interval: String,
    /// Per-category retention in days (each ≥ 180).
    pub categories: BTreeMap<String, u32>,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            default_days: MIN_RETENTION_DAYS,
            sweep_interval: "1d".into(),
            categories: BTreeMap::new(),
        }
    }
}

impl RetentionConfig {
    /// The scheduled sweep's interval; `None` when it is `off`.
    pub fn sweep_every(&self) -> Result<Option<std::time::Duration>, ConfigError> {
        parse_interval(&self.sweep_interval).map_err(|why| {
            ConfigError::Invalid(format!(
                "retention.sweep_interval {:?}: {why}",
                self.sweep_interval
            ))
        })
    }
}

/// `off`, or a positive whole number followed by `ms`, `s`, `m`, `h` or `d`.
fn parse_interval(text: &str) -> Result<Option<std::time::Duration>, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let expected = "expected \"off\" or a number with a unit s, m, h or d (e.g. \"1d\", \"6h\")";
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or(expected)?;
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().map_err(|_| expected)?;
    if unit == "ms" && n > 0 {
        return Ok(Some(std::time::Duration::from_millis(n)));
    }
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(expected.into()),
    };
    if n == 0 {
        return Err("the interval must be longer than zero (use \"off\" to disable)".into());
    }
    let total = n.checked_mul(secs).ok_or("the interval is too long")?;
    Ok(Some(std::time::Duration::from_secs(total)))
}

/// `[access]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// Roles that need an approved access request before viewing or
    /// downloading footage. Every access is logged whatever this says.
    pub approval_required: Vec<String>,
    /// Days an approval stays in force when the supervisor names no end
    /// (1 to 366; default [`DEFAULT_APPROVAL_VALID_DAYS`]).
    pub approval_valid_days: u32,
}

/// Days an approval stays in force by default.
pub const DEFAULT_APPROVAL_VALID_DAYS: u32 = 30;

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            approval_required: vec!["reviewer".into(), "officer".into()],
            approval_valid_days: DEFAULT_APPROVAL_VALID_DAYS,
        }
    }
}

impl Config {
    /// Parse `text`, apply `CUSTOS_<SECTION>_<KEY>` overrides from `env`,
    /// resolve relative paths against `base_dir`, and check the rules.
    pub fn parse<I, K, V>(text: &str, base_dir: &Path, env: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(one_line(&e.to_string())))?;
        // The defaults' types guide how an override's text is read.
        let defaults = toml::Table::try_from(Config::default())
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        for (var, value) in env {
            let (var, value) = (var.as_ref(), value.as_ref());
            let Some(rest) = var.strip_prefix("CUSTOS_") else {
                continue;
            };
            let lower = rest.to_ascii_lowercase();
            let Some((section, key)) = SECTIONS.iter().find_map(|s| {
                lower
                    .strip_prefix(s)
                    .and_then(|k| k.strip_prefix('_'))
                    .filter(|k| !k.is_empty())
                    .map(|k| (*s, k.to_owned()))
            }) else {
                continue;
            };
            let sect = table
                .entry(section)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(sect) = sect else {
                return Err(ConfigError::Invalid(format!("[{section}] is not a table")));
            };
            let hint = sect
                .get(&key)
                .cloned()
                .or_else(|| defaults.get(section).and_then(|s| s.get(&key)).cloned());
            let parsed = override_value(value, hint.as_ref()).map_err(|reason| {
                ConfigError::BadOverride {
                    var: var.to_owned(),
                    reason,
                }
            })?;
            sect.insert(key, parsed);
        }
        let mut config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(one_line(&e.to_string())))?;
        config.resolve_paths(base_dir);
        config.check()?;
        Ok(config)
    }

    /// The dock's key files, one per suite of `[crypto] signatures`, in order.
    pub fn dock_key_files(&self) -> Vec<(crate::keys::Algorithm, &Path)> {
        use crate::keys::Algorithm;
        self.crypto
            .signatures
            .iter()
            .map(|&a| match a {
                Algorithm::Ed25519 => (a, self.dock.key_file.as_path()),
                Algorithm::Sm2 => (a, self.dock.sm2_key_file.as_path()),
            })
            .collect()
    }

    /// The ledger's key files: its Ed25519 key always (the key standard
    /// C2SP verifiers check; with `key_files`, each of them, newest first),
    /// and its SM2 key when `[crypto] signatures` holds `sm2` (with
    /// `sm2_key_files`, each of them, newest first).
    pub fn ledger_key_files(&self) -> Vec<(crate::keys::Algorithm, &Path)> {
        use crate::keys::Algorithm;
        let mut files = vec![(Algorithm::Ed25519, self.ledger.key_file.as_path())];
        files.extend(
            self.ledger
                .older_key_files()
                .iter()
                .map(|p| (Algorithm::Ed25519, p.as_path())),
        );
        if self.crypto.uses(Algorithm::Sm2) {
            files.push((Algorithm::Sm2, self.ledger.sm2_key_file.as_path()));
            files.extend(
                self.ledger
                    .older_sm2_key_files()
                    .iter()
                    .map(|p| (Algorithm::Sm2, p.as_path())),
            );
        }
        files
    }

    fn resolve_paths(&mut self, base: &Path) {
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        abs(&mut self.ledger.data_dir);
        abs(&mut self.ledger.key_file);
        self.ledger.key_files.iter_mut().for_each(abs);
        if let Some(newest) = self.ledger.key_files.first() {
            self.ledger.key_file = newest.clone();
        }
        abs(&mut self.ledger.sm2_key_file);
        self.ledger.sm2_key_files.iter_mut().for_each(abs);
        if let Some(newest) = self.ledger.sm2_key_files.first() {
            self.ledger.sm2_key_file = newest.clone();
        }
        abs(&mut self.dock.sm2_key_file);
        abs(&mut self.ledger.report_font);
        abs(&mut self.dock.key_file);
        abs(&mut self.dock.data_dir);
        abs(&mut self.dock.profiles_dir);
        abs(&mut self.witness.key_file);
        abs(&mut self.witness.state_dir);
        for p in [
            &mut self.ledger.tls_cert,
            &mut self.ledger.tls_key,
            &mut self.ledger.tls_client_ca,
            &mut self.dock.ledger_ca,
            &mut self.dock.tls_cert,
            &mut self.dock.tls_key,
            &mut self.client.ledger_ca,
        ]
        .into_iter()
        .flatten()
        {
            abs(p);
        }
        for url in [&mut self.storage.url, &mut self.ledger.tiles_url] {
            if let Some(rest) = url.strip_prefix("file://") {
                if !rest.starts_with('/') {
                    *url = format!("file://{}", base.join(rest).display());
                }
            }
        }
    }

    fn check(&self) -> Result<(), ConfigError> {
        let suites = &self.crypto.signatures;
        if suites.is_empty() {
            return Err(ConfigError::Invalid(
                "crypto.signatures is empty: name at least one of \"ed25519\", \"sm2\"".into(),
            ));
        }
        if suites
            .iter()
            .enumerate()
            .any(|(i, a)| suites[..i].contains(a))
        {
            return Err(ConfigError::Invalid(
                "crypto.signatures names a suite twice".into(),
            ));
        }
        for (name, files) in [
            ("key_files", &self.ledger.key_files),
            ("sm2_key_files", &self.ledger.sm2_key_files),
        ] {
            if files
                .iter()
                .enumerate()
                .any(|(i, f)| files[..i].contains(f))
            {
                return Err(ConfigError::Invalid(format!(
                    "ledger.{name} names a file twice"
                )));
            }
        }
        let r = &self.retention;
        if r.default_days < MIN_RETENTION_DAYS {
            return Err(ConfigError::RetentionTooShort {
                key: "default_days".into(),
                days: r.default_days,
            });
        }
        for (name, &days) in &r.categories {
            if days < MIN_RETENTION_DAYS {
                return Err(ConfigError::RetentionTooShort {
                    key: format!("categories.{name}"),
                    days,
                });
            }
        }
        r.sweep_every()?;
        self.ledger.checkpoint_every()?;
        self.ledger.witness_wait()?;
        if self.ledger.witness_quorum as usize > self.ledger.witnesses.len() {
            return Err(ConfigError::Invalid(format!(
                "ledger.witness_quorum = {} but only {} witness(es) are configured",
                self.ledger.witness_quorum,
                self.ledger.witnesses.len()
            )));
        }
        if !self.ledger.witnesses.is_empty() && self.ledger.tiles_url().is_none() {
            return Err(ConfigError::Invalid(
                "ledger.witnesses needs the published tiles: the checkpoints the witnesses cosign are the tiles' (tiles_url is \"off\")".into(),
            ));
        }
        for w in &self.ledger.witnesses {
            w.key
                .parse::<crate::cosignature::CosignerKey>()
                .map_err(|e| ConfigError::Invalid(format!("ledger.witnesses: {e}")))?;
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                return Err(ConfigError::Invalid(format!(
                    "ledger.witnesses url {:?}: expected http://host:port or https://...",
                    w.url
                )));
            }
        }
        for log in &self.witness.logs {
            if log.origin.is_empty() || log.keys.is_empty() {
                return Err(ConfigError::Invalid(
                    "witness.logs: each log needs an origin and at least one key".into(),
                ));
            }
            for key in &log.keys {
                key.parse::<crate::keys::VerifierKey>().map_err(|e| {
                    ConfigError::Invalid(format!("witness.logs {:?} key: {e}", log.origin))
                })?;
            }
        }
        self.dock.stuck_after()?;
        if let Some(l) = &self.dock.status_language {
            if !matches!(l.as_str(), "zh-CN" | "en") {
                return Err(ConfigError::Invalid(format!(
                    "dock.status_language {l:?}: expected \"zh-CN\" or \"en\""
                )));
            }
        }
        if self.dock.disk_min_free_percent > 50 {
            return Err(ConfigError::Invalid(format!(
                "dock.disk_min_free_percent = {}: at most 50",
                self.dock.disk_min_free_percent
            )));
        }
        let days = self.access.approval_valid_days;
        if !(1..=366).contains(&days) {
            return Err(ConfigError::Invalid(format!(
                "access.approval_valid_days = {days}: an approval stays in force from 1 to 366 days"
            )));
        }
        let l = &self.ledger;
        match (&l.tls_cert, &l.tls_key) {
            (Some(_), None) => {
                return Err(ConfigError::Invalid(
                    "ledger.tls_cert is set without ledger.tls_key: give both or neither".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError::Invalid(
                    "ledger.tls_key is set without ledger.tls_cert: give both or neither".into(),
                ))
            }
            _ => {}
        }
        if l.tls_client_ca.is_some() && l.tls_cert.is_none() {
            return Err(ConfigError::Invalid(
                "ledger.tls_client_ca needs ledger.tls_cert and ledger.tls_key: client certificates are asked for over TLS only".into(),
            ));
        }
        if self.dock.tls_cert.is_some() != self.dock.tls_key.is_some() {
            return Err(ConfigError::Invalid(
                "dock.tls_cert and dock.tls_key go together: give both or neither".into(),
            ));
        }
        let url = &self.storage.url;
        if !(url.starts_with("file://") || url.starts_with("s3://")) {
            return Err(ConfigError::Invalid(format!(
                "storage.url {url:?}: expected file:///path or s3://bucket[/prefix]"
            )));
        }
        Ok(())
    }
}

/// Read an override's text as the type its key has (from the file, else from
/// the defaults); untyped keys are strings.
fn override_value(text: &str, hint: Option<&toml::Value>) -> Result<toml::Value, String> {
    Ok(match hint {
        Some(toml::Value::Integer(_)) => toml::Value::Integer(
            text.parse()
                .map_err(|_| format!("{text:?} is not an integer"))?,
        ),
        Some(toml::Value::Boolean(_)) => toml::Value::Boolean(
            text.parse()
                .map_err(|_| format!("{text:?} is not true or false"))?,
        ),
        Some(toml::Value::Array(_)) => {
            if text.trim().is_empty() {
                toml::Value::Array(vec![])
            } else {
                toml::Value::Array(
                    text.split(',')
                        .map(|s| toml::Value::String(s.trim().to_owned()))
                        .collect(),
                )
            }
        }
        Some(toml::Value::Table(_)) => {
            return Err("names a table; set its keys in the file instead".into())
        }
        _ => toml::Value::String(text.to_owned()),
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/custos"), env.iter().copied())
    }

    #[test]
    fn example_file_parses() {
        let text = include_str!("../../../config/custos.toml");
        let c = parse(text, &[]).unwrap();
        assert_eq!(c.ledger.listen, "127.0.0.1:8700");
        assert_eq!(c.ledger.data_dir, Path::new("/etc/custos/./data/ledger"));
        assert_eq!(c.storage.url, "file:///etc/custos/./data/objects");
        assert_eq!(c.dock.wipe, WipePolicy::AfterVerified);
        assert_eq!(c.crypto.signatures, [crate::keys::Algorithm::Ed25519]);
    }

    #[test]
    fn tiles_url_and_checkpoint_interval() {
        let c = parse("", &[]).unwrap();
        assert_eq!(
            c.ledger.tiles_url().as_deref(),
            Some("file:///etc/custos/./data/ledger-tiles")
        );
        assert_eq!(
            c.ledger.checkpoint_every().unwrap(),
            std::time::Duration::from_secs(1)
        );
        let c = parse(
            "[ledger]\ntiles_url = \"file://./tiles\"\ncheckpoint_interval = \"250ms\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            c.ledger.tiles_url().as_deref(),
            Some("file:///etc/custos/./tiles")
        );
        assert_eq!(
            c.ledger.checkpoint_every().unwrap(),
            std::time::Duration::from_millis(250)
        );
        let c = parse("[ledger]\ntiles_url = \"off\"\n", &[]).unwrap();
        assert_eq!(c.ledger.tiles_url(), None);
        let c = parse("", &[("CUSTOS_LEDGER_TILES_URL", "s3://b/p")]).unwrap();
        assert_eq!(c.ledger.tiles_url().as_deref(), Some("s3://b/p"));
        for bad in ["often", "0ms", "off", "1x"] {
            let e =
                parse(&format!("[ledger]\ncheckpoint_interval = \"{bad}\"\n"), &[]).unwrap_err();
            assert!(e.to_string().contains("ledger.checkpoint_interval"), "{e}");
        }
    }

    #[test]
    fn ledger_key_rotation() {
        use crate::keys::Algorithm;
        let c = parse(
            "[ledger]\nkey_files = [\"keys/new.key\", \"keys/old.key\"]\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.ledger.key_file, Path::new("/etc/custos/keys/new.key"));
        assert_eq!(
            c.ledger_key_files(),
            [
                (Algorithm::Ed25519, Path::new("/etc/custos/keys/new.key")),
                (Algorithm::Ed25519, Path::new("/etc/custos/keys/old.key")),
            ]
        );
        let c = parse("", &[]).unwrap();
        assert!(c.ledger.older_key_files().is_empty());
        assert_eq!(c.ledger_key_files().len(), 1);
        let err = parse("[ledger]\nkey_files = [\"a.key\", \"a.key\"]\n", &[]).unwrap_err();
        assert!(err.to_string().contains("key_files"), "{err}");

        // The SM2 key rotates the same way, after the Ed25519 keys.
        let c = parse(
            "[crypto]\nsignatures = [\"ed25519\", \"sm2\"]\n[ledger]\nsm2_key_files = [\"keys/sm2-new.key\", \"keys/sm2-old.key\"]\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            c.ledger.sm2_key_file,
            Path::new("/etc/custos/keys/sm2-new.key")
        );
        assert_eq!(
            c.ledger_key_files()[1..],
            [
                (Algorithm::Sm2, Path::new("/etc/custos/keys/sm2-new.key")),
                (Algorithm::Sm2, Path::new("/etc/custos/keys/sm2-old.key")),
            ]
        );
        // Without the suite, no SM2 key is read, rotating or not.
        let c = parse(
            "[ledger]\nsm2_key_files = [\"keys/sm2-new.key\", \"keys/sm2-old.key\"]\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.ledger_key_files().len(), 1);
        let err = parse("[ledger]\nsm2_key_files = [\"a.key\", \"a.key\"]\n", &[]).unwrap_err();
        assert!(err.to_string().contains("sm2_key_files"), "{err}");
    }

    #[test]
    fn crypto_suites() {
        use crate::keys::Algorithm;
        let c = parse("[crypto]\nsignatures = [\"ed25519\", \"sm2\"]\n", &[]).unwrap();
        assert_eq!(c.crypto.signatures, [Algorithm::Ed25519, Algorithm::Sm2]);
        assert_eq!(c.dock_key_files().len(), 2);
        assert_eq!(c.ledger_key_files().len(), 2);
        let c = parse("[crypto]\nsignatures = [\"sm2\"]\n", &[]).unwrap();
        assert_eq!(
            c.dock_key_files(),
            [(Algorithm::Sm2, Path::new("/etc/custos/./keys/dock-sm2.key"))]
        );
        // The ledger keeps its Ed25519 line: standard C2SP verifiers check it.
        assert_eq!(c.ledger_key_files()[0].0, Algorithm::Ed25519);
        for bad in ["[]", "[\"rsa\"]", "[\"sm2\", \"sm2\"]"] {
            let err = parse(&format!("[crypto]\nsignatures = {bad}\n"), &[]).unwrap_err();
            assert!(
                err.to_string().contains("signatures") || err.to_string().contains("rsa"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn env_overrides() {
        let c = parse(
            "[ledger]\nlisten = \"0.0.0.0:1\"\n[retention]\ndefault_days = 200\n",
            &[
                ("CUSTOS_LEDGER_LISTEN", "127.0.0.1:9"),
                ("CUSTOS_DOCK_LEDGER_URL", "http://l:1"),
                ("CUSTOS_RETENTION_DEFAULT_DAYS", "365"),
                ("CUSTOS_ACCESS_APPROVAL_REQUIRED", "reviewer, auditor"),
                ("CUSTOS_DOCK_WIPE", "never"),
                ("CUSTOS_LEDGER_BATCH_SIGNATURES", "true"),
                ("CUSTOS_PYTHON", "/usr/bin/python3"),
                ("HOME", "/root"),
            ],
        )
        .unwrap();
        assert_eq!(c.ledger.listen, "127.0.0.1:9");
        assert_eq!(c.dock.ledger_url.as_deref(), Some("http://l:1"));
        assert_eq!(c.retention.default_days, 365);
        assert_eq!(c.access.approval_required, ["reviewer", "auditor"]);
        assert_eq!(c.dock.wipe, WipePolicy::Never);
        assert!(c.ledger.batch_signatures);
        assert!(!Config::default().ledger.batch_signatures);
    }

    #[test]
    fn refusals_name_the_problem() {
        let e = parse("[ledger]\nlistn = \"x\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("listn"), "{e}");
        let e = parse("[retention]\ndefault_days = 90\n", &[]).unwrap_err();
        assert!(e.to_string().contains("below the minimum of 180"), "{e}");
        let e = parse("[retention.categories]\ntraffic = 30\n", &[]).unwrap_err();
        assert!(e.to_string().contains("categories.traffic"), "{e}");
        let e = parse("", &[("CUSTOS_RETENTION_DEFAULT_DAYS", "lots")]).unwrap_err();
        assert!(
            e.to_string().contains("CUSTOS_RETENTION_DEFAULT_DAYS"),
            "{e}"
        );
        let e = parse("", &[("CUSTOS_LEDGER_NOPE", "1")]).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
        let e = parse("[storage]\nurl = \"ftp://x\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("storage.url"), "{e}");
        assert!(parse("[[[", &[]).is_err());
        let e = parse("[retention]\nsweep_interval = \"often\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("retention.sweep_interval"), "{e}");
        let e = parse("", &[("CUSTOS_RETENTION_SWEEP_INTERVAL", "0h")]).unwrap_err();
        assert!(e.to_string().contains("longer than zero"), "{e}");
    }

    #[test]
    fn sweep_interval_reads_units_and_off() {
        let every = |t: &str| {
            parse(&format!("[retention]\nsweep_interval = \"{t}\"\n"), &[])
                .unwrap()
                .retention
                .sweep_every()
                .unwrap()
        };
        use std::time::Duration;
        assert_eq!(
            Config::default().retention.sweep_every().unwrap(),
            Some(Duration::from_secs(86_400))
        );
        assert_eq!(every("off"), None);
        assert_eq!(every("2s"), Some(Duration::from_secs(2)));
        assert_eq!(every("15m"), Some(Duration::from_secs(900)));
        assert_eq!(every("6h"), Some(Duration::from_secs(21_600)));
        assert_eq!(every("7d"), Some(Duration::from_secs(604_800)));
    }

    #[test]
    fn witnesses_are_checked() {
        let key = "w.example/w1+5b4b3e43+BAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let ok_key = crate::cosignature::CosignerKey::from_public(
            "w.example/w1",
            &[
                0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64,
                0x07, 0x3a, 0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68,
                0xf7, 0x07, 0x51, 0x1a,
            ],
        )
        .unwrap()
        .to_string();
        let with = |url: &str, key: &str, extra: &str| {
            parse(
                &format!(
                    "[ledger]\n{extra}\n[[ledger.witnesses]]\nurl = \"{url}\"\nkey = \"{key}\"\n"
                ),
                &[],
            )
        };
        let c = with("http://w.example:8710", &ok_key, "witness_quorum = 1").unwrap();
        assert_eq!(c.ledger.witnesses.len(), 1);
        assert_eq!(
            c.ledger.witness_wait().unwrap(),
            std::time::Duration::from_secs(1)
        );
        for (url, key, extra, says) in [
            ("http://w.example", key, "", "witness key"),
            ("ftp://w.example", ok_key.as_str(), "", "url"),
            (
                "http://w.example",
                ok_key.as_str(),
                "witness_quorum = 2",
                "witness_quorum",
            ),
            (
                "http://w.example",
                ok_key.as_str(),
                "tiles_url = \"off\"",
                "tiles",
            ),
            (
                "http://w.example",
                ok_key.as_str(),
                "witness_timeout = \"soon\"",
                "witness_timeout",
            ),
        ] {
            let err = with(url, key, extra).unwrap_err().to_string();
            assert!(err.contains(says), "{says}: {err}");
        }
        let bad_log = parse(
            "[witness]\n[[witness.logs]]\norigin = \"o\"\nkeys = [\"nope\"]\n",
            &[],
        )
        .unwrap_err();
        assert!(bad_log.to_string().contains("witness.logs"), "{bad_log}");
    }

    #[test]
    fn tls_settings() {
        let c = parse(
            "[ledger]\ntls_cert = \"tls/ledger.crt\"\ntls_key = \"tls/ledger.key\"\ntls_client_ca = \"/pki/ca.pem\"\n[dock]\nledger_ca = \"ca.pem\"\ntls_cert = \"d.crt\"\ntls_key = \"d.key\"\n[client]\nledger_ca = \"ca.pem\"\n",
            &[("CUSTOS_LEDGER_ALLOW_PLAIN_HTTP", "true")],
        )
        .unwrap();
        assert_eq!(
            c.ledger.tls_cert.as_deref(),
            Some(Path::new("/etc/custos/tls/ledger.crt"))
        );
        assert_eq!(
            c.ledger.tls_client_ca.as_deref(),
            Some(Path::new("/pki/ca.pem"))
        );
        assert_eq!(
            c.dock.ledger_ca.as_deref(),
            Some(Path::new("/etc/custos/ca.pem"))
        );
        assert_eq!(
            c.client.ledger_ca.as_deref(),
            Some(Path::new("/etc/custos/ca.pem"))
        );
        assert!(c.ledger.allow_plain_http);
        assert!(!Config::default().ledger.allow_plain_http);
        for (bad, says) in [
            ("[ledger]\ntls_cert = \"c\"\n", "without ledger.tls_key"),
            ("[ledger]\ntls_key = \"k\"\n", "without ledger.tls_cert"),
            ("[ledger]\ntls_client_ca = \"ca\"\n", "tls_client_ca needs"),
            (
                "[dock]\ntls_cert = \"c\"\n",
                "dock.tls_cert and dock.tls_key",
            ),
        ] {
            let err = parse(bad, &[]).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
