//! Engines from plain Rust functions for AND gates and joins: one complete group per
//! run, or a flushed batch of groups with each group kept whole.

use std::fmt;

use async_trait::async_trait;

use crate::{
    BatchInputs, Engine, EngineContext, EngineError, Inputs, IntoOutputs, Outputs,
    func::{BoxError, finish},
};

/// The groups of a batch, each as the [`Inputs`] of one group.
fn groups(batch: &BatchInputs) -> Vec<Inputs> {
    batch
        .items()
        .map(|group| Inputs::new(group.to_vec()))
        .collect()
}

/// A one-group-at-a-time engine from a function; see [`group_fn`].
pub struct GroupFn<F> {
    f: F,
    name: String,
}

/// A batch-of-groups engine from a function; see [`group_batch_fn`].
pub struct GroupBatchFn<F> {
    f: F,
    name: String,
}

macro_rules! named {
    ($name:ident) => {
        impl<F> $name<F> {
            /// Names the engine (for errors and traces).
            pub fn named(mut self, name: impl Into<String>) -> Self {
                self.name = name.into();
                self
            }
        }

        impl<F> fmt::Debug for $name<F> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("name", &self.name)
                    .finish()
            }
        }
    };
}

named!(GroupFn);
named!(GroupBatchFn);

/// An engine that processes one complete group of an AND gate or join per run: the
/// function gets the group's [`Inputs`] (read them with `inputs.get::<T>()` and
/// `inputs.values::<T>()`).
///
/// ```
/// use flock_engines::{group_fn, Engine, EngineContext, Inputs, BatchItem, BatchSummary};
///
/// let engine = group_fn(|_ctx: &EngineContext, inputs: Inputs| {
///     let values: Vec<i64> = inputs.values::<BatchItem>().map(|i| i.value).collect();
///     Ok::<_, String>(BatchSummary { batch_size: values.len(), values })
/// });
/// assert!(engine.supports_single() && !engine.supports_batch());
/// ```
pub fn group_fn<F, R, E>(f: F) -> GroupFn<F>
where
    F: Fn(&EngineContext, Inputs) -> Result<R, E> + Send + Sync + 'static,
    R: IntoOutputs,
    E: Into<BoxError>,
{
    GroupFn {
        f,
        name: "group_fn".to_owned(),
    }
}

/// An engine that processes a flushed batch of groups (a join that batches): the
/// function gets one [`Inputs`] per group, in flush order, each group whole.
///
/// ```
/// use flock_engines::{group_batch_fn, Engine, EngineContext, Inputs, Outputs};
///
/// let engine = group_batch_fn(|ctx: &EngineContext, groups: Vec<Inputs>| {
///     println!("{} groups, flushed by {:?}", groups.len(), ctx.flush_reason());
///     Ok::<_, String>(Outputs::none())
/// });
/// assert!(engine.supports_batch() && !engine.supports_single());
/// ```
pub fn group_batch_fn<F, R, E>(f: F) -> GroupBatchFn<F>
where
    F: Fn(&EngineContext, Vec<Inputs>) -> Result<R, E> + Send + Sync + 'static,
    R: IntoOutputs,
    E: Into<BoxError>,
{
    GroupBatchFn {
        f,
        name: "group_batch_fn".to_owned(),
    }
}

#[async_trait]
impl<F, R, E> Engine for GroupFn<F>
where
    F: Fn(&EngineContext, Inputs) -> Result<R, E> + Send + Sync + 'static,
    R: IntoOutputs,
    E: Into<BoxError>,
{
    fn name(&self) -> &str {
        &self.name
    }

    async fn evaluate(&self, ctx: &EngineContext, inputs: Inputs) -> Result<Outputs, EngineError> {
        finish((self.f)(ctx, inputs))
    }
}

#[async_trait]
impl<F, R, E> Engine for GroupBatchFn<F>
where
    F: Fn(&EngineContext, Vec<Inputs>) -> Result<R, E> + Send + Sync + 'static,
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
        // A run of one group is a batch of one.
        finish((self.f)(ctx, vec![inputs]))
    }

    async fn evaluate_batch(
        &self,
        ctx: &EngineContext,
        batch: BatchInputs,
    ) -> Result<Outputs, EngineError> {
        finish((self.f)(ctx, groups(&batch)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use flock_core::{Artifact, Payload};

    use super::*;
    use crate::BatchItem;

    fn item(value: i64) -> Arc<Artifact> {
        Arc::new(Artifact::new(Payload::new(BatchItem { value }), "external"))
    }

    #[tokio::test]
    async fn batches_of_groups_arrive_as_groups() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let engine = group_batch_fn(move |_: &EngineContext, groups: Vec<Inputs>| {
            let shape: Vec<Vec<i64>> = groups
                .iter()
                .map(|g| g.values::<BatchItem>().map(|i| i.value).collect())
                .collect();
            sink.lock().unwrap().push(shape);
            Ok::<_, String>(Outputs::none())
        });
        let ctx = EngineContext::new("qc");
        let batch = BatchInputs::from_groups(vec![vec![item(1), item(2)], vec![item(3), item(4)]]);
        engine.evaluate_batch(&ctx, batch).await.unwrap();
        engine
            .evaluate(&ctx, Inputs::new(vec![item(5), item(6)]))
            .await
            .unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            vec![vec![vec![1, 2], vec![3, 4]], vec![vec![5, 6]]]
        );
    }
}
