//! Turning measurements into what people read: the markdown table, the comparison of each
//! proxied scenario with its direct counterpart, the targets check, and the JSON file.

use serde::Serialize;

use crate::metrics::Measurement;

/// One scenario's result (the median over its rounds).
#[derive(Debug, Clone)]
pub struct Row {
    pub name: String,
    pub baseline: Option<String>,
    pub rounds: usize,
    pub m: Measurement,
}

/// How a proxied scenario compares with its direct counterpart.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Comparison {
    pub p50_delta_us: Option<f64>,
    pub p99_delta_us: Option<f64>,
    /// calls/s at 64 in flight, as a fraction of the direct scenario's.
    pub calls_per_sec_64_ratio: Option<f64>,
}

/// The targets the proxy is held to over stdio.
pub mod targets {
    pub const P50_DELTA_US: f64 = 50.0;
    pub const P99_DELTA_US: f64 = 150.0;
    pub const CALLS_PER_SEC_64_RATIO: f64 = 0.8;
    pub const RSS_KB: f64 = 20.0 * 1024.0;
}

pub fn compare(row: &Row, rows: &[Row]) -> Option<Comparison> {
    let base = rows
        .iter()
        .find(|r| Some(&r.name) == row.baseline.as_ref())?;
    let delta = |a: Option<f64>, b: Option<f64>| Some(a? - b?);
    Some(Comparison {
        p50_delta_us: delta(row.m.p50_us, base.m.p50_us),
        p99_delta_us: delta(row.m.p99_us, base.m.p99_us),
        calls_per_sec_64_ratio: row
            .m
            .calls_per_sec_64
            .zip(base.m.calls_per_sec_64)
            .filter(|&(_, b)| b > 0.0)
            .map(|(a, b)| a / b),
    })
}

pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::from(
        "| scenario | p50 µs | p90 µs | p99 µs | calls/s @1 | @16 | @64 | RSS KB | CPU µs/call \
         | startup ms | Δp50 µs | Δp99 µs | @64 vs direct |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    for row in rows {
        let c = compare(row, rows).unwrap_or_default();
        let m = &row.m;
        let cells = [
            row.name.clone(),
            fixed(m.p50_us, 1),
            fixed(m.p90_us, 1),
            fixed(m.p99_us, 1),
            fixed(m.calls_per_sec_1, 0),
            fixed(m.calls_per_sec_16, 0),
            fixed(m.calls_per_sec_64, 0),
            fixed(m.rss_kb, 0),
            fixed(m.cpu_us_per_call, 1),
            fixed(m.startup_ms, 1),
            signed(c.p50_delta_us),
            signed(c.p99_delta_us),
            c.calls_per_sec_64_ratio
                .map_or("–".to_owned(), |r| format!("{r:.2}×")),
        ];
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out
}

/// The targets check for every proxied scenario that measured everything the targets need,
/// as markdown bullet lines.
pub fn targets_check(rows: &[Row]) -> String {
    let mut out = String::new();
    for row in rows {
        // The stdio targets are for stdio scenarios; HTTP ones have `http_targets_check`.
        if row.baseline.as_deref() == Some("direct-http") {
            continue;
        }
        let Some(c) = compare(row, rows) else {
            continue;
        };
        let (Some(d50), Some(d99), Some(ratio), Some(rss)) = (
            c.p50_delta_us,
            c.p99_delta_us,
            c.calls_per_sec_64_ratio,
            row.m.rss_kb,
        ) else {
            continue;
        };
        let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
        out.push_str(&format!(
            "- {}: Δp50 {d50:+.1} µs (≤ {} µs: {}); Δp99 {d99:+.1} µs (≤ {} µs: {}); \
             calls/s @64 {:.0}% of direct (≥ {:.0}%: {}); peak RSS {:.1} MB (≤ {:.0} MB: {})\n",
            row.name,
            targets::P50_DELTA_US,
            verdict(d50 <= targets::P50_DELTA_US),
            targets::P99_DELTA_US,
            verdict(d99 <= targets::P99_DELTA_US),
            ratio * 100.0,
            targets::CALLS_PER_SEC_64_RATIO * 100.0,
            verdict(ratio >= targets::CALLS_PER_SEC_64_RATIO),
            rss / 1024.0,
            targets::RSS_KB / 1024.0,
            verdict(rss <= targets::RSS_KB),
        ));
    }
    out
}

/// The HTTP listener target (≥ 15,000 calls/s at 64 in flight, p99 ≤ 5 ms at 1 in flight)
/// for each toolgate scenario whose client speaks HTTP.
pub fn http_targets_check(rows: &[Row]) -> String {
    const CALLS_PER_SEC_64: f64 = 15_000.0;
    const P99_US: f64 = 5_000.0;
    let mut out = String::new();
    for row in rows {
        if !matches!(
            row.name.as_str(),
            "toolgate-http" | "toolgate-http-upstream"
        ) {
            continue;
        }
        let (Some(c64), Some(p99)) = (row.m.calls_per_sec_64, row.m.p99_us) else {
            continue;
        };
        let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
        out.push_str(&format!(
            "- {}: {c64:.0} calls/s @64 (≥ {CALLS_PER_SEC_64:.0}: {}); p99 {p99:.1} µs (≤ {P99_US:.0} µs: {})\n",
            row.name,
            verdict(c64 >= CALLS_PER_SEC_64),
            verdict(p99 <= P99_US),
        ));
    }
    out
}

#[derive(Serialize)]
struct JsonReport<'a> {
    scenarios: Vec<JsonScenario<'a>>,
}

#[derive(Serialize)]
struct JsonScenario<'a> {
    name: &'a str,
    p50_us: Option<f64>,
    p90_us: Option<f64>,
    p99_us: Option<f64>,
    /// calls/s with one call in flight (the same as `calls_per_sec_1`).
    calls_per_sec: Option<f64>,
    calls_per_sec_1: Option<f64>,
    calls_per_sec_16: Option<f64>,
    calls_per_sec_64: Option<f64>,
    rss_kb: Option<f64>,
    cpu_us_per_call: Option<f64>,
    startup_ms: Option<f64>,
    calls_verified: u64,
    rounds: usize,
    baseline: Option<&'a str>,
    #[serde(flatten)]
    comparison: Option<Comparison>,
}

pub fn json(rows: &[Row]) -> anyhow::Result<String> {
    let scenarios = rows
        .iter()
        .map(|row| JsonScenario {
            name: &row.name,
            p50_us: row.m.p50_us,
            p90_us: row.m.p90_us,
            p99_us: row.m.p99_us,
            calls_per_sec: row.m.calls_per_sec_1,
            calls_per_sec_1: row.m.calls_per_sec_1,
            calls_per_sec_16: row.m.calls_per_sec_16,
            calls_per_sec_64: row.m.calls_per_sec_64,
            rss_kb: row.m.rss_kb,
            cpu_us_per_call: row.m.cpu_us_per_call,
            startup_ms: row.m.startup_ms,
            calls_verified: row.m.calls_verified,
            rounds: row.rounds,
            baseline: row.baseline.as_deref(),
            comparison: compare(row, rows),
        })
        .collect();
    Ok(serde_json::to_string_pretty(&JsonReport { scenarios })?)
}

fn fixed(value: Option<f64>, decimals: usize) -> String {
    value.map_or("–".to_owned(), |v| format!("{v:.decimals$}"))
}

fn signed(value: Option<f64>) -> String {
    value.map_or("–".to_owned(), |v| format!("{v:+.1}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn row(name: &str, baseline: Option<&str>, p50: f64, cps64: f64) -> Row {
        Row {
            name: name.to_owned(),
            baseline: baseline.map(str::to_owned),
            rounds: 1,
            m: Measurement {
                p50_us: Some(p50),
                p99_us: Some(p50 * 2.0),
                calls_per_sec_64: Some(cps64),
                rss_kb: Some(4096.0),
                ..Measurement::default()
            },
        }
    }

    #[test]
    fn compares_with_the_named_baseline() {
        let rows = [
            row("direct", None, 20.0, 100_000.0),
            row("proxied", Some("direct"), 50.0, 80_000.0),
        ];
        let c = compare(&rows[1], &rows).unwrap();
        assert_eq!(c.p50_delta_us, Some(30.0));
        assert_eq!(c.p99_delta_us, Some(60.0));
        assert_eq!(c.calls_per_sec_64_ratio, Some(0.8));
        assert!(compare(&rows[0], &rows).is_none());
    }

    #[test]
    fn table_and_targets_render() {
        let rows = [
            row("direct", None, 20.0, 100_000.0),
            row("proxied", Some("direct"), 90.0, 50_000.0),
        ];
        let table = markdown(&rows);
        assert!(table.contains("| proxied | 90.0 | – | 180.0 |"), "{table}");
        assert!(table.contains("| +70.0 | +140.0 | 0.50× |"), "{table}");
        let check = targets_check(&rows);
        assert!(
            check.contains("Δp50 +70.0 µs (≤ 50 µs: NOT met)"),
            "{check}"
        );
        assert!(check.contains("Δp99 +140.0 µs (≤ 150 µs: met)"), "{check}");
        assert!(check.contains("50% of direct (≥ 80%: NOT met)"), "{check}");
        let json: serde_json::Value = serde_json::from_str(&json(&rows).unwrap()).unwrap();
        assert_eq!(json["scenarios"][1]["p50_delta_us"], 70.0);
        assert_eq!(json["scenarios"][0]["calls_per_sec_64"], 100_000.0);
    }
}
