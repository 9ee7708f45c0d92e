//! UTC timestamps for log lines, without a date library.
//!
//! The writer formats one shape only (`2026-11-22T02:30:50.123Z`), and the reader that
//! summarises logs parses it back; keeping both here keeps them each other's inverse.

/// Formats milliseconds since the Unix epoch as `2026-11-22T02:30:50.123Z`.
pub fn format_rfc3339_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// Parses a UTC timestamp as written by [`format_rfc3339_ms`] back into milliseconds since the
/// Unix epoch.
///
/// Also accepts no fraction or a fraction of any length (digits past milliseconds are
/// truncated), and a lower-case `t`/`z`, as RFC 3339 allows. Offsets other than `Z` are refused
/// rather than converted: the writer never produces them, so one means the line is not ours.
/// Instants before 1970 are refused for the same reason.
pub fn parse_rfc3339_ms(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    // `YYYY-MM-DDTHH:MM:SS` is 19 bytes, then an optional fraction, then `Z`.
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't') || !matches!(b[b.len() - 1], b'Z' | b'z') {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    let millis = match &b[19..b.len() - 1] {
        [] => 0,
        [b'.', fraction @ ..] if !fraction.is_empty() => {
            // Pad or truncate to exactly three digits: `.5` is 500 ms, `.123456` is 123 ms.
            let mut ms = 0;
            for i in 0..3 {
                ms = ms * 10 + fraction.get(i).map_or(Some(0), |&d| digit(d))?;
            }
            if !fraction.iter().all(u8::is_ascii_digit) {
                return None;
            }
            ms
        }
        _ => return None,
    };
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let days = u64::try_from(days_from_civil(i64::from(year), month, day)).ok()?;
    let seconds = days * 86_400 + u64::from(hour * 3600 + minute * 60 + second);
    Some(seconds * 1000 + u64::from(millis))
}

fn digit(b: u8) -> Option<u32> {
    b.is_ascii_digit().then(|| u32::from(b - b'0'))
}

fn digits(bytes: &[u8]) -> Option<u32> {
    bytes.iter().try_fold(0, |n, &b| Some(n * 10 + digit(b)?))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A proleptic Gregorian date to days since 1970-01-01: the inverse of [`civil_from_days`]
/// (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_rfc3339_ms(1_767_263_467_123),
            "2026-01-01T10:31:07.123Z"
        );
        assert_eq!(
            format_rfc3339_ms(951_782_400_000),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn parses_known_instants() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ms("2026-01-01T10:31:07.123Z"),
            Some(1_767_263_467_123)
        );
        assert_eq!(
            parse_rfc3339_ms("2000-02-29T00:00:00.000Z"),
            Some(951_782_400_000)
        );
        // Other fraction lengths, and none.
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(parse_rfc3339_ms("1970-01-01t00:00:01.123999z"), Some(1123));
    }

    #[test]
    fn refuses_what_the_writer_never_writes() {
        for text in [
            "",
            "2026-01-01",
            "2026-01-01T10:31:07.123",
            "2026-01-01T10:31:07.123+01:00",
            "2026-01-01 10:31:07.123Z",
            "2026-01-01T10:31:07.Z",
            "2026-01-01T10:31:07.12xZ",
            "2026-13-01T10:31:07.123Z",
            "2026-00-01T10:31:07.123Z",
            "2026-02-29T10:31:07.123Z",
            "1900-02-29T00:00:00.000Z",
            "2026-04-31T10:31:07.123Z",
            "2026-01-01T24:00:00.000Z",
            "2026-01-01T23:60:00.000Z",
            "2026-01-01T23:59:60.000Z",
            "1969-12-31T23:59:59.999Z",
            "+026-01-01T10:31:07.123Z",
            "2026-01-01T10:31:07.123ZZ",
        ] {
            assert_eq!(parse_rfc3339_ms(text), None, "{text:?}");
        }
    }

    proptest! {
        #[test]
        fn parse_inverts_format(ms in 0u64..253_402_300_800_000) {
            prop_assert_eq!(parse_rfc3339_ms(&format_rfc3339_ms(ms)), Some(ms));
        }
    }
}
