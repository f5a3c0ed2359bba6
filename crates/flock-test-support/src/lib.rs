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

pub mod capture;

pub use capture::{Capture, CaptureGuard, Record, RecordKind};
