//! flock-core's conformance suite against `SqliteStore`: every check, durable ones
//! included, each on fresh database files.

use flock_core::conformance;

use crate::support::Files;

macro_rules! checks {
    ($($check:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $check() {
            conformance::$check(&Files::new()).await;
        }
    )*};
}

checks!(
    publish_and_get,
    duplicate_publish_is_refused,
    publish_all_is_atomic,
    arrival_order,
    typed_and_raw_payloads,
    query_filters,
    query_limit,
    visibility_filter,
    register_agent_is_idempotent,
    consumption_and_unconsumed,
    commit_run_is_atomic,
    failures_are_kept,
    everything_survives_reopen,
    typed_decoding_after_reopen,
);

/// The suite's own list, so a check added to `all` but not above still runs.
#[tokio::test]
async fn the_whole_suite_passes() {
    conformance::all(&Files::new()).await;
}
