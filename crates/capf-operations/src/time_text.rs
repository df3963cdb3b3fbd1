//! RFC 3339 times as operators read and write them (the command line and
//! the web console: `YYYY-MM-DDTHH:MM:SSZ`), and times from now (`+7d`),
//! through jiff's calendar.

use std::time::SystemTime;

use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, civil::Date};

/// Formats a time as `YYYY-MM-DDTHH:MM:SSZ` (UTC, whole seconds).
pub fn format(t: SystemTime) -> String {
    match Timestamp::try_from(t) {
        Ok(ts) => ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        // Outside jiff's range (years -9999..=9999): no certificate or
        // record we keep gets there; say so rather than print a wrong date.
        Err(_) => "(out of range)".to_owned(),
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`; a bare date means
/// midnight UTC. Times before 1970 are refused.
pub fn parse(text: &str) -> Result<SystemTime, String> {
    let bad = || format!("{text:?} is not an RFC 3339 time (e.g. 2026-12-31T18:00:00Z)");
    let t = text.trim();
    let has_clock = t.contains(['T', 't', ' ']);
    let stamp = match t.parse::<Timestamp>() {
        Ok(ts) => ts,
        Err(_) if !has_clock => {
            let date: Date = t.parse().map_err(|_| bad())?;
            date.to_zoned(TimeZone::UTC).map_err(|_| bad())?.timestamp()
        }
        Err(_) if t.parse::<jiff::civil::DateTime>().is_ok() => {
            return Err(format!(
                "{text:?} has no time zone: add Z or an offset like +09:00"
            ));
        }
        Err(_) => return Err(bad()),
    };
    if stamp < Timestamp::UNIX_EPOCH {
        return Err(bad());
    }
    Ok(SystemTime::from(stamp))
}

/// Parses a time as [`parse`] does, or a time from `now`: `+` and a span
/// such as `90m`, `12h`, `7d`, `2w` or `1d 12h` (days are 24 hours: UTC).
pub fn parse_from(text: &str, now: SystemTime) -> Result<SystemTime, String> {
    let t = text.trim();
    let Some(relative) = t.strip_prefix('+') else {
        return parse(t);
    };
    let bad =
        || format!("{text:?}: a time from now is + and a span such as +90m, +12h, +7d or +2w");
    let span: Span = relative.parse().map_err(|_| bad())?;
    if span.is_negative() || span.is_zero() {
        return Err(bad());
    }
    let now = Timestamp::try_from(now).map_err(|_| bad())?;
    let then = now
        .to_zoned(TimeZone::UTC)
        .checked_add(span)
        .map_err(|_| format!("{text:?} is too far from now"))?;
    Ok(SystemTime::from(then.timestamp()))
}

/// The time a span (`90m`, `24h`, `7d`, `2w`, `1d 12h`) before `now`
/// (days are 24 hours: UTC).
pub fn parse_ago(text: &str, now: SystemTime) -> Result<SystemTime, String> {
    let bad = || format!("{text:?} is not a span of time such as 90m, 24h, 7d or 2w");
    let span: Span = text.trim().parse().map_err(|_| bad())?;
    if span.is_negative() || span.is_zero() {
        return Err(bad());
    }
    let now = Timestamp::try_from(now).map_err(|_| bad())?;
    let then = now
        .to_zoned(TimeZone::UTC)
        .checked_sub(span)
        .map_err(|_| format!("{text:?} is too long ago"))?;
    Ok(SystemTime::from(then.timestamp()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn round_trip_and_offsets() {
        let t = parse("2026-12-01T00:00:00Z").unwrap();
        assert_eq!(
            t,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_083_200)
        );
        assert_eq!(format(t), "2026-12-01T00:00:00Z");
        assert_eq!(parse("2026-12-01T09:00:00+09:00").unwrap(), t);
        assert_eq!(parse("2026-12-01").unwrap(), t);
        assert_eq!(
            format(parse("2000-02-29T23:59:59Z").unwrap()),
            "2000-02-29T23:59:59Z"
        );
        assert_eq!(
            format(parse("2026-12-01T00:00:00.75Z").unwrap()),
            "2026-12-01T00:00:00Z"
        );
        assert!(parse("2026-13-01").is_err());
        assert!(parse("2026-02-30").is_err());
        assert!(parse("tomorrow").is_err());
        assert!(parse("1969-12-31T23:59:59Z").is_err());
        assert!(
            parse("2026-12-01T00:00:00")
                .unwrap_err()
                .contains("time zone")
        );
    }

    #[test]
    fn times_from_now() {
        let now = parse("2026-12-01T00:00:00Z").unwrap();
        let at = |t: &str| parse_from(t, now).map(format);
        assert_eq!(at("+7d").unwrap(), "2026-12-08T00:00:00Z");
        assert_eq!(at("+90m").unwrap(), "2026-12-01T01:30:00Z");
        assert_eq!(at("+2w").unwrap(), "2026-12-15T00:00:00Z");
        assert_eq!(at("+1d 12h").unwrap(), "2026-12-02T12:00:00Z");
        assert_eq!(at("2026-12-31T18:00:00Z").unwrap(), "2026-12-31T18:00:00Z");
        for bad in ["+", "+7", "+d", "+-1d", "+0d", "+99999999y", "tomorrow"] {
            assert!(at(bad).is_err(), "{bad}");
        }
        let ago = |t: &str| parse_ago(t, now).map(format);
        assert_eq!(ago("24h").unwrap(), "2026-11-30T00:00:00Z");
        assert_eq!(ago("2w").unwrap(), "2026-11-17T00:00:00Z");
        assert!(ago("-1d").is_err() && ago("soon").is_err() && ago("0s").is_err());
    }
}
