//! One attempt of a run: component hooks, the engine call, the output contract.
//! Every piece of user code in it is contained: a panic fails the attempt.

use std::{future::Future, panic::AssertUnwindSafe};

use flock_core::{Payload, Visibility, panic_message};
use flock_engines::{AgentComponent, EngineContext, EngineError, Inputs, Outputs};
use futures::FutureExt;
use tracing::Instrument;

use super::{Lifecycle, outputs};
use crate::{agent::Agent, spans, work::Work};

/// One attempt: hooks, engine, hooks, output check. Returns the payloads to publish,
/// each with its declared visibility (`None`: derived from the inputs).
pub(super) async fn once(
    agent: &Agent,
    life: &Lifecycle,
    ctx: &EngineContext,
    work: &Work,
    consumed: &mut bool,
) -> Result<Vec<(Payload, Option<Visibility>)>, EngineError> {
    let components = &agent.components;
    if !components.is_empty() {
        life.initialized
            .get_or_try_init(|| async {
                for c in components {
                    guarded(c.as_ref(), "initialize", c.initialize(&agent.name)).await?;
                }
                Ok::<_, EngineError>(())
            })
            .await?;
    }
    let artifacts = work.artifacts();
    if !*consumed {
        for c in components {
            guarded(
                c.as_ref(),
                "before_consume",
                c.before_consume(ctx, artifacts),
            )
            .await?;
        }
        *consumed = true;
    }
    for c in components {
        guarded(
            c.as_ref(),
            "before_evaluate",
            c.before_evaluate(ctx, artifacts),
        )
        .await?;
    }
    let mut outputs = evaluate(agent, ctx, work).await?;
    for c in components {
        guarded(
            c.as_ref(),
            "after_evaluate",
            c.after_evaluate(ctx, &mut outputs),
        )
        .await?;
    }
    outputs::check(agent, work.items(), outputs)
}

/// Calls the engine in its own span; a panic (in the engine, or in its `name`) is
/// an error.
async fn evaluate(agent: &Agent, ctx: &EngineContext, work: &Work) -> Result<Outputs, EngineError> {
    let engine = &agent.engine;
    let call = async {
        match work {
            Work::Single(artifacts) => {
                let span = spans::engine_evaluate(engine.name(), ctx.attempt, None);
                engine
                    .evaluate(ctx, Inputs::new(artifacts.clone()))
                    .instrument(span)
                    .await
            }
            Work::Batch(flushed) => {
                let span = spans::engine_evaluate(engine.name(), ctx.attempt, Some(flushed.len()));
                engine
                    .evaluate_batch(ctx, flushed.inputs())
                    .instrument(span)
                    .await
            }
        }
    };
    match AssertUnwindSafe(call).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => Err(EngineError::new(format!(
            "engine panicked: {}",
            panic_message(panic.as_ref())
        ))),
    }
}

/// Runs a component hook that may fail, naming the component in its error; a panic
/// is an error too.
async fn guarded(
    component: &dyn AgentComponent,
    hook: &str,
    future: impl Future<Output = Result<(), EngineError>>,
) -> Result<(), EngineError> {
    match AssertUnwindSafe(future).catch_unwind().await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(EngineError::new(format!(
            "component '{}' failed in {hook}: {error}",
            component.name()
        ))),
        Err(panic) => Err(EngineError::new(format!(
            "component '{}' panicked in {hook}: {}",
            component.name(),
            panic_message(panic.as_ref())
        ))),
    }
}

/// Runs a component hook that cannot fail the run; a panic is logged.
pub(crate) async fn observe(
    component: &dyn AgentComponent,
    hook: &str,
    future: impl Future<Output = ()>,
) {
    if let Err(panic) = AssertUnwindSafe(future).catch_unwind().await {
        tracing::error!(
            component = component.name(),
            hook,
            panic = %panic_message(panic.as_ref()),
            "component panicked; the runtime continues"
        );
    }
}
