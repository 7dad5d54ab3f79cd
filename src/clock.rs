//! Time, in two kinds. Deadlines, waits and "how long ago" use tokio's clock
//! (`tokio::time::Instant`, `sleep`), so tests can pause and advance it. Wall-clock time
//! (sample timestamps, `max_age`, `forget_after`, last-seen times) comes from one
//! [`WallClock`], handed to every part that needs it, so tests can move it too.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now, from the system clock.
pub fn system_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Where wall-clock time comes from.
#[derive(Clone, Default)]
pub struct WallClock(Kind);

#[derive(Clone, Default)]
enum Kind {
    /// The system clock (production).
    #[default]
    System,
    /// `start_ms` plus the time tokio's clock has moved since `start`: with
    /// `tokio::time::pause()`, advancing tokio's clock advances this one too.
    FollowsTokio {
        start_ms: i64,
        start: tokio::time::Instant,
    },
    /// Set by hand (clock jumps in tests). A mutex, not an atomic: 32-bit mips has no 64-bit
    /// atomics.
    Manual(Arc<Mutex<i64>>),
}

impl WallClock {
    /// The system clock.
    pub fn system() -> WallClock {
        WallClock(Kind::System)
    }

    /// A clock at `start_ms` now, moving with tokio's clock.
    pub fn following_tokio(start_ms: i64) -> WallClock {
        WallClock(Kind::FollowsTokio {
            start_ms,
            start: tokio::time::Instant::now(),
        })
    }

    /// A clock that stands still at `ms` until [`WallClock::set`] moves it.
    pub fn manual(ms: i64) -> WallClock {
        WallClock(Kind::Manual(Arc::new(Mutex::new(ms))))
    }

    /// Moves a manual clock (to the past or the future); no effect on other kinds.
    pub fn set(&self, ms: i64) {
        if let Kind::Manual(m) = &self.0 {
            *m.lock().unwrap_or_else(|p| p.into_inner()) = ms;
        }
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        match &self.0 {
            Kind::System => system_now_ms(),
            Kind::FollowsTokio { start_ms, start } => start_ms + start.elapsed().as_millis() as i64,
            Kind::Manual(m) => *m.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// Seconds since the Unix epoch, as a float.
    pub fn now_seconds(&self) -> f64 {
        self.now_ms() as f64 / 1000.0
    }
}

impl std::fmt::Debug for WallClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Kind::System => f.write_str("WallClock::System"),
            Kind::FollowsTokio { start_ms, .. } => write!(f, "WallClock::FollowsTokio({start_ms})"),
            Kind::Manual(_) => write!(f, "WallClock::Manual({})", self.now_ms()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn follows_tokio_and_manual() {
        let c = WallClock::following_tokio(1_000_000);
        tokio::time::sleep(Duration::from_secs(90)).await;
        assert_eq!(c.now_ms(), 1_090_000);
        let m = WallClock::manual(5);
        let m2 = m.clone();
        m.set(-7);
        assert_eq!(m2.now_ms(), -7);
        assert!(WallClock::system().now_ms() > 1_600_000_000_000);
    }
}
