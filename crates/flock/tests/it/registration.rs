//! Registration validates everything up front, with clear errors.

use std::{sync::Arc, time::Duration};

use flock::{RegistrationError, prelude::*};

use crate::{Item, recorder};

fn message(result: Result<flock::AgentHandle, RegistrationError>) -> String {
    result.unwrap_err().to_string()
}

#[test]
fn invalid_batch_specs_are_rejected_at_registration() {
    let flock = Flock::new();
    let cases = [
        (
            BatchSpec::size(0),
            "agent 'a', subscription 0: invalid batch spec: batch size must be at least 1, got 0",
        ),
        (
            BatchSpec::timeout(Duration::ZERO),
            "agent 'a', subscription 0: invalid batch spec: batch timeout must be greater than zero, got 0s",
        ),
        (
            BatchSpec::size(3).timeout(chrono::TimeDelta::seconds(-1)),
            "agent 'a', subscription 0: invalid batch spec: batch timeout must be positive: duration must not be negative, got -PT1S",
        ),
    ];
    for (spec, expected) in cases {
        let (_, engine) = recorder();
        let result = flock
            .agent("a")
            .consumes::<Item>(Subscribe::new().batch(spec))
            .with_engine(engine)
            .register();
        assert_eq!(message(result), expected);
    }
}

#[test]
fn duplicate_names_are_rejected() {
    let flock = Flock::new();
    let (_, engine) = recorder();
    flock
        .agent("twin")
        .consumes::<Item>(Subscribe::new().batch(BatchSpec::size(2)))
        .with_engine(engine)
        .register()
        .unwrap();
    let (_, engine) = recorder();
    let result = flock
        .agent("twin")
        .consumes::<Item>(Subscribe::new().batch(BatchSpec::size(2)))
        .with_engine(engine)
        .register();
    assert_eq!(
        message(result),
        "an agent named 'twin' is already registered; agent names must be unique"
    );
}

#[test]
fn batch_subscription_needs_batch_evaluation() {
    let flock = Flock::new();
    let single_only = map_fn(|_: &EngineContext, _: Arc<Item>| Ok::<_, String>(Outputs::none()));
    let result = flock
        .agent("a")
        .consumes::<Item>(Subscribe::new().batch(BatchSpec::size(2)))
        .with_engine(single_only.named("per_item"))
        .register();
    assert_eq!(
        message(result),
        "agent 'a', subscription 0 batches, but engine `per_item` has no batch evaluation; implement Engine::evaluate_batch and supports_batch, or drop .batch(..)"
    );
    let (_, batch_only) = recorder();
    let result = flock
        .agent("b")
        .consumes::<Item>(Subscribe::new())
        .with_engine(batch_only)
        .register();
    assert!(message(result).contains("only evaluates batches; add .batch(..)"));
}

#[test]
fn incomplete_declarations_are_rejected() {
    let flock = Flock::new();
    let (_, engine) = recorder();
    assert_eq!(
        message(
            flock
                .agent("  ")
                .consumes::<Item>(Subscribe::new())
                .with_engine(engine)
                .register()
        ),
        "agent name must not be empty"
    );
    let (_, engine) = recorder();
    assert_eq!(
        message(flock.agent("idle").with_engine(engine).register()),
        "agent 'idle' consumes nothing; add at least one .consumes::<T>(..)"
    );
    assert_eq!(
        message(
            flock
                .agent("brainless")
                .consumes::<Item>(Subscribe::new())
                .register()
        ),
        "agent 'brainless' has no engine; add .with_engine(..)"
    );
    let (_, engine) = recorder();
    assert_eq!(
        message(
            flock
                .agent("stuck")
                .consumes::<Item>(Subscribe::new().batch(BatchSpec::size(1)))
                .with_engine(engine)
                .max_concurrency(0)
                .register()
        ),
        "agent 'stuck': max_concurrency must be at least 1, got 0"
    );
}

#[test]
fn conflicting_type_names_are_rejected() {
    mod other {
        use serde::{Deserialize, Serialize};

        #[derive(Debug, Clone, Serialize, Deserialize, flock::FlockType)]
        pub(crate) struct Item {
            pub(crate) name: String,
        }
    }
    let flock = Flock::new();
    flock.register_type::<Item>().unwrap();
    let (_, engine) = recorder();
    let result = flock
        .agent("confused")
        .consumes::<Item>(Subscribe::new().batch(BatchSpec::size(1)))
        .publishes::<other::Item>()
        .with_engine(engine)
        .register();
    let text = message(result);
    assert!(
        text.starts_with(
            "agent 'confused': artifact type name 'Item' is already registered by rust type"
        ),
        "{text}"
    );
}
