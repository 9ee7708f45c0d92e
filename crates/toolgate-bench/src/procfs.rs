//! What the kernel knows about the process under test: its peak resident memory (`VmHWM` in
//! `/proc/<pid>/status`) and the CPU time it has used (`utime + stime` in `/proc/<pid>/stat`).
//!
//! Both are read from the direct child — toolgate itself in a proxied scenario, the fixture in a
//! direct one — so the fixture's own cost never counts against the proxy. The parsers are pure
//! functions over the file text so they can be tested without a process.

use anyhow::Context;

/// Peak resident set size of `pid`, in KiB.
pub fn peak_rss_kb(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_vm_hwm(&text).with_context(|| format!("no VmHWM line in {path}"))
}

/// CPU time `pid` has used so far (user + system, all threads), in clock ticks.
pub fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_cpu_ticks(&text).with_context(|| format!("cannot parse utime/stime in {path}"))
}

/// Clock ticks per second (`CLK_TCK`), the unit of `/proc/<pid>/stat` times.
///
/// Asked of `getconf` because reading it via `sysconf` would need `unsafe`, which the workspace
/// forbids; every Linux build in practice uses 100, the fallback.
pub fn clock_ticks_per_sec() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// The `VmHWM:` value of a `/proc/<pid>/status` text, in KiB.
pub fn parse_vm_hwm(status: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix("VmHWM:")?;
        let mut parts = rest.split_whitespace();
        let value = parts.next()?.parse().ok()?;
        // The kernel always reports kB; anything else would be a format change to notice.
        (parts.next() == Some("kB")).then_some(value)
    })
}

/// `utime + stime` (fields 14 and 15) of a `/proc/<pid>/stat` line.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // Field 2 is the command name in parentheses and may itself contain spaces and ')', so
    // count fields from the last ')'. After it, field 3 (state) is index 0.
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn vm_hwm_is_read_in_kib() {
        let status =
            "Name:\ttoolgate\nVmPeak:\t  20000 kB\nVmHWM:\t    8123 kB\nVmRSS:\t    7000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(8123));
    }

    #[test]
    fn vm_hwm_missing_or_odd_unit_is_none() {
        assert_eq!(parse_vm_hwm("Name:\tx\nVmRSS:\t 1 kB\n"), None);
        assert_eq!(parse_vm_hwm("VmHWM:\t 12 MB\n"), None);
        assert_eq!(parse_vm_hwm("VmHWM:\n"), None);
    }

    #[test]
    fn cpu_ticks_add_user_and_system() {
        // A real line shape, with a command name that contains spaces and a parenthesis.
        let stat = "4242 (tool gate) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    37 5 0 0 20 0 3 0 123456 10000000 2000 18446744073709551615";
        assert_eq!(parse_cpu_ticks(stat), Some(42));
    }

    #[test]
    fn cpu_ticks_truncated_line_is_none() {
        assert_eq!(parse_cpu_ticks("4242 (toolgate) S 1 2 3"), None);
        assert_eq!(parse_cpu_ticks("no parenthesis here"), None);
    }

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(peak_rss_kb(pid).unwrap() > 0);
        cpu_ticks(pid).unwrap();
        assert!(clock_ticks_per_sec() > 0);
    }
}
