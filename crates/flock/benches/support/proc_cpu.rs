//! CPU time from `/proc` (Linux), shared by the benchmarks that report it.

use std::time::Duration;

/// `utime + stime` of a `/proc/.../stat` line, at 100 ticks per second.
pub(crate) fn stat_cpu(stat: &str) -> Duration {
    // Fields after the command name (which may hold spaces) start at `state`;
    // utime and stime are the 14th and 15th fields of the line.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}
