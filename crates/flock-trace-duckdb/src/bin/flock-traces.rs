//! `flock-traces [PATH]`: prints the batch flushes recorded in a flock-rs trace file
//! (default `.flock/traces.duckdb`), with the user guide's query, read-only (also
//! while a program writes it).

use std::{path::PathBuf, process::ExitCode, time::Duration};

use flock_trace_duckdb::{DEFAULT_TRACE_FILE, open_read_only};

/// The guide's query, verbatim.
const GUIDE_QUERY: &str = "SELECT name, attributes->'$.batch_size' as size, attributes->'$.flush_reason' as reason, duration_ms FROM spans WHERE name LIKE '%batch%' ORDER BY start_time DESC LIMIT 20";

fn main() -> ExitCode {
    let path = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from(DEFAULT_TRACE_FILE), PathBuf::from);
    match run(&path) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("flock-traces: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(path: &std::path::Path) -> Result<(), String> {
    if !path.is_file() {
        return Err(format!(
            "no trace file at '{}'; run a program with FLOCK_TRACE_FILE=true first",
            path.display()
        ));
    }
    // The program may be writing it: retry while a write holds the file.
    let conn = open_read_only(path, Duration::from_secs(5))
        .map_err(|e| format!("cannot open '{}': {e}", path.display()))?;
    let total: i64 = conn
        .query_row("SELECT count(*) FROM spans", [], |row| row.get(0))
        .map_err(|e| format!("'{}' has no spans table: {e}", path.display()))?;
    println!("{GUIDE_QUERY}\n");
    let mut stmt = conn.prepare(GUIDE_QUERY).map_err(|e| e.to_string())?;
    let rows = stmt
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, Option<String>>(1)?,
                row.get::<_, Option<String>>(2)?,
                row.get::<_, f64>(3)?,
            ))
        })
        .map_err(|e| e.to_string())?;
    let mut shown = 0;
    for row in rows {
        let (name, size, reason, duration) = row.map_err(|e| e.to_string())?;
        let size = size.unwrap_or_else(|| "-".into());
        let reason = reason.map_or_else(|| "-".into(), |r| r.trim_matches('"').to_owned());
        println!("{name}: {size} items, {reason} trigger, {duration:.3}ms");
        shown += 1;
    }
    println!(
        "\n{shown} batch span(s) shown; {total} span(s) in '{}'",
        path.display()
    );
    Ok(())
}
