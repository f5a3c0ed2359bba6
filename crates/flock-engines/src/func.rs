//! Engines from plain Rust functions, typed on their input.

use std::{error::Error as StdError, fmt, future::Future, marker::PhantomData, sync::Arc};

use async_trait::async_trait;
use flock_core::{Artifact, FlockType};

use crate::{BatchInputs, Engine, EngineContext, EngineError, Inputs, IntoOutputs, Outputs};

pub(crate) type BoxError = Box<dyn StdError + Send + Sync>;

fn typed<I: FlockType>(artifacts: &[Arc<Artifact>]) -> Result<Vec<Arc<I>>, EngineError> {
    // A loop, not `collect` into a `Result`: that cannot size the vector from the
    // slice and regrows it from 4 to 128 on a batch of 100.
    let mut values = Vec::with_capacity(artifacts.len());
    for artifact in artifacts {
        let Some(value) = artifact.payload.downcast_arc::<I>() else {
            return Err(EngineError::UnexpectedInput {
                expected: I::TYPE_NAME,
                got: artifact.type_name(),
            });
        };
        values.push(value);
    }
    Ok(values)
}

fn single<I: FlockType>(inputs: &Inputs) -> Result<Arc<I>, EngineError> {
    let mut values = typed::<I>(inputs.artifacts())?;
    match values.len() {
        1 => Ok(values.remove(0)),
        _ => Err(EngineError::new(format!(
            "map engine expects exactly one '{}' input per run, got {}",
            I::TYPE_NAME,
            values.len()
        ))),
    }
}

/// A function engine's result as the engine's.
pub(crate) fn finish<R: IntoOutputs, E: Into<BoxError>>(
    result: Result<R, E>,
) -> Result<Outputs, EngineError> {
    result
        .map(IntoOutputs::into_outputs)
        .map_err(|e| EngineError::Failed(e.into()))
}

macro_rules! engine_struct {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name<I, F> {
            f: F,
            name: String,
            _input: PhantomData<fn(I)>,
        }

        impl<I, F> $name<I, F> {
            /// Names the engine (for errors and traces).
            pub fn named(mut self, name: impl Into<String>) -> Self {
                self.name = name.into();
                self
            }
        }

        impl<I, F> fmt::Debug for $name<I, F> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).field("name", &self.name).finish()
            }
        }
    };
}

engine_struct!(
    /// A batch engine from a synchronous function; see [`batch_fn`].
    BatchFn
);
engine_struct!(
    /// A batch engine from an async function; see [`batch_fn_async`].
    BatchFnAsync
);
engine_struct!(
    /// A one-at-a-time engine from a synchronous function; see [`map_fn`].
    MapFn
);
engine_struct!(
    /// A one-at-a-time engine from an async function; see [`map_fn_async`].
    MapFnAsync
);

/// An engine that processes whole batches of `I` with a synchronous function.
///
/// The function returns anything [`IntoOutputs`]: one output value, or [`Outputs`]
/// for none or several; its error is anything that
/// converts into a boxed error (a `String`, `&str`, or any error type).
///
/// ```
/// use std::sync::Arc;
/// use flock_engines::{batch_fn, BatchSummary, BatchItem, Engine, EngineContext};
///
/// let engine = batch_fn(|_ctx: &EngineContext, items: Vec<Arc<BatchItem>>| {
///     Ok::<_, String>(BatchSummary {
///         batch_size: items.len(),
///         values: items.iter().map(|i| i.value).collect(),
///     })
/// });
/// assert!(engine.supports_batch() && !engine.supports_single());
/// ```
pub fn batch_fn<I, F, R, E>(f: F) -> BatchFn<I, F>
where
    I: FlockType,
    F: Fn(&EngineContext, Vec<Arc<I>>) -> Result<R, E> + Send + Sync + 'static,
    R: IntoOutputs,
    E: Into<BoxError>,
{
    BatchFn {
        f,
        name: format!("batch_fn<{}>", I::TYPE_NAME),
        _input: PhantomData,
    }
}

/// An engine that processes whole batches of `I` with an async function (for IO:
/// databases, HTTP APIs). The context is passed by value so the future can own it.
pub fn batch_fn_async<I, F, Fut, R, E>(f: F) -> BatchFnAsync<I, F>
where
    I: FlockType,
    F: Fn(EngineContext, Vec<Arc<I>>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, E>> + Send,
    R: IntoOutputs,
    E: Into<BoxError>,
{
    BatchFnAsync {
        f,
        name: format!("batch_fn_async<{}>", I::TYPE_NAME),
        _input: PhantomData,
    }
}

/// An engine that processes one `I` at a time with a synchronous function.
pub fn map_fn<I, F, R, E>(f: F) -> MapFn<I, F>
where
    I: FlockType,
    F: Fn(&EngineContext, Arc<I>) -> Result<R, E> + Send + Sync + 'static,
    R: IntoOutputs,
    E: Into<BoxError>,
{
    MapFn {
        f,
        name: format!("map_fn<{}>", I::TYPE_NAME),
        _input: PhantomData,
    }
}

/// An engine that processes one `I` at a time with an async function.
pub fn map_fn_async<I, F, Fut, R, E>(f: F) -> MapFnAsync<I, F>
where
    I: FlockType,
    F: Fn(EngineContext, Arc<I>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, E>> + Send,
    R: IntoOutputs,
    E: Into<BoxError>,
{
    MapFnAsync {
        f,
        name: format!("map_fn_async<{}>", I::TYPE_NAME),
        _input: PhantomData,
    }
}

#[async_trait]
impl<I, F, R, E> Engine for BatchFn<I, F>
where
    I: FlockType,
    F: Fn(&EngineContext, Vec<Arc<I>>) -> Result<R, E> + Send + Sync + 'static,
    R: IntoOutputs,
    E: Into<BoxError>,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn supports_single(&self) -> bool {
        false
    }

    fn supports_batch(&self) -> bool {
        true
    }

    async fn evaluate(&self, ctx: &EngineContext, inputs: Inputs) -> Result<Outputs, EngineError> {
        // A run of one input is a batch of one.
        finish((self.f)(ctx, typed::<I>(inputs.artifacts())?))
    }

    async fn evaluate_batch(
        &self,
        ctx: &EngineContext,
        batch: BatchInputs,
    ) -> Result<Outputs, EngineError> {
        finish((self.f)(ctx, typed::<I>(batch.artifacts())?))
    }
}

#[async_trait]
impl<I, F, Fut, R, E> Engine for BatchFnAsync<I, F>
where
    I: FlockType,
    F: Fn(EngineContext, Vec<Arc<I>>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, E>> + Send,
    R: IntoOutputs,
    E: Into<BoxError>,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn supports_single(&self) -> bool {
        false
    }

    fn supports_batch(&self) -> bool {
        true
    }

    async fn evaluate(&self, ctx: &EngineContext, inputs: Inputs) -> Result<Outputs, EngineError> {
        finish((self.f)(ctx.clone(), typed::<I>(inputs.artifacts())?).await)
    }

    async fn evaluate_batch(
        &self,
        ctx: &EngineContext,
        batch: BatchInputs,
    ) -> Result<Outputs, EngineError> {
        finish((self.f)(ctx.clone(), typed::<I>(batch.artifacts())?).await)
    }
}

#[async_trait]
impl<I, F, R, E> Engine for MapFn<I, F>
where
    I: FlockType,
    F: Fn(&EngineContext, Arc<I>) -> Result<R, E> + Send + Sync + 'static,
    R: IntoOutputs,
    E: Into<BoxError>,
{
    fn name(&self) -> &str {
        &self.name
    }

    async fn evaluate(&self, ctx: &EngineContext, inputs: Inputs) -> Result<Outputs, EngineError> {
        finish((self.f)(ctx, single::<I>(&inputs)?))
    }
}

#[async_trait]
impl<I, F, Fut, R, E> Engine for MapFnAsync<I, F>
where
    I: FlockType,
    F: Fn(EngineContext, Arc<I>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, E>> + Send,
    R: IntoOutputs,
    E: Into<BoxError>,
{
    fn name(&self) -> &str {
        &self.name
    }

    async fn evaluate(&self, ctx: &EngineContext, inputs: Inputs) -> Result<Outputs, EngineError> {
        finish((self.f)(ctx.clone(), single::<I>(&inputs)?).await)
    }
}
