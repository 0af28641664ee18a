//! One module per subcommand; each has an `Args` struct and a `run`.

/// The configuration file every command reads when neither `--config` nor
/// `CUSTOS_CONFIG` names one (where the Debian package installs it).
pub(crate) const DEFAULT_CONFIG: &str = "/etc/custos/custos.toml";

pub(crate) mod audit;
pub(crate) mod backup;
pub(crate) mod coverage;
pub(crate) mod demo;
pub(crate) mod dock;
pub(crate) mod docs;
pub(crate) mod export;
pub(crate) mod hash;
pub(crate) mod keygen;
pub(crate) mod ledger;
pub(crate) mod operator;
pub(crate) mod report;
pub(crate) mod retention;
pub(crate) mod token;
pub(crate) mod verify;
pub(crate) mod verify_tiles;
pub(crate) mod witness;

/// Log to standard error (text, or JSON with `CUSTOS_LOG_FORMAT=json`;
/// colour only on a terminal) at `RUST_LOG`'s filter; when it is unset, at
/// level `default`, and the object store client's retries as well (it
/// logs them as `info`): a command says each time it tries again.
/// Every command calls it once, before it does anything.
pub(crate) fn init_logging(default: &str) {
    if std::env::var_os("RUST_LOG").is_none() {
        // Before any thread is started: main calls this first.
        std::env::set_var(
            "RUST_LOG",
            format!("{default},object_store::client::retry=info"),
        );
    }
    custos_server::serve::init_logging();
}

/// A client of the ledger at `url` (`[client] ledger_url`) with `token`,
/// trusting `[client] ledger_ca` when set; it tries a request again after a
/// failure that may pass ([`custos_client::Retries::COMMAND`]), saying so
/// in a `warn` line.
pub(crate) fn client_with_token(
    cfg: &custos_core::config::Config,
    url: &str,
    token: &str,
) -> anyhow::Result<custos_client::LedgerClient> {
    use anyhow::Context as _;
    let tls = custos_client::ClientTls::from_files(
        "[client]",
        cfg.client.ledger_ca.as_deref(),
        None,
        None,
    )?;
    custos_client::LedgerClient::configured(url, Some(token), custos_client::DEFAULT_TIMEOUT, &tls)
        .map(|c| c.retrying(custos_client::Retries::COMMAND))
        .with_context(|| format!("[client] ledger_url {url}"))
}

/// `path` created (truncated) for writing, behind a 1 MiB buffer: where a
/// streamed bundle or backup lands before it is checked and renamed.
pub(crate) fn create_buffered(
    path: &std::path::Path,
) -> anyhow::Result<std::io::BufWriter<std::fs::File>> {
    use anyhow::Context as _;
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    Ok(std::io::BufWriter::with_capacity(1 << 20, file))
}

/// A small runtime for a command that talks to the ledger over HTTP.
pub(crate) fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context as _;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")
}
