//! Subscriptions of flock-rs: what an agent consumes, which artifacts pass, and how
//! they are batched.
//!
//! - [`BatchSpec`]: the validated size-or-timeout batching rule.
//! - [`Subscribe`]: the typed builder users write in `.consumes::<T>(..)`.
//! - [`Subscription`]: the erased, validated form the runtime matches artifacts against.

mod batch_spec;
mod duration;
mod subscription;

pub use batch_spec::{BatchSpec, BatchSpecBuilder, IntoBatchSpec, InvalidBatchSpec};
pub use duration::{IntoTimeout, InvalidDuration};
pub use subscription::{MatchOutcome, Subscribe, Subscription, SubscriptionError};
