//! Starting the DuckDB side of a pipeline: checking the configuration, creating
//! the file and its table, applying the TTL, and starting the writer thread.

use std::{
    path::Path,
    sync::atomic::AtomicU64,
    time::{Duration, SystemTime},
};

use crate::{
    TraceConfig, TraceError, json::unix_nanos, processor::DuckDbProcessor, store::TraceFile,
    writer::Settings,
};

const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// Startup does not wait long for another process holding the file: the table
/// and the TTL are left to the writer's first session instead.
const STARTUP_LOCK_WAIT: Duration = Duration::from_millis(500);

/// Refuses settings the writer cannot work with.
pub(crate) fn validate(config: &TraceConfig) -> Result<(), TraceError> {
    if config.export_batch_size > config.queue_size {
        return Err(TraceError::InvalidConfig(format!(
            "export batch size must be at most the queue size {}, got {}",
            config.queue_size, config.export_batch_size
        )));
    }
    if config.export_interval.is_zero() {
        // The writer would spin on a zero timer.
        return Err(TraceError::InvalidConfig(
            "export interval must be greater than zero, got 0ns".to_owned(),
        ));
    }
    Ok(())
}

/// Creates the file and its table (unless another process holds it), applies the
/// TTL, and starts the writer.
pub(crate) fn start_processor(
    config: &TraceConfig,
    path: &Path,
) -> Result<DuckDbProcessor, TraceError> {
    let mut file = TraceFile::new(path)?;
    let mut ttl_cutoff = config
        .ttl_days
        .map(|days| unix_nanos(SystemTime::now()).saturating_sub(i64::from(days) * NANOS_PER_DAY));
    match file.attach_waiting(STARTUP_LOCK_WAIT, &AtomicU64::new(0)) {
        Ok(()) => {
            if let Some(cutoff) = ttl_cutoff.take() {
                file.delete_before(cutoff)?;
                file.checkpoint()?;
            }
            file.detach();
        }
        Err(TraceError::Locked { .. }) => {}
        Err(err) => return Err(err),
    }
    let settings = Settings {
        batch_size: config.export_batch_size.get(),
        interval: config.export_interval,
        lock_timeout: config.lock_timeout,
    };
    DuckDbProcessor::start(file, config.queue_size.get(), settings, ttl_cutoff)
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;

    use super::*;

    #[test]
    fn zero_export_interval_is_rejected() {
        let config = TraceConfig::new("unused.duckdb").export_interval(Duration::ZERO);
        assert_eq!(
            validate(&config).unwrap_err().to_string(),
            "invalid trace configuration: export interval must be greater than zero, got 0ns"
        );
        // And before anything starts: no file, no pipeline.
        assert!(config.build().is_err());
        assert!(!Path::new("unused.duckdb").exists());
    }

    #[test]
    fn batch_larger_than_queue_is_rejected() {
        let config = TraceConfig::new("unused.duckdb").queue_size(NonZeroUsize::new(10).unwrap());
        assert_eq!(
            validate(&config).unwrap_err().to_string(),
            "invalid trace configuration: export batch size must be at most the queue size 10, got 32768"
        );
    }
}
