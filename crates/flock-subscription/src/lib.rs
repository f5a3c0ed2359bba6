//! Subscriptions of flock-rs: what an agent consumes, which artifacts pass, and how
//! they are correlated and batched.
//!
//! - [`BatchSpec`]: the validated size-or-timeout batching rule.
//! - [`JoinSpec`]: the validated correlation rule (a key per type, a window).
//! - [`Subscribe`]: the typed builder users write in `.consumes::<T>(..)`.
//! - [`AllOf`]: the builder of AND gates and joins, for `.consumes_all(..)`.
//! - [`Subscription`]: the erased, validated form the runtime matches artifacts against.
//!
//! [`BatchSpec`] and [`JoinWindow`] also come from configuration files (serde, with
//! durations such as `"30s"`, validated as their constructors validate);
//! [`human_duration`] is that duration format for fields of your own.

mod all_of;
mod batch_spec;
mod config;
mod duration;
pub mod human_duration;
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
