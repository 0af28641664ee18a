//! `custos verify log --tiles URL|DIR --ledger-key FILE.pub... [--policy FILE] [--state DIR]`:
//! the auditor's check of a log from its published C2SP tlog-tiles alone
//! (no token, no API).
//!
//! 1. The `checkpoint` must open with a pinned ledger key
//!    ([`super::verify::open_with_keys`], the rules of `verify log`).
//!    With `--policy`, it must also carry the policy's quorum of valid
//!    witness cosignatures ([`custos_core::policy::Policy::verify`]).
//! 2. With `--state`, the checkpoint kept there by the last valid run must
//!    open too, be of the same log and not be larger.
//! 3. Every entry bundle the checkpoint's size has is read in order, and
//!    each entry checked as `verify log` checks it (custos-core's
//!    [`LogVerifier`]: seq, canonical bytes, the prev chain, dock-signed
//!    events under keys registered earlier in the log).
//! 4. The leaf hashes rebuild every hash tile ([`TileBuilder`]); each must
//!    be byte for byte the published one, which is named when it is not.
//! 5. The recomputed root must be the checkpoint's, and the recomputed root
//!    at the kept checkpoint's size that one's: otherwise the log forked.
//! 6. With `--state`, the new checkpoint is kept (written to a temporary
//!    file, then renamed over the old one).
//!
//! Exit codes as `verify log`'s: 0 valid, 1 invalid (one line naming the
//! tile, bundle, entry or checkpoint), 2 cannot read.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use custos_core::keys::{Algorithm, VerifierKey};
use custos_core::log::{LogProblem, LogVerifier};
use custos_core::merkle::leaf_hash;
use custos_core::tiles::{bundles, parse_bundle, parse_tile, TileBuilder, TileId, CHECKPOINT_PATH};
use custos_core::wire::EntryLine;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt as _};

use super::verify::open_with_keys;

/// What `verify log --tiles` was given.
pub(crate) struct TilesArgs {
    /// A directory, `file:///dir`, `s3://bucket[/prefix]` or an
    /// `http(s)://` URL (a web server or CDN in front of the bucket).
    pub location: String,
    /// Where the last verified checkpoint is kept.
    pub state: Option<PathBuf>,
    /// The pinned ledger keys.
    pub keys: Vec<VerifierKey>,
    /// Suites one of whose pinned keys must have signed.
    pub require: Vec<Algorithm>,
    /// The origin to expect.
    pub origin: Option<String>,
    /// The trust policy whose witness quorum the checkpoint must meet.
    pub policy: Option<custos_core::policy::Policy>,
}

/// The file in `--state DIR` holding the last verified checkpoint.
const STATE_FILE: &str = "checkpoint";

/// Why a run stopped: the log is invalid (exit 1) or cannot be read (2).
enum Stop {
    Invalid(String),
    Unreadable(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Stop {
    fn from(e: E) -> Stop {
        Stop::Unreadable(e.into())
    }
}

pub(crate) fn verify_tiles(args: TilesArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(&args.location)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    match runtime.block_on(check(&*store, &args)) {
        Ok(report) => {
            println!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        Err(Stop::Invalid(why)) => {
            eprintln!("custos: tiles {}: INVALID: {why}", args.location);
            Ok(ExitCode::from(1))
        }
        Err(Stop::Unreadable(e)) => Err(e.context(format!("tiles {}", args.location))),
    }
}

/// The store behind `location`. A directory must exist: a mistyped path is
/// "cannot read", never an empty log.
fn open_store(location: &str) -> anyhow::Result<Arc<dyn ObjectStore>> {
    if location.starts_with("http://") || location.starts_with("https://") {
        // A web server or CDN in front of the bucket: plain GETs, a 404 for
        // a missing tile. Plain http is allowed: the tiles are public and
        // every byte is checked against the signed checkpoint.
        let options = object_store::ClientOptions::new().with_allow_http(true);
        let store = object_store::http::HttpBuilder::new()
            .with_url(location.trim_end_matches('/'))
            .with_client_options(options)
            .build()
            .with_context(|| format!("tiles {location}"))?;
        return Ok(Arc::new(store));
    }
    if location.starts_with("s3://") {
        let store = custos_ingest::IngestStore::from_url(location)
            .with_context(|| format!("tiles {location}"))?;
        return Ok(store.object_store().clone());
    }
    let dir = Path::new(location.strip_prefix("file://").unwrap_or(location));
    if !dir.is_dir() {
        anyhow::bail!("tiles {location}: not a directory");
    }
    let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)
        .with_context(|| format!("tiles {location}"))?;
    Ok(Arc::new(fs))
}

/// One object's bytes; `Ok(None)` when it does not exist.
async fn read(store: &dyn ObjectStore, path: &str) -> Result<Option<Vec<u8>>, Stop> {
    match store.get(&StorePath::from(path)).await {
        Ok(got) => Ok(Some(
            got.bytes().await.with_context(|| path.to_owned())?.to_vec(),
        )),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(Stop::Unreadable(
            anyhow::Error::new(e).context(path.to_owned()),
        )),
    }
}

/// An object the checkpoint needs: its absence makes the log invalid.
async fn read_needed(store: &dyn ObjectStore, path: &str, size: u64) -> Result<Vec<u8>, Stop> {
    read(store, path).await?.ok_or_else(|| {
        Stop::Invalid(format!(
            "{path} is missing, but the checkpoint of size {size} needs it"
        ))
    })
}

/// Compare a rebuilt tile with the published one.
async fn check_tile(
    store: &dyn ObjectStore,
    id: TileId,
    rebuilt: &[custos_core::merkle::Hash],
    size: u64,
) -> Result<(), Stop> {
    let path = id.path();
    let bytes = read_needed(store, &path, size).await?;
    let published = parse_tile(id, &bytes).map_err(|e| Stop::Invalid(e.to_string()))?;
    if published != rebuilt {
        return Err(Stop::Invalid(format!(
            "{path} does not hold the hashes of the entries below it: the tile was altered"
        )));
    }
    Ok(())
}

async fn check(store: &dyn ObjectStore, args: &TilesArgs) -> Result<String, Stop> {
    // Step 2's file first: the auditor's own state is read before the store.
    let kept = match &args.state {
        Some(dir) => {
            let path = dir.join(STATE_FILE);
            match std::fs::read(&path) {
                Ok(bytes) => {
                    let (old, _) = open_with_keys(&bytes, &args.keys, &[], args.origin.as_deref())
                        .map_err(|why| Stop::Invalid(format!("{}: {why}", path.display())))?;
                    Some((path, old))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    return Err(Stop::Unreadable(
                        anyhow::Error::new(e).context(path.display().to_string()),
                    ))
                }
            }
        }
        None => None,
    };
    // Step 1.
    let signed = read(store, CHECKPOINT_PATH)
        .await?
        .ok_or_else(|| Stop::Unreadable(anyhow::anyhow!("no {CHECKPOINT_PATH} object")))?;
    let (checkpoint, signed_by) =
        open_with_keys(&signed, &args.keys, &args.require, args.origin.as_deref())
            .map_err(|why| Stop::Invalid(format!("{CHECKPOINT_PATH}: {why}")))?;
    let size = checkpoint.size();
    let witnessed = match &args.policy {
        Some(policy) => {
            let verified = policy
                .verify(&signed)
                .map_err(|why| Stop::Invalid(format!("{CHECKPOINT_PATH}: {why}")))?;
            Some(format!(
                "\n  witnesses   {} of the policy's quorum {} cosigned: {}",
                verified.witnesses.len(),
                policy.quorum(),
                if verified.witnesses.is_empty() {
                    "none".to_owned()
                } else {
                    verified.witnesses.join(", ")
                }
            ))
        }
        None => None,
    };
    if let Some((path, old)) = &kept {
        if old.origin() != checkpoint.origin() {
            return Err(Stop::Invalid(format!(
                "{CHECKPOINT_PATH} is for log {:?}, {} for {:?}",
                checkpoint.origin(),
                path.display(),
                old.origin()
            )));
        }
    }
    let mut verifier =
        LogVerifier::new(&checkpoint, kept.as_ref().map(|(_, c)| c.size()).as_slice()).map_err(
            |problem| match (problem, &kept) {
                (LogProblem::Shrank { size, old_size }, Some((path, _))) => Stop::Invalid(format!(
                "{CHECKPOINT_PATH}: size {size} is smaller than {old_size} in {}: the log shrank",
                path.display()
            )),
                (problem, _) => Stop::Invalid(problem.to_string()),
            },
        )?;
    // Steps 3 and 4.
    let mut builder = TileBuilder::new();
    let mut tiles_checked = 0u64;
    let mut bundles_read = 0u64;
    for bundle in bundles(size) {
        let path = bundle.path();
        let bytes = read_needed(store, &path, size).await?;
        let entries = parse_bundle(bundle, &bytes).map_err(|e| Stop::Invalid(e.to_string()))?;
        bundles_read += 1;
        for (i, raw) in entries.iter().enumerate() {
            let seq = bundle.first_seq() + i as u64;
            let line =
                EntryLine::new(seq, raw).map_err(|e| Stop::Invalid(format!("{path}: {e}")))?;
            verifier
                .push(&line)
                .map_err(|problem| Stop::Invalid(format!("{path}: {problem}")))?;
            for (id, hashes) in builder.push(leaf_hash(raw)) {
                check_tile(store, id, &hashes, size).await?;
                tiles_checked += 1;
            }
        }
    }
    for (id, hashes) in builder.partial_tiles() {
        check_tile(store, id, &hashes, size).await?;
        tiles_checked += 1;
    }
    // Step 5.
    let summary = verifier
        .finish()
        .map_err(|problem| Stop::Invalid(format!("{CHECKPOINT_PATH}: {problem}")))?;
    let mut report = format!(
        "tiles {}: valid\n  log         {} size {size} root {}\n  ledger key  {} (pinned with --ledger-key)\n  entries     {size} in {bundles_read} entry bundles, prev chain intact, {} dock-signed events verified under their registered keys\n  tiles       {tiles_checked} hash tiles recomputed from the entries, root recomputed",
        args.location,
        checkpoint.origin(),
        checkpoint.root(),
        signed_by
            .iter()
            .map(|k| k.key_id())
            .collect::<Vec<_>>()
            .join(", "),
        summary.signed_events,
    );
    if let Some(line) = witnessed {
        report.push_str(&line);
    }
    if let Some((path, old)) = &kept {
        if summary.root_at(old.size()) != Some(old.root()) {
            return Err(Stop::Invalid(format!(
                "{CHECKPOINT_PATH} of size {size} does not extend the checkpoint of size {} kept in {}: the log forked",
                old.size(),
                path.display()
            )));
        }
        report.push_str(&format!(
            "\n  consistent  with {} (size {}): the log only grew since",
            path.display(),
            old.size()
        ));
    }
    // Step 6.
    if let Some(dir) = &args.state {
        keep(dir, &signed)?;
    }
    Ok(report)
}

/// Step 6: keep `signed` as the last verified checkpoint.
fn keep(dir: &Path, signed: &[u8]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("state {}", dir.display()))?;
    let tmp = dir.join(format!("{STATE_FILE}.tmp"));
    std::fs::write(&tmp, signed).with_context(|| format!("{}", tmp.display()))?;
    let file = std::fs::File::open(&tmp).with_context(|| format!("{}", tmp.display()))?;
    file.sync_all()
        .with_context(|| format!("{}", tmp.display()))?;
    let path = dir.join(STATE_FILE);
    std::fs::rename(&tmp, &path).with_context(|| format!("{}", path.display()))?;
    Ok(())
}
