//! UTC timestamps for log lines: one shape (`2026-11-22T02:30:50.123Z`), written by the audit
//! writer and read back by `toolgate status`; keeping both here keeps them each other's inverse.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Formats milliseconds since the Unix epoch as `2026-11-22T02:30:50.123Z`.
pub fn format_rfc3339_ms(ms: u64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(ms);
    humantime::format_rfc3339_millis(at).to_string()
}

/// Parses a UTC timestamp as written by [`format_rfc3339_ms`] back into milliseconds since the
/// Unix epoch.
///
/// Also accepts no fraction or a fraction of any length (digits past milliseconds are
/// truncated), and a lower-case `t`/`z`, as RFC 3339 allows. Offsets other than `Z` are refused
/// rather than converted: the writer never produces them, so one means the line is not ours.
/// Instants before 1970 are refused for the same reason.
pub fn parse_rfc3339_ms(text: &str) -> Option<u64> {
    // `YYYY-MM-DDTHH:MM:SS`, then an optional fraction, then `Z`: the only shape accepted.
    let b = text.as_bytes();
    if b.len() < 20 || !matches!(b[10], b'T' | b't') || !matches!(b[b.len() - 1], b'Z' | b'z') {
        return None;
    }
    // A leap second (`:60`) is never written; the parser would read it as `:59`.
    if b[17] == b'6' {
        return None;
    }
    let fraction = &b[19..b.len() - 1];
    let digits = fraction.get(1..).unwrap_or_default();
    if !fraction.is_empty()
        && (fraction[0] != b'.' || digits.is_empty() || !digits.iter().all(u8::is_ascii_digit))
    {
        return None;
    }
    let mut upper = text.to_string();
    upper.make_ascii_uppercase();
    let at: SystemTime = humantime::parse_rfc3339(&upper).ok()?;
    let ms = at.duration_since(UNIX_EPOCH).ok()?.as_millis();
    u64::try_from(ms).ok()
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
