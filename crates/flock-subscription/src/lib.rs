//! Subscriptions of flock-rs: what an agent consumes, which artifacts pass, and how
//! they are correlated and batched.
//!
//! - [`BatchSpec`]: the validated size-or-timeout batching rule.
//! - [`JoinSpec`]: the validated correlation rule (a key per type, a window).
//! - [`Subscribe`]: the typed builder users write in `.consumes::<T>(..)`.
//! - [`AllOf`]: the builder of AND gates and joins, for `.consumes_all(..)`.
//! - [`Subscription`]: the erased, validated form the runtime matches artifacts against.

mod all_of;
mod batch_spec;
mod duration;
mod join;
mod subscribe;
mod subscription;

pub use all_of::AllOf;
pub use batch_spec::{BatchSpec, BatchSpecBuilder, IntoBatchSpec, InvalidBatchSpec};
pub use duration::{IntoTimeout, InvalidDuration};
pub use join::{
    IntoJoinSpec, IntoJoinWindow, InvalidJoinSpec, JoinKey, JoinKeyError, JoinSpec,
    JoinSpecBuilder, JoinWindow,
};
pub use subscribe::Subscribe;
pub use subscription::{KeyError, MatchOutcome, Subscription, SubscriptionError, TypeSlot};
