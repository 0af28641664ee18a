//! Step 4 → 5 of a segment: the stored object checked against what was
//! read from the recorder (read back, or an S3 store's SHA-256 receipt when
//! trusted), then `segment.verified` built, journalled and queued. Never
//! reports an object verified that was not checked: a mismatch stops the
//! segment, which stays on the recorder.

use std::time::Instant;

use custos_core::entry::details::SegmentVerified;
use custos_core::entry::Details;
use custos_ingest::{verify_object, StoreReceipt, VerifyError, VerifyMethod, VerifyMode};

use super::error::{object_path, StepError};
use super::Dock;
use crate::journal::{EventKind, SegmentRecord, Step, UploadRecord};

impl Dock {
    /// Step 4 → 5: the stored object is the segment.
    pub(super) async fn verify(
        &self,
        rec: &SegmentRecord,
        upload: UploadRecord,
    ) -> Result<(), StepError> {
        let key = object_path(&rec.object_key)?;
        let mode = match (
            &upload.e_tag,
            upload.store_checked_sha256 && self.settings.trust_store_checksum,
        ) {
            (Some(e_tag), true) => VerifyMode::TrustStoreChecksum(StoreReceipt {
                size: upload.size,
                sha256: upload.digests.sha256,
                e_tag: e_tag.clone(),
            }),
            _ => VerifyMode::ReadBack,
        };
        let verifying = Instant::now();
        let verified = verify_object(&self.store, &key, &upload.digests, mode).await;
        tracing::debug!(segment = %rec.segment_id, ms = verifying.elapsed().as_millis() as u64, "verified");
        let verified = match verified {
            Ok(v) => v,
            Err(e @ VerifyError::Store { .. }) => return Err(StepError::Retry(e.to_string())),
            Err(e) => {
                return Err(StepError::Stop(format!(
                    "the stored object does not check out; the segment stays on the recorder: {e}"
                )))
            }
        };
        let method = match verified.method {
            VerifyMethod::StoreChecksum => "store_checksum",
            _ => "read_back",
        };
        let d = Details::SegmentVerified(SegmentVerified {
            method: method.to_owned(),
            object_key: rec.object_key.clone(),
            sha256: verified.digests.sha256.to_string(),
        });
        self.emit_segment(rec, EventKind::Verified, d, Step::Verified, Some(method))
            .await
    }
}
