//! Test support shared by several test modules of this binary.
//!
//! - [`probe`]: the probe engine, which logs every call and fails as its inputs'
//!   faults plan, for the runtime property tests and the stress test;
//! - [`runs`]: the checks of a probe log those tests share.

pub(crate) mod probe;
pub(crate) mod runs;
