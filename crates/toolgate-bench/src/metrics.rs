//! The numbers a scenario produces, and the arithmetic that turns raw samples into them:
//! nearest-rank percentiles over latency samples, and the median across repeated rounds.
//!
//! Nearest-rank (the smallest sample with at least p% of samples at or below it) is used rather
//! than interpolation so every reported percentile is a latency that was actually observed.

use std::time::Duration;

use serde::Serialize;

/// Latency percentiles of one phase, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
}

impl Latency {
    /// Percentiles of `samples` (sorted in place). `None` when there are no samples.
    pub fn from_samples(samples: &mut [Duration]) -> Option<Latency> {
        samples.sort_unstable();
        let us = |p| percentile(samples, p).map(|d| d.as_secs_f64() * 1e6);
        Some(Latency {
            p50_us: us(50.0)?,
            p90_us: us(90.0)?,
            p99_us: us(99.0)?,
        })
    }
}

/// Nearest-rank percentile `p` (0–100] of `sorted` (ascending).
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() || !(p > 0.0 && p <= 100.0) {
        return None;
    }
    // Rank is 1-based: ceil(p/100 * n). The float is at most n, so the cast cannot overflow.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// Median of a set of measurements from repeated rounds (the lower middle for even counts,
/// again so the value is one that was measured).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_unstable_by(f64::total_cmp);
    percentile(&v, 50.0)
}

/// Everything measured for one scenario in one round (or the median of several rounds).
/// Fields a scenario does not measure (latency-only sweeps have no throughput) are `None`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Measurement {
    pub p50_us: Option<f64>,
    pub p90_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub calls_per_sec_1: Option<f64>,
    pub calls_per_sec_16: Option<f64>,
    pub calls_per_sec_64: Option<f64>,
    pub rss_kb: Option<f64>,
    pub cpu_us_per_call: Option<f64>,
    pub startup_ms: Option<f64>,
    /// Calls whose answers were checked (all of them: a wrong answer aborts the scenario).
    pub calls_verified: u64,
}

impl Measurement {
    /// Field-by-field median of several rounds; `calls_verified` is the total.
    pub fn median_of(rounds: &[Measurement]) -> Measurement {
        let field = |get: fn(&Measurement) -> Option<f64>| {
            let values: Vec<f64> = rounds.iter().filter_map(get).collect();
            median(&values)
        };
        Measurement {
            p50_us: field(|m| m.p50_us),
            p90_us: field(|m| m.p90_us),
            p99_us: field(|m| m.p99_us),
            calls_per_sec_1: field(|m| m.calls_per_sec_1),
            calls_per_sec_16: field(|m| m.calls_per_sec_16),
            calls_per_sec_64: field(|m| m.calls_per_sec_64),
            rss_kb: field(|m| m.rss_kb),
            cpu_us_per_call: field(|m| m.cpu_us_per_call),
            startup_ms: field(|m| m.startup_ms),
            calls_verified: rounds.iter().map(|m| m.calls_verified).sum(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_on_one_to_hundred() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 90.0), Some(90));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.5), Some(1));
    }

    #[test]
    fn nearest_rank_on_small_sets() {
        assert_eq!(percentile(&[7], 50.0), Some(7));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        // 10 samples: p99 rank is ceil(9.9) = 10, the maximum; p50 rank is 5.
        let v: Vec<u32> = (1..=10).collect();
        assert_eq!(percentile(&v, 99.0), Some(10));
        assert_eq!(percentile(&v, 50.0), Some(5));
        assert_eq!(percentile(&v, 90.0), Some(9));
    }

    #[test]
    fn percentile_rejects_empty_and_out_of_range() {
        assert_eq!(percentile::<u32>(&[], 50.0), None);
        assert_eq!(percentile(&[1], 0.0), None);
        assert_eq!(percentile(&[1], 100.1), None);
        assert_eq!(percentile(&[1], f64::NAN), None);
    }

    #[test]
    fn latency_sorts_and_converts_to_microseconds() {
        let mut samples: Vec<Duration> = (1..=1000).rev().map(Duration::from_micros).collect();
        let l = Latency::from_samples(&mut samples).unwrap();
        assert_eq!(
            l,
            Latency {
                p50_us: 500.0,
                p90_us: 900.0,
                p99_us: 990.0
            }
        );
        assert!(Latency::from_samples(&mut []).is_none());
    }

    #[test]
    fn median_is_a_measured_value() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.0));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[f64::NAN, 5.0]), Some(5.0));
    }

    #[test]
    fn median_of_rounds_skips_unmeasured_fields() {
        let round = |p50, rss| Measurement {
            p50_us: Some(p50),
            rss_kb: rss,
            calls_verified: 10,
            ..Measurement::default()
        };
        let m = Measurement::median_of(&[
            round(30.0, Some(100.0)),
            round(10.0, None),
            round(20.0, Some(300.0)),
        ]);
        assert_eq!(m.p50_us, Some(20.0));
        assert_eq!(m.rss_kb, Some(100.0));
        assert_eq!(m.calls_per_sec_64, None);
        assert_eq!(m.calls_verified, 30);
    }
}
