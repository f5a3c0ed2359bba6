//! Test support shared by the tests of the flock-rs crates: what more than one
//! crate's tests need, kept once.
//!
//! Only the crates of this workspace depend on it, and only as a dev-dependency; it
//! is never published (`publish = false`) and no library code may use it. It depends
//! on no flock crate, so any crate's tests can use it without a second copy of that
//! crate in the test build.
//!
//! - [`capture`]: a tracing layer that keeps spans and events as text, for
//!   assertions on what the code under test traced.
//! - [`postgres`]: the PostgreSQL server of the tests that need one, and what they
//!   do without one (fail in CI, pass over their body on a developer's machine).
//! - [`stock_duckdb`]: stock DuckDB (Python) reading what a test wrote.
//! - [`otlp`]: a one-request fake OTLP/HTTP collector.

pub mod capture;
pub mod otlp;
pub mod postgres;
pub mod stock_duckdb;

pub use capture::{Capture, CaptureGuard, Record, RecordKind};
