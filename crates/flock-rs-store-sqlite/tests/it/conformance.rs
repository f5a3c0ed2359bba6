//! flock-core's conformance suite against `SqliteStore`: every check, durable ones
//! included, each on fresh database files.

use crate::support::Files;

flock_core::conformance_tests!(Files::new());
