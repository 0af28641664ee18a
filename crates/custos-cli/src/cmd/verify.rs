//! `custos verify bundle FILE.tar (--ledger-key FILE.pub... | --trusted-keys DIR)` and
//! `custos verify log --ledger URL --ledger-key FILE.pub... [--checkpoint FILE]...`
//! (and `--tiles URL|DIR [--state DIR]` instead of `--ledger`: the log read
//! from its published tiles, [`super::verify_tiles`]).
//!
//! `verify bundle` is offline: it streams the tar through
//! [`custos_core::bundle`]'s verifier (footage hashed as it passes, with a
//! progress bar when standard error is a terminal) and prints a short
//! report. `verify log` fetches a ledger's checkpoint and every entry,
//! recomputes the Merkle tree, walks the prev chain, checks each dock-signed
//! event against the key registered for that dock earlier in the log, and,
//! given an older checkpoint the auditor kept, proves the log only grew
//! since.
//!
//! Exit codes: 0 valid, 1 invalid (one line on standard error names the
//! file, entry or checkpoint at fault), 2 cannot read or reach, or bad usage.
//! Neither command ever trusts a ledger key it was not given: `verify
//! bundle` without a pinned key runs every other check, says the origin is
//! unverified and exits 1 (anyone can make a bundle consistent with itself
//! with a key pair of their own), and `verify log` refuses to run without
//! `--ledger-key`. Everything printed from a bundle has its control
//! characters escaped ([`bundle::escape_control`]): member names are input.

use std::io::{BufReader, IsTerminal as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use custos_client::LedgerClient;
use custos_core::bundle::{self, BundleError, Origin, Report};
use custos_core::checkpoint::Checkpoint;
use custos_core::keys::{Algorithm, VerifierKey};
use custos_core::log::{self, LogProblem, LogVerifier};
use indicatif::{ProgressBar, ProgressStyle};

/// Arguments of `custos verify`.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    #[command(subcommand)]
    command: VerifyCommand,
}

#[derive(Debug, clap::Subcommand)]
enum VerifyCommand {
    /// Verify an export bundle offline: footage against manifests, every
    /// signature, the entries' chain and inclusion proofs, the checkpoint
    /// against a ledger key you pinned. Exit 0 valid, 1 invalid (or no
    /// pinned key: origin unverified), 2 cannot read.
    Bundle {
        /// The bundle (a tar file).
        #[arg(value_name = "FILE.tar")]
        file: PathBuf,
        /// A ledger public key obtained out of band (repeatable: the
        /// checkpoint must be signed by one of them). Without any pinned
        /// key the origin is unverified and the bundle is not valid.
        #[arg(long, value_name = "FILE.pub")]
        ledger_key: Vec<PathBuf>,
        /// A directory of trusted ledger public keys (its *.pub files).
        #[arg(long, value_name = "DIR")]
        trusted_keys: Option<PathBuf>,
        /// Fail unless this suite (ed25519 or sm2) verified: a pinned ledger
        /// key of it signed the checkpoint, and a dock key of it signed
        /// every manifest and event. Repeatable.
        #[arg(long, value_name = "SUITE")]
        require: Vec<Algorithm>,
        /// A trust policy file (ledger key, witnesses, quorum): every entry
        /// must also be proven by a tlog-proof under a checkpoint cosigned
        /// by the policy's quorum of witnesses. Its log keys are pinned as
        /// --ledger-key.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
    },
    /// Verify a ledger's whole log: every entry, the prev chain, the tree
    /// root against the signed checkpoint, and consistency with an older
    /// checkpoint. Exit 0 valid, 1 invalid, 2 cannot reach or bad usage.
    Log {
        /// The ledger's base URL (http(s)://host:port).
        #[arg(
            long,
            value_name = "URL",
            required_unless_present = "tiles",
            conflicts_with = "tiles"
        )]
        ledger: Option<String>,
        /// Read the log from its published C2SP tlog-tiles instead of the
        /// API (no token): a directory, file:///dir, s3://bucket[/prefix]
        /// (the AWS_* variables, as for [storage] url) or an http(s):// URL
        /// (a web server or CDN in front of the bucket). Every tile and the
        /// root are recomputed from the entry bundles.
        #[arg(long, value_name = "URL|DIR", conflicts_with_all = ["checkpoint", "token"])]
        tiles: Option<String>,
        /// With --tiles: keep the last verified checkpoint in DIR, and
        /// require the next run's log to extend it (a fork is refused).
        #[arg(long, value_name = "DIR", requires = "tiles")]
        state: Option<PathBuf>,
        /// With --tiles: a trust policy file (log key, witnesses, quorum);
        /// the published checkpoint must carry the quorum of valid witness
        /// cosignatures. Its log keys count as --ledger-key.
        #[arg(long, value_name = "FILE", requires = "tiles")]
        policy: Option<PathBuf>,
        /// An older signed checkpoint you kept; the log must extend it.
        /// Repeatable: the log must extend each.
        #[arg(long, value_name = "FILE")]
        checkpoint: Vec<PathBuf>,
        /// The ledger's public key, obtained out of band (required; Ed25519
        /// or SM2). Repeatable: the checkpoint (and --checkpoint) must be
        /// signed by one of them, as a ledger's old and new key are while
        /// its key is rotated.
        #[arg(long, value_name = "FILE.pub")]
        ledger_key: Vec<PathBuf>,
        /// Fail unless the checkpoint carries a verified signature of this
        /// suite (ed25519 or sm2) by a key given. Repeatable.
        #[arg(long, value_name = "SUITE")]
        require: Vec<Algorithm>,
        /// The checkpoint origin to expect (e.g. custos.example.org/ledger).
        #[arg(long)]
        origin: Option<String>,
        /// A bearer token allowed to read entries (e.g. role auditor).
        #[arg(long, env = "CUSTOS_CLIENT_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// CA certificates (PEM) to trust for an https:// ledger (a site's
        /// private CA) instead of the public web roots.
        #[arg(long, value_name = "FILE.pem", env = "CUSTOS_CLIENT_LEDGER_CA")]
        ledger_ca: Option<PathBuf>,
    },
}

pub(crate) fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        VerifyCommand::Bundle {
            file,
            ledger_key,
            trusted_keys,
            require,
            policy,
        } => {
            let mut trusted = Vec::new();
            for path in &ledger_key {
                trusted.push(read_key(path)?);
            }
            if let Some(dir) = &trusted_keys {
                trusted.extend(read_key_dir(dir)?);
            }
            let policy = policy.map(|p| read_policy(&p)).transpose()?;
            if let Some(policy) = &policy {
                for key in policy.logs() {
                    if !trusted.contains(key) {
                        trusted.push(key.clone());
                    }
                }
            }
            verify_bundle(&file, &trusted, &require, policy.as_ref())
        }
        VerifyCommand::Log {
            ledger,
            tiles,
            state,
            policy,
            checkpoint,
            ledger_key,
            origin,
            token,
            require,
            ledger_ca,
        } => {
            let policy = policy.map(|p| read_policy(&p)).transpose()?;
            if ledger_key.is_empty() && policy.is_none() {
                eprintln!(
                    "custos: verify log needs --ledger-key FILE.pub: the checkpoint must be checked against a ledger key you obtained yourself, never one the server hands out"
                );
                return Ok(ExitCode::from(2));
            }
            let mut keys = ledger_key
                .iter()
                .map(|p| read_key(p))
                .collect::<anyhow::Result<Vec<_>>>()?;
            if let Some(policy) = &policy {
                keys.extend(policy.logs().iter().cloned());
            }
            for suite in &require {
                if !keys.iter().any(|k| k.algorithm() == *suite) {
                    eprintln!("custos: --require {suite} needs a --ledger-key of that suite");
                    return Ok(ExitCode::from(2));
                }
            }
            if let Some(tiles) = tiles {
                return crate::cmd::verify_tiles::verify_tiles(
                    crate::cmd::verify_tiles::TilesArgs {
                        location: tiles,
                        state,
                        keys,
                        require,
                        origin,
                        policy,
                    },
                );
            }
            verify_log(LogArgs {
                // clap requires --ledger when --tiles is absent.
                url: ledger.unwrap_or_default(),
                old: checkpoint,
                keys,
                require,
                origin,
                token,
                ledger_ca,
            })
        }
    }
}

/// Read a trust policy file ([`custos_core::policy`]).
pub(crate) fn read_policy(path: &Path) -> anyhow::Result<custos_core::policy::Policy> {
    let bytes = std::fs::read(path).with_context(|| format!("policy {}", path.display()))?;
    custos_core::policy::Policy::parse(&bytes).with_context(|| format!("policy {}", path.display()))
}

/// Read a `.pub` verifier-key file.
fn read_key(path: &Path) -> anyhow::Result<VerifierKey> {
    VerifierKey::load(path).with_context(|| format!("ledger key {}", path.display()))
}

/// Every `*.pub` file in `dir` (not its subdirectories), in name order; a
/// directory without one is an error, so that a wrong path is not taken for
/// "no key pinned".
fn read_key_dir(dir: &Path) -> anyhow::Result<Vec<VerifierKey>> {
    let mut paths = Vec::new();
    for item in std::fs::read_dir(dir).with_context(|| format!("trusted keys {}", dir.display()))? {
        let item = item.with_context(|| format!("trusted keys {}", dir.display()))?;
        let path = item.path();
        if path.extension().is_some_and(|e| e == "pub") && path.is_file() {
            paths.push(path);
        }
    }
    if paths.is_empty() {
        anyhow::bail!(
            "trusted keys {}: no .pub file in the directory",
            dir.display()
        );
    }
    paths.sort();
    paths.iter().map(|p| read_key(p)).collect()
}

/// A byte or entry progress bar on standard error, only when it is a terminal.
fn progress_bar(len: u64, template: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

// ---------------------------------------------------------------------------
// verify bundle

fn verify_bundle(
    path: &Path,
    trusted: &[VerifierKey],
    require: &[Algorithm],
    policy: Option<&custos_core::policy::Policy>,
) -> anyhow::Result<ExitCode> {
    let file = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = progress_bar(
        len,
        "{spinner} verifying {bytes}/{total_bytes} [{wide_bar}] {bytes_per_sec}, {eta} left",
    );
    let reader = BufReader::with_capacity(1 << 20, file);
    let result =
        bundle::verify_with_policy(reader, trusted, policy, &mut |done| bar.set_position(done));
    bar.finish_and_clear();
    let shown = safe(&path.display().to_string());
    match result {
        Ok(report) if report.is_valid() => {
            print_report(&shown, &report);
            for suite in require {
                let where_missing = if !report.checkpoint_suites.contains(suite) {
                    Some("the checkpoint has no verified signature by a pinned ledger key of that suite")
                } else if !report.envelope_suites.contains(suite) {
                    Some("not every manifest and event has a verified dock signature of that suite")
                } else {
                    None
                };
                if let Some(why) = where_missing {
                    eprintln!("custos: {shown}: INVALID: --require {suite}: {why}");
                    return Ok(ExitCode::from(1));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Ok(report) => {
            print_report(&shown, &report);
            eprintln!(
                "custos: {shown}: origin unverified: every other check passed, but no ledger key was pinned, so nothing shows which ledger signed the checkpoint (anyone can make such a bundle with a key pair of their own); verify with --ledger-key FILE.pub or --trusted-keys DIR"
            );
            Ok(ExitCode::from(1))
        }
        Err(err) if err.is_unreadable() => {
            let err = match err {
                // The OS error is the message; say which file.
                BundleError::Io(e) => format!("reading: {e}"),
                other => other.to_string(),
            };
            eprintln!("custos: {shown}: {}", safe(&err));
            Ok(ExitCode::from(2))
        }
        Err(err) => {
            eprintln!("custos: {shown}: INVALID: {}", safe(&err.to_string()));
            Ok(ExitCode::from(1))
        }
    }
}

/// Text from a bundle (or naming one) as it may be printed: control
/// characters escaped, so a hostile member name cannot move the cursor or
/// start a fake report line.
fn safe(text: &str) -> String {
    bundle::escape_control(text).into_owned()
}

fn print_report(shown: &str, report: &Report) {
    if report.is_valid() {
        println!("{shown}: valid");
    } else {
        println!("{shown}: NOT VERIFIED: origin unverified (no pinned ledger key); every other check passed");
    }
    println!(
        "  segments    {} ({} bytes of footage, every SHA-256 matches its signed manifest)",
        report.segments.len(),
        report.footage_bytes
    );
    for s in &report.segments {
        let sm3 = if s.sm3_checked { ", SM3 checked" } else { "" };
        println!(
            "    {}  {}  {} bytes  {}{sm3}",
            safe(&s.segment_id),
            safe(&s.footage),
            s.size,
            s.sha256
        );
    }
    println!(
        "  entries     {} (export entry seq {}), each proven in the log, chain intact",
        report.entries, report.export_seq
    );
    println!(
        "  checkpoint  {} size {} root {} (at the export entry)",
        safe(report.checkpoint.origin()),
        report.checkpoint.size(),
        report.checkpoint.root()
    );
    match &report.origin {
        Origin::Pinned { key_id } => {
            println!("  ledger key  {} (pinned)", safe(key_id));
        }
        Origin::Unverified {
            signers,
            bundle_key,
        } => {
            let claims = if signers.is_empty() {
                "no signature".to_owned()
            } else {
                format!("signatures claiming {}", safe(&signers.join(", ")))
            };
            let own = match bundle_key {
                Some(k) => format!(
                    "; {} in the bundle's own keys/ verifies it, which proves nothing",
                    safe(k)
                ),
                None => String::new(),
            };
            println!("  ledger key  NOT PINNED: the checkpoint carries {claims}{own}");
        }
        _ => println!("  ledger key  unknown"),
    }
    if let Some(w) = &report.witnessed {
        match w.quorum {
            Some(quorum) => println!(
                "  witnesses   every entry proven by a tlog-proof under the checkpoint of size {} cosigned by {} (the policy's quorum: {quorum})",
                w.size,
                if w.witnesses.is_empty() {
                    "no witness".to_owned()
                } else {
                    safe(&w.witnesses.join(", "))
                }
            ),
            None => println!(
                "  tlog-proofs {} entries proven under the checkpoint of size {} (witness cosignatures not checked: no --policy)",
                w.proofs, w.size
            ),
        }
    }
    println!("  dock keys   {}", safe(&report.signing_keys.join(", ")));
    let names = |suites: &[Algorithm]| {
        if suites.is_empty() {
            "none".to_owned()
        } else {
            suites
                .iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    println!(
        "  suites      checkpoint: {}; every manifest and event: {}",
        names(&report.checkpoint_suites),
        names(&report.envelope_suites)
    );
    for (path, sha256) in &report.documents {
        println!(
            "  document    {}  {sha256} (as the export entry names)",
            safe(path)
        );
    }
    for w in &report.warnings {
        println!("warning: {}", safe(w));
    }
}

// ---------------------------------------------------------------------------
// verify log

struct LogArgs {
    url: String,
    /// Older checkpoints the auditor kept.
    old: Vec<PathBuf>,
    /// The pinned ledger keys: a checkpoint is the ledger's when any of
    /// them signed it (several keys of one suite: a key rotation).
    keys: Vec<VerifierKey>,
    /// Suites one of whose pinned keys must have signed the checkpoint.
    require: Vec<Algorithm>,
    origin: Option<String>,
    token: Option<String>,
    ledger_ca: Option<PathBuf>,
}

/// Open a signed checkpoint with whichever pinned keys signed it: the
/// checkpoint and those keys, or why none did.
fn open_pinned<'k>(
    signed: &[u8],
    args: &'k LogArgs,
) -> Result<(Checkpoint, Vec<&'k VerifierKey>), String> {
    open_with_keys(signed, &args.keys, &args.require, args.origin.as_deref())
}

/// [`open_pinned`] with its parts: the pinned `keys`, the suites that
/// must have signed, the origin to expect.
pub(crate) fn open_with_keys<'k>(
    signed: &[u8],
    keys: &'k [VerifierKey],
    require: &[Algorithm],
    origin: Option<&str>,
) -> Result<(Checkpoint, Vec<&'k VerifierKey>), String> {
    let mut opened = None;
    let mut by = Vec::new();
    let mut last_error = None;
    for key in keys {
        match Checkpoint::open(signed, key, origin) {
            Ok(c) => {
                opened.get_or_insert(c);
                by.push(key);
            }
            Err(e) => last_error = Some(e),
        }
    }
    let ids = || {
        keys.iter()
            .map(VerifierKey::key_id)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(checkpoint) = opened else {
        return Err(match last_error {
            Some(e) if keys.len() == 1 => {
                format!("does not open with ledger key {}: {e}", ids())
            }
            _ => format!("does not open with any pinned ledger key ({})", ids()),
        });
    };
    for suite in require {
        if !by.iter().any(|k| k.algorithm() == *suite) {
            return Err(format!(
                "no pinned {suite} ledger key signed it (--require {suite})"
            ));
        }
    }
    Ok((checkpoint, by))
}

/// How `verify log` ended when it did not fail to run.
enum Outcome {
    /// Everything checked out.
    Valid(String),
    /// A check failed: what and where.
    Invalid(String),
}

fn verify_log(args: LogArgs) -> anyhow::Result<ExitCode> {
    // The older checkpoints first: a file of ours that does not open is the
    // auditor's problem to see before any network traffic.
    let mut old = Vec::with_capacity(args.old.len());
    for path in &args.old {
        let text = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
        match open_pinned(&text, &args) {
            Ok((c, _)) => old.push((path.clone(), c)),
            Err(why) => {
                eprintln!("custos: {}: INVALID: {why}", path.display());
                return Ok(ExitCode::from(1));
            }
        }
    }
    let mut tls = custos_client::ClientTls::default();
    if let Some(ca) = &args.ledger_ca {
        tls = tls.trust_ca("--ledger-ca", ca)?;
    }
    let client = LedgerClient::configured(
        &args.url,
        args.token.as_deref(),
        custos_client::DEFAULT_TIMEOUT,
        &tls,
    )
    .with_context(|| format!("ledger {}", args.url))?
    .retrying(custos_client::Retries::COMMAND);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the HTTP client")?;
    match runtime.block_on(check_log(&client, &args, old))? {
        Outcome::Valid(report) => {
            println!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        Outcome::Invalid(why) => {
            eprintln!("custos: ledger {}: INVALID: {why}", args.url);
            Ok(ExitCode::from(1))
        }
    }
}

/// Fetch everything and let custos-core's [`LogVerifier`] check it; `Err`
/// only when the ledger cannot be read.
async fn check_log(
    client: &LedgerClient,
    args: &LogArgs,
    old: Vec<(PathBuf, Checkpoint)>,
) -> anyhow::Result<Outcome> {
    let signed = client.checkpoint().await?;
    let (checkpoint, signed_by) = match open_pinned(signed.as_bytes(), args) {
        Ok(opened) => opened,
        Err(why) => return Ok(Outcome::Invalid(format!("checkpoint: {why}"))),
    };
    let size = checkpoint.size();
    let old_sizes: Vec<u64> = old.iter().map(|(_, c)| c.size()).collect();
    let mut verifier = match LogVerifier::new(&checkpoint, &old_sizes) {
        Ok(v) => v,
        Err(LogProblem::Shrank { size, old_size }) => {
            let path = old
                .iter()
                .find(|(_, c)| c.size() == old_size)
                .map(|(p, _)| p.display().to_string());
            return Ok(Outcome::Invalid(format!(
                "checkpoint: size {size} is smaller than {old_size} in {}: the log shrank",
                path.unwrap_or_default()
            )));
        }
        Err(problem) => return Ok(Outcome::Invalid(problem.to_string())),
    };

    let bar = progress_bar(
        size,
        "{spinner} verifying entries {pos}/{len} [{wide_bar}] {per_sec}, {eta} left",
    );
    while let Some(start) = verifier.next_seq() {
        let lines = client.entries(start, Some(size)).await?;
        if lines.is_empty() {
            bar.finish_and_clear();
            return Ok(Outcome::Invalid(verifier.nothing_served().to_string()));
        }
        for line in &lines {
            if let Err(problem) = verifier.push(line) {
                bar.finish_and_clear();
                return Ok(Outcome::Invalid(problem.to_string()));
            }
            bar.set_position(verifier.checked());
        }
    }
    bar.finish_and_clear();
    let summary = match verifier.finish() {
        Ok(s) => s,
        Err(problem) => return Ok(Outcome::Invalid(problem.to_string())),
    };

    let mut suites: Vec<&str> = signed_by.iter().map(|k| k.algorithm().as_str()).collect();
    suites.dedup();
    let mut report = format!(
        "ledger {}: valid\n  log         {} size {} root {}\n  ledger key  {} (pinned with --ledger-key)\n  suites      checkpoint: {}\n  entries     {size}, prev chain intact, tree recomputed, {} dock-signed events verified under their registered keys",
        args.url,
        checkpoint.origin(),
        size,
        checkpoint.root(),
        signed_by
            .iter()
            .map(|k| k.key_id())
            .collect::<Vec<_>>()
            .join(", "),
        suites.join(", "),
        summary.signed_events,
    );
    for (path, old) in old {
        let hashes = if log::needs_consistency_proof(&old, &checkpoint) {
            client
                .consistency_proof(old.size(), checkpoint.size())
                .await?
                .hashes
        } else {
            Vec::new()
        };
        if let Err(problem) =
            log::check_consistency(&old, &checkpoint, summary.root_at(old.size()), &hashes)
        {
            return Ok(Outcome::Invalid(format!("{}: {problem}", path.display())));
        }
        report.push_str(&format!(
            "\n  consistent  with {} (size {}): the log only grew since",
            path.display(),
            old.size()
        ));
    }
    Ok(Outcome::Valid(report))
}
