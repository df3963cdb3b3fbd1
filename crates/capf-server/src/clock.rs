//! The time a session sees: the wall clock when the connection started,
//! advanced by a monotonic clock. Deadlines (reply and key-generation
//! timeouts) then measure elapsed time even if the system clock is set
//! back or forward mid-session, and the times recorded (issued, delivered,
//! refused) are wall-clock times, off at most by a clock change during the
//! session.

use std::time::{Instant, SystemTime};

#[derive(Clone, Copy, Debug)]
pub(crate) struct SessionClock {
    wall: SystemTime,
    start: Instant,
}

impl SessionClock {
    /// Starts now.
    pub(crate) fn start() -> Self {
        SessionClock {
            wall: SystemTime::now(),
            start: Instant::now(),
        }
    }

    /// The session's current time.
    pub(crate) fn now(&self) -> SystemTime {
        self.wall + self.start.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::SessionClock;

    #[test]
    fn session_time_never_goes_back() {
        let clock = SessionClock::start();
        let mut last = clock.now();
        for _ in 0..1000 {
            let now = clock.now();
            assert!(now >= last);
            last = now;
        }
    }
}
