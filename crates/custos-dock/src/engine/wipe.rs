//! Steps 5 → 6 → 7 of a segment: wait for the ledger's acknowledgement of
//! `segment.verified`, decide per the wipe policy (Wiping, made durable
//! before the file is touched; Kept; or Gone when the file left by other
//! means), then remove the file and record `segment.wiped` only when the
//! removal is known to be on the recorder (`still_attached` before
//! and after the sync).
//!
//! Must never remove a file whose `segment.verified` is not acknowledged
//! (DESIGN.md invariant 1: `Stage::Wiping` carries the acknowledgement's
//! index, and step 6 is written only after it), nor record a removal that
//! may not have reached the medium.

use custos_core::config::WipePolicy;
use custos_core::entry::details::SegmentWiped;
use custos_core::entry::Details;
use custos_core::manifest::OriginalName;

use super::error::StepError;
use super::{Dock, Session};
use crate::journal::{EventKind, SegmentRecord, Step};
use crate::volume::{SourceFile, VolumeError};

/// The step after Verified once `segment.verified` is acknowledged: Kept
/// when the policy keeps footage, Gone when the file left the recorder by
/// other means, else Wiping.
fn after_verified_step(policy: WipePolicy, file_present: bool) -> Step {
    match policy {
        WipePolicy::Never => Step::Kept,
        _ if !file_present => Step::Gone,
        _ => Step::Wiping,
    }
}

impl Dock {
    /// Step 5 → 6 (or 7): wait for the ledger's acknowledgement of
    /// `segment.verified`, then wipe per policy.
    pub(super) async fn after_verified(
        &self,
        s: &Session,
        rec: &SegmentRecord,
        file_present: bool,
    ) -> Result<(), StepError> {
        self.wait_acknowledged(s, rec, EventKind::Verified).await?;
        let next = after_verified_step(self.settings.wipe, file_present);
        // Wiping is made durable before the file is touched (step 6).
        let update = |f: &dyn Fn(&mut SegmentRecord)| {
            if next == Step::Wiping {
                self.journal.update(&rec.recorder_id, &rec.segment_id, f)
            } else {
                self.journal
                    .update_lazy(&rec.recorder_id, &rec.segment_id, f)
            }
        };
        update(&|r: &mut SegmentRecord| {
            if r.step == Step::Verified {
                r.step = next;
                if next == Step::Gone {
                    r.last_error =
                        Some("the file left the recorder by other means before the wipe".into());
                }
            }
        })?;
        Ok(())
    }

    /// Step 6 → 7: remove the file, if it is still the file verified, and
    /// record `segment.wiped` only when the removal is known to be on the
    /// recorder.
    ///
    /// The order, and what an unplug at each point leaves:
    ///
    /// 1. the session still open and the medium still the one attached
    ///    (else the file is not touched; the step stays Wiping);
    /// 2. the file checked against the listing, removed, the file system
    ///    synced ([`crate::volume::Volume::remove`]);
    /// 3. the session still open and the medium still the one attached,
    ///    *after* the sync returned. An unplug before the removal, between
    ///    it and the sync, or during the sync fails this check: a removal
    ///    on a mount whose device left may never reach the recorder, so
    ///    the step stays Wiping and the next docking looks again (file gone:
    ///    wiped; file there with the same path, size and time: removed
    ///    again). An unplug after this check is after a sync that ran
    ///    against the attached medium, so the removal is on it;
    /// 4. `segment.wiped`.
    pub(super) async fn wipe(
        &self,
        s: &Session,
        rec: &SegmentRecord,
        file: Option<&SourceFile>,
        verified_seq: u64,
    ) -> Result<(), StepError> {
        self.still_attached(s, "before the wipe; the file was not touched")
            .await?;
        if let Some(f) = file {
            let volume = s.attached.volume.clone();
            let f = f.clone();
            let removed = tokio::task::spawn_blocking(move || volume.remove(&f))
                .await
                .map_err(|e| StepError::Stop(format!("internal error while wiping: {e}")))?;
            match removed {
                Ok(()) => {}
                Err(VolumeError::Gone { .. }) => {
                    tracing::info!(slot = %s.slot, segment = %rec.segment_id, "the file was already gone at the wipe");
                }
                Err(e) => {
                    self.still_attached(s, "during the wipe").await?;
                    return Err(StepError::Stop(format!("not wiped: {e}")));
                }
            }
        }
        self.still_attached(s, "during the wipe").await?;
        tracing::info!(slot = %s.slot, segment = %rec.segment_id, file = %String::from_utf8_lossy(&rec.relative()), "wiped from the recorder");
        let d = Details::SegmentWiped(SegmentWiped {
            recorder_id: rec.recorder_id.clone(),
            original_name: Some(OriginalName::from_os_bytes(&rec.original())),
            verified_seq: Some(verified_seq),
            again: false,
        });
        self.emit_segment(rec, EventKind::Wiped, d, Step::Wiped, None)
            .await
    }

    /// `Ok` if the session is open and its medium is still the one
    /// attached; else `Cancelled`, saying the recorder left `when`.
    pub(super) async fn still_attached(&self, s: &Session, when: &str) -> Result<(), StepError> {
        let why = if s.cancel.is_cancelled() {
            Some("the docking ended".to_owned())
        } else {
            // USB transfers and sysfs reads: on a blocking thread.
            let medium = s.attached.medium.clone();
            match tokio::task::spawn_blocking(move || medium.still_attached()).await {
                Ok(r) => r.err(),
                Err(e) => Some(format!("internal error while checking the recorder: {e}")),
            }
        };
        match why {
            None => Ok(()),
            Some(why) => {
                tracing::warn!(slot = %s.slot, error = %why, "the recorder left {when}; the wipe is checked again at the next docking");
                Err(StepError::Cancelled(format!(
                    "the recorder left {when} ({why}); not counted as wiped, checked again at the next docking"
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_verified_the_policy_and_the_file_decide() {
        assert_eq!(after_verified_step(WipePolicy::Never, true), Step::Kept);
        assert_eq!(after_verified_step(WipePolicy::Never, false), Step::Kept);
        assert_eq!(
            after_verified_step(WipePolicy::AfterVerified, false),
            Step::Gone
        );
        assert_eq!(
            after_verified_step(WipePolicy::AfterVerified, true),
            Step::Wiping
        );
    }
}
