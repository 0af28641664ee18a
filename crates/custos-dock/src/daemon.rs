//! `custos dock run`: the daemon. It serves many slots at once:
//!
//! - USB slots, one per physical port: recorders arrive and leave through
//!   [`UsbWatcher`] (libusb hotplug, or polling where libusb has none); a
//!   device is matched to a profile by its ids, opened, identified,
//!   unlocked, its volume found (and mounted under `[dock] mount_root` if
//!   nothing else mounted it), and ingested. A device no profile matches is
//!   ignored with one log line and never touched. A machine without a USB
//!   stack logs that once and serves its directory slots.
//! - Directory slots (`[dock] slots`): a directory where the operating
//!   system mounts a recorder; a non-empty directory is a docked recorder.
//!
//! Each docking runs [`Dock::ingest`]; when the recorder leaves (USB
//! unplug, directory emptied or unmounted) the daemon records
//! `recorder.undocked`. Stopping the daemon (SIGINT, SIGTERM) cancels the
//! sessions without recording an undocking: the journal resumes them at
//! the next start.
//!
//! The daemon must never start a second session on a slot that has one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::engine::Dock;
use crate::status::watch::{self, WatchSettings};
use crate::transport::{DirectoryTransport, UsbTransport};
use crate::usb::locate::SysfsLocator;
use crate::usb::rusb_link::{RusbDevice, UsbDeviceInfo, UsbEvent, UsbWatcher};

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// Directories watched as slots.
    pub slots: Vec<PathBuf>,
    /// Watch USB.
    pub usb: bool,
    /// Where USB volumes are mounted.
    pub mount_root: PathBuf,
    /// Extra mount options.
    pub mount_options: String,
    /// How often directory slots (and USB, without hotplug) are looked at.
    pub poll: Duration,
    /// The status endpoint's address (`None`: no endpoint).
    pub status_listen: Option<String>,
    /// The status screen's language (`None`: the browser's, else zh-CN).
    pub status_language: Option<custos_i18n::Lang>,
    /// What the watch checks (disks).
    pub watch: WatchSettings,
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The status endpoint could not listen.
    #[error("cannot serve the slot status on {listen}: {source}")]
    Status {
        /// The address.
        listen: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Run until `stop` is cancelled. `ready` is called with the status
/// endpoint's address once everything listens; systemd is told then too
/// (`READY=1`), and the watch (alerts, disks, watchdog) runs beside.
pub async fn run(
    dock: Arc<Dock>,
    opts: DaemonOptions,
    stop: CancellationToken,
    ready: impl FnOnce(Option<std::net::SocketAddr>),
) -> Result<(), DaemonError> {
    let pump = dock.start(stop.clone());
    let mut addr = None;
    if let Some(listen) = &opts.status_listen {
        let (a, _task) = crate::status::serve(
            dock.status().clone(),
            opts.status_language,
            listen,
            stop.clone(),
        )
        .await
        .map_err(|source| DaemonError::Status {
            listen: listen.clone(),
            source,
        })?;
        addr = Some(a);
    }
    let mut tasks = JoinSet::new();
    for slot in &opts.slots {
        tasks.spawn(directory_slot(
            dock.clone(),
            slot.clone(),
            opts.poll,
            stop.clone(),
        ));
    }
    if opts.usb {
        tasks.spawn(usb_slots(dock.clone(), opts.clone(), stop.clone()));
    }
    tasks.spawn(watch::run(
        dock.status().clone(),
        opts.watch.clone(),
        stop.clone(),
    ));
    ready(addr);
    watch::ready();
    stop.cancelled().await;
    while tasks.join_next().await.is_some() {}
    let _ = pump.await;
    Ok(())
}

fn slot_name(dir: &std::path::Path) -> String {
    format!(
        "dir-{}",
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string())
    )
}

fn occupied(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some())
}

/// One directory slot: ingest whatever is mounted there, until it leaves.
async fn directory_slot(dock: Arc<Dock>, dir: PathBuf, poll: Duration, stop: CancellationToken) {
    let slot = slot_name(&dir);
    dock.status().empty(&slot);
    loop {
        // Wait for a recorder.
        while !occupied(&dir) {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(poll) => {}
            }
        }
        // Recorders come and go at a slot: the id comes from the footage
        // names (one device, per the profile), never from the slot's path
        // or from memory; a volume whose names name none is refused.
        // Unfinished records resume only on the volume they were found on.
        let transport = DirectoryTransport::new(&dir, dock.profiles().clone(), None, None, None);
        let session = stop.child_token();
        let ingest = dock.ingest(&slot, Box::new(transport), session.clone(), None);
        tokio::pin!(ingest);
        // A recorder taken out mid-docking (its directory emptied or
        // unmounted) ends the session as a USB unplug does: what is not
        // done stays in the journal for the next docking.
        let (_transport, report) = tokio::select! {
            done = &mut ingest => done,
            () = left(&dir, poll) => {
                tracing::warn!(slot, "the recorder's directory emptied during the docking");
                session.cancel();
                ingest.await
            }
        };
        if stop.is_cancelled() {
            return;
        }
        // Wait for it to leave (or, after an error, retry now and then).
        let mut waited = Duration::ZERO;
        while occupied(&dir) {
            if report.error.is_some() && waited >= Duration::from_secs(30) {
                break;
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(poll) => waited += poll,
            }
        }
        if !occupied(&dir) {
            dock.undock(&slot, &report).await;
        }
    }
}

/// Returns once `dir` holds nothing (polled every `poll`).
async fn left(dir: &std::path::Path, poll: Duration) {
    while occupied(dir) {
        tokio::time::sleep(poll).await;
    }
}

/// Every USB slot: watch the bus, start a session per matched recorder.
async fn usb_slots(dock: Arc<Dock>, opts: DaemonOptions, stop: CancellationToken) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let watcher = match UsbWatcher::start(tx, opts.poll) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "USB watching is off");
            return;
        }
    };
    tracing::info!(
        hotplug = watcher.uses_hotplug(),
        "watching USB for recorders"
    );
    let mut sessions: BTreeMap<String, CancellationToken> = BTreeMap::new();
    let mut tasks = JoinSet::new();
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => break,
            e = rx.recv() => match e {
                Some(e) => e,
                None => break,
            },
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Ok(slot) = done {
                    sessions.remove(&slot);
                }
                continue;
            }
        };
        match event {
            UsbEvent::Arrived(info) => {
                let slot = info.slot();
                let Some(profile) = dock.profiles().for_usb(info.vendor_id, info.product_id) else {
                    tracing::info!(
                        slot,
                        device = format!("{:04x}:{:04x}", info.vendor_id, info.product_id),
                        "USB device ignored: no firmware profile matches it"
                    );
                    continue;
                };
                if sessions.contains_key(&slot) {
                    continue;
                }
                let token = stop.child_token();
                sessions.insert(slot.clone(), token.clone());
                tasks.spawn(usb_session(
                    dock.clone(),
                    info,
                    Arc::new(profile.clone()),
                    opts.clone(),
                    token,
                ));
            }
            UsbEvent::Left(info) => {
                if let Some(token) = sessions.get(&info.slot()) {
                    token.cancel();
                }
            }
        }
    }
    for t in sessions.values() {
        t.cancel();
    }
    while tasks.join_next().await.is_some() {}
    drop(watcher);
}

/// One USB recorder, from arrival to departure. Returns its slot.
async fn usb_session(
    dock: Arc<Dock>,
    info: UsbDeviceInfo,
    profile: Arc<crate::profile::Profile>,
    opts: DaemonOptions,
    left: CancellationToken,
) -> String {
    let slot = info.slot();
    dock.status().attaching(&slot);
    let opened = {
        let info = info.clone();
        tokio::task::spawn_blocking(move || RusbDevice::open(&info)).await
    };
    let device = match opened {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => {
            tracing::error!(slot, error = %e, "cannot open the recorder");
            dock.status().error(&slot, &e.to_string());
            left.cancelled().await;
            dock.status().empty(&slot);
            return slot;
        }
        Err(e) => {
            dock.status().error(&slot, &format!("internal error: {e}"));
            return slot;
        }
    };
    let serial = device.serial.clone();
    let locator = SysfsLocator::new(
        info.bus,
        &info.ports,
        serial.clone(),
        &opts.mount_root,
        &slot,
        &opts.mount_options,
    );
    let transport = UsbTransport::new(
        Box::new(device.channel()),
        Box::new(locator),
        profile,
        serial,
        dock.settings().unlock_password.clone(),
        "usb",
    );
    let (mut transport, report) = dock
        .ingest(&slot, Box::new(transport), left.clone(), None)
        .await;
    // Stay until the recorder leaves (or the daemon stops).
    left.cancelled().await;
    let _ = tokio::task::spawn_blocking(move || transport.detach()).await;
    let unplugged = !info_present(&info);
    if unplugged {
        dock.undock(&slot, &report).await;
    }
    slot
}

/// Whether the device is still on the bus (after its session's token fired:
/// unplugged, or the daemon stopping).
fn info_present(info: &UsbDeviceInfo) -> bool {
    crate::usb::rusb_link::enumerate()
        .map(|list| {
            list.iter()
                .any(|d| d.bus == info.bus && d.address == info.address)
        })
        .unwrap_or(false)
}
