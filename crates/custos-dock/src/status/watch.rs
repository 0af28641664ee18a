//! The station's watch, run by `custos dock run`: once a second it reads
//! the board's alerts and tells the operator — one `warn` line with the
//! slot and the cause when an alert begins, one `info` line when it ends —
//! checks the disks the dock writes to every ten seconds, and talks to
//! systemd (`Type=notify`): `READY=1` once the dock serves, `WATCHDOG=1`
//! on each turn while the runtime is alive, a one-line `STATUS=`, and
//! `STOPPING=1` at the end.
//!
//! The watch only reads and reports; it never changes what a docking does.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{AlertKind, DockStatus, SlotState, StatusBoard};

/// What the watch looks at.
#[derive(Debug, Clone)]
pub struct WatchSettings {
    /// Directories whose file systems must keep space free (the journal's,
    /// a `file://` store's).
    pub disks: Vec<PathBuf>,
    /// Alert below this percentage free.
    pub min_free_percent: u8,
}

/// A disk short of space, in words; `None` when every disk has room or
/// cannot be read (that is logged once, not alerted).
fn disk_trouble(settings: &WatchSettings) -> Option<String> {
    let mut short = Vec::new();
    for dir in &settings.disks {
        let Ok(st) = rustix::fs::statvfs(dir) else {
            continue;
        };
        let total = st.f_blocks.saturating_mul(st.f_frsize);
        let free = st.f_bavail.saturating_mul(st.f_frsize);
        if total == 0 {
            continue;
        }
        let percent = free.saturating_mul(100) / total;
        if percent < u64::from(settings.min_free_percent) {
            short.push(format!(
                "{}: {} MiB free ({percent} %)",
                dir.display(),
                free >> 20
            ));
        }
    }
    (!short.is_empty()).then(|| short.join("; "))
}

/// The one-line summary systemd shows (`systemctl status`).
fn summary(status: &DockStatus) -> String {
    let busy = status.slots.iter().filter(|s| s.state.busy()).count();
    let safe = status
        .slots
        .iter()
        .filter(|s| s.state == SlotState::Done)
        .count();
    let red = status
        .slots
        .iter()
        .filter(|s| {
            matches!(
                s.state,
                SlotState::Unplugged | SlotState::Incomplete | SlotState::Error
            )
        })
        .count();
    let mut line = format!(
        "{} slots: {busy} busy, {safe} safe to undock, {red} need attention; {} events wait for the ledger",
        status.slots.len(),
        status.events_pending
    );
    if !status.alerts.is_empty() {
        line.push_str(&format!("; {} alerts", status.alerts.len()));
    }
    line
}

/// Tell systemd, when it is listening (`NOTIFY_SOCKET`); errors are
/// logged once by the caller's first call only.
fn notify(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, state) {
        tracing::debug!(error = %e, "cannot notify systemd");
    }
}

/// The dock serves: tell systemd.
pub fn ready() {
    notify(&[sd_notify::NotifyState::Ready]);
}

/// Watch `board` until `stop` (see the module documentation).
pub async fn run(board: Arc<StatusBoard>, settings: WatchSettings, stop: CancellationToken) {
    let watchdog = {
        let mut usec = 0;
        sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec))
    };
    // Half the watchdog's period at most, and at least once a second.
    let every = watchdog
        .map(|w| (w / 2).min(Duration::from_secs(1)))
        .unwrap_or(Duration::from_secs(1));
    let mut tick = tokio::time::interval(every);
    let mut known: BTreeMap<(AlertKind, Option<String>), String> = BTreeMap::new();
    let mut last_disk_check: Option<Instant> = None;
    let mut last_summary = String::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        if last_disk_check.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            let s = settings.clone();
            let trouble = tokio::task::spawn_blocking(move || disk_trouble(&s))
                .await
                .unwrap_or(None);
            board.disk(trouble);
            last_disk_check = Some(Instant::now());
        }
        let status = board.snapshot();
        let mut now: BTreeMap<(AlertKind, Option<String>), String> = BTreeMap::new();
        for a in &status.alerts {
            now.insert((a.kind, a.slot.clone()), a.message.clone());
        }
        for ((kind, slot), why) in &now {
            if !known.contains_key(&(*kind, slot.clone())) {
                tracing::warn!(
                    alert = kind.as_str(),
                    slot = slot.as_deref().unwrap_or("-"),
                    cause = %why,
                    "the dock needs attention"
                );
            }
        }
        for (kind, slot) in known.keys() {
            if !now.contains_key(&(*kind, slot.clone())) {
                tracing::info!(
                    alert = kind.as_str(),
                    slot = slot.as_deref().unwrap_or("-"),
                    "alert cleared"
                );
            }
        }
        known = now;
        let line = summary(&status);
        if line != last_summary {
            notify(&[sd_notify::NotifyState::Status(&line)]);
            last_summary = line;
        }
        if watchdog.is_some() {
            notify(&[sd_notify::NotifyState::Watchdog]);
        }
    }
    notify(&[sd_notify::NotifyState::Stopping]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disk_below_the_floor_is_named() {
        let dir = std::env::temp_dir();
        let never = WatchSettings {
            disks: vec![dir.clone()],
            min_free_percent: 0,
        };
        assert_eq!(disk_trouble(&never), None);
        let always = WatchSettings {
            disks: vec![dir.clone()],
            min_free_percent: 101,
        };
        let why = disk_trouble(&always).expect("no disk has more than 100 % free");
        assert!(why.contains(&dir.display().to_string()), "{why}");
    }

    #[test]
    fn the_summary_counts_slots() {
        let b = StatusBoard::new("d");
        b.attaching("a");
        b.empty("b");
        b.set_ledger(3, None, None);
        assert_eq!(
            summary(&b.snapshot()),
            "2 slots: 1 busy, 0 safe to undock, 0 need attention; 3 events wait for the ledger"
        );
    }
}
