//! Integration tests of the PostgreSQL store, against a real server: the one
//! `FLOCK_TEST_POSTGRES_URL` names (`cargo xtask test` starts a throw-away one).
//! Every test works in a schema of its own, so they run in parallel.

mod blocking;
mod cluster;
mod conformance;
mod connect;
mod feed;
mod support;
