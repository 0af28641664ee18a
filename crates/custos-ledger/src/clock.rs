//! The ledger's clock, injected so that tests can fix entry times.
//!
//! Every entry's `time` comes from here and nowhere else. This module must
//! never be bypassed by a direct call to the system clock in ledger code.

use std::sync::Arc;

use custos_core::manifest::Timestamp;

/// Where the ledger reads the time of each entry.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current UTC instant.
    fn now(&self) -> Timestamp;
}

/// The system's real-time clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[expect(
        clippy::disallowed_methods,
        reason = "SystemClock is the ledger's production Clock, the one wall-clock reading behind it"
    )]
    fn now(&self) -> Timestamp {
        // INVARIANT: the system clock reads a date between 1970 and 9999,
        // which is all a Timestamp refuses to hold.
        Timestamp::from_offset_datetime(time::OffsetDateTime::now_utc())
            .expect("INVARIANT: the system clock is within the years 1970..9999")
    }
}

/// A clock that always reads one instant (tests).
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub Timestamp);

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        self.0
    }
}

/// The clock type the ledger holds.
pub type SharedClock = Arc<dyn Clock>;
