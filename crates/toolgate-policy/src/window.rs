//! Counter windows: how long a count lasts, and how windows follow each other.

use std::fmt;

use serde::Serialize;

/// How a window advances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowMode {
    /// Calendar-aligned windows in UTC: a minute window resets at every :00 second, a day
    /// window at midnight UTC, a 15-minute window at :00, :15, :30, :45 (Intercept semantics).
    Fixed,
    /// A window that ends now: the previous window's count is weighted by how much of it
    /// still overlaps, so there is no 2× burst across a boundary.
    Sliding,
}

/// A counter window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    /// Window length in milliseconds (at least one second).
    pub length_ms: u64,
    pub mode: WindowMode,
}

/// Why a window specification was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error(
        "{0:?} is not a window: use minute, hour, day, or a duration such as 30s, 15m, 2h, 7d"
    )]
    Unrecognised(String),
    #[error("window {0:?} is shorter than one second")]
    TooShort(String),
    #[error("window {0:?} is longer than 366 days")]
    TooLong(String),
}

const SECOND: u64 = 1_000;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;
const MAX_LENGTH: u64 = 366 * DAY;

impl Window {
    pub fn fixed(length_ms: u64) -> Window {
        Window {
            length_ms,
            mode: WindowMode::Fixed,
        }
    }

    /// Parses `minute`, `hour`, `day` (Intercept) or a duration: `30s`, `15m`, `2h`, `7d`.
    pub fn parse(text: &str) -> Result<Window, WindowError> {
        let length_ms = match text {
            "second" => SECOND,
            "minute" => MINUTE,
            "hour" => HOUR,
            "day" => DAY,
            _ => parse_duration(text).ok_or_else(|| WindowError::Unrecognised(text.to_string()))?,
        };
        Window::from_millis(length_ms, text)
    }

    /// A window given in whole seconds, as PolicyLayer's `rate_limit: {window: 60}` does.
    pub fn from_seconds(seconds: u64) -> Result<Window, WindowError> {
        let text = format!("{seconds}s");
        Window::from_millis(seconds.saturating_mul(SECOND), &text)
    }

    fn from_millis(length_ms: u64, text: &str) -> Result<Window, WindowError> {
        if length_ms < SECOND {
            return Err(WindowError::TooShort(text.to_string()));
        }
        if length_ms > MAX_LENGTH {
            return Err(WindowError::TooLong(text.to_string()));
        }
        Ok(Window::fixed(length_ms))
    }

    /// The short name used in generated counter names and keys: `minute`, `hour`, `day`,
    /// or the length such as `30s`, `15m`.
    pub fn name(&self) -> String {
        match self.length_ms {
            MINUTE => "minute".into(),
            HOUR => "hour".into(),
            DAY => "day".into(),
            ms if ms % DAY == 0 => format!("{}d", ms / DAY),
            ms if ms % HOUR == 0 => format!("{}h", ms / HOUR),
            ms if ms % MINUTE == 0 => format!("{}m", ms / MINUTE),
            ms if ms % SECOND == 0 => format!("{}s", ms / SECOND),
            ms => format!("{ms}ms"),
        }
    }

    /// Start (ms since the Unix epoch) of the fixed window holding `now_ms`.
    pub fn start_of(&self, now_ms: u64) -> u64 {
        now_ms - now_ms % self.length_ms
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())?;
        if self.mode == WindowMode::Sliding {
            f.write_str(" (sliding)")?;
        }
        Ok(())
    }
}

impl Serialize for Window {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

fn parse_duration(text: &str) -> Option<u64> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let unit_ms = match unit {
        "ms" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => SECOND,
        "m" | "min" | "mins" | "minute" | "minutes" => MINUTE,
        "h" | "hour" | "hours" => HOUR,
        "d" | "day" | "days" => DAY,
        _ => return None,
    };
    number.checked_mul(unit_ms)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_and_durations() {
        assert_eq!(Window::parse("minute").unwrap().length_ms, 60_000);
        assert_eq!(Window::parse("30s").unwrap().length_ms, 30_000);
        assert_eq!(Window::parse("15m").unwrap().name(), "15m");
        assert_eq!(Window::parse("2h").unwrap().name(), "2h");
        assert_eq!(Window::parse("60m").unwrap().name(), "hour");
        assert_eq!(Window::from_seconds(60).unwrap().name(), "minute");
        assert!(matches!(
            Window::parse("fortnight"),
            Err(WindowError::Unrecognised(_))
        ));
        assert!(matches!(
            Window::parse("500ms"),
            Err(WindowError::TooShort(_))
        ));
        assert!(matches!(
            Window::parse("400d"),
            Err(WindowError::TooLong(_))
        ));
        assert!(matches!(
            Window::from_seconds(0),
            Err(WindowError::TooShort(_))
        ));
    }

    #[test]
    fn fixed_windows_align_to_utc() {
        let hour = Window::parse("hour").unwrap();
        // 2026-01-01T10:31:07Z
        let now = 1_767_263_467_000;
        assert_eq!(hour.start_of(now), 1_767_261_600_000);
        assert_eq!(hour.start_of(1_767_261_600_000), 1_767_261_600_000);
    }
}
