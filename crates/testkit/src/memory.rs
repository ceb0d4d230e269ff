//! Process memory readings for the tests that bound a load's peak.

/// This process's peak resident set (`VmHWM` of `/proc/self/status`) in bytes; `None` where the kernel does not
/// report it (not Linux). A test that bounds a peak should run alone in its own test binary, so that no other test
/// of the same process raised the mark.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
