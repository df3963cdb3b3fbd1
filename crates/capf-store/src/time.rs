//! Times as integers: instants of the service (status, deadlines, audit,
//! leases) in nanoseconds since 1970, so that records round-trip exactly;
//! certificate validity in seconds (X.509 times have no finer resolution,
//! and `notAfter` may be 9999-12-31, past what nanoseconds can hold).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::StoreError;

/// Nanoseconds since 1970 (negative before).
pub(crate) fn to_nanos(t: SystemTime, what: &'static str) -> Result<i64, StoreError> {
    let out_of_range = || StoreError::TimeOutOfRange { what };
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).map_err(|_| out_of_range()),
        Err(e) => i64::try_from(e.duration().as_nanos())
            .map(|n| -n)
            .map_err(|_| out_of_range()),
    }
}

/// [`to_nanos`], saturating (for lease expiry, where "far future" is all
/// that matters).
pub(crate) fn to_nanos_saturating(t: SystemTime) -> i64 {
    to_nanos(t, "lease expiry").unwrap_or(i64::MAX)
}

pub(crate) fn from_nanos(n: i64) -> Option<SystemTime> {
    let d = Duration::from_nanos(n.unsigned_abs());
    if n >= 0 {
        UNIX_EPOCH.checked_add(d)
    } else {
        UNIX_EPOCH.checked_sub(d)
    }
}

/// Whole seconds since 1970 (negative before); sub-second parts dropped.
pub(crate) fn to_secs(t: SystemTime, what: &'static str) -> Result<i64, StoreError> {
    let out_of_range = || StoreError::TimeOutOfRange { what };
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).map_err(|_| out_of_range()),
        Err(e) => i64::try_from(e.duration().as_secs())
            .map(|n| -n)
            .map_err(|_| out_of_range()),
    }
}

pub(crate) fn from_secs(s: i64) -> Option<SystemTime> {
    let d = Duration::from_secs(s.unsigned_abs());
    if s >= 0 {
        UNIX_EPOCH.checked_add(d)
    } else {
        UNIX_EPOCH.checked_sub(d)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for t in [
            UNIX_EPOCH,
            UNIX_EPOCH + Duration::new(1_796_083_200, 123_456_789),
            UNIX_EPOCH - Duration::new(86_400, 5),
        ] {
            assert_eq!(from_nanos(to_nanos(t, "t").unwrap()), Some(t));
        }
        let far = UNIX_EPOCH + Duration::from_secs(253_402_300_799); // 9999-12-31T23:59:59Z
        assert!(to_nanos(far, "t").is_err());
        assert_eq!(from_secs(to_secs(far, "t").unwrap()), Some(far));
        assert_eq!(to_nanos_saturating(far), i64::MAX);
    }
}
