//! `SimpleBatchEngine`: the guide's reference batch engine.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{BatchInputs, Engine, EngineContext, EngineError, Inputs, Outputs};

/// One value to batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, flock_core::FlockType)]
#[flock(crate = "flock_core")]
pub struct BatchItem {
    /// The value.
    pub value: i64,
}

/// What [`SimpleBatchEngine`] publishes for each run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, flock_core::FlockType)]
#[flock(crate = "flock_core")]
pub struct BatchSummary {
    /// How many items the run received.
    pub batch_size: usize,
    /// Their values, in arrival order.
    pub values: Vec<i64>,
}

/// Collects [`BatchItem`]s and publishes one [`BatchSummary`] per run: a summary of
/// the whole batch from [`Engine::evaluate_batch`], of one item from
/// [`Engine::evaluate`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SimpleBatchEngine;

impl SimpleBatchEngine {
    fn summarize<'a>(values: impl Iterator<Item = &'a BatchItem>) -> Outputs {
        let values: Vec<i64> = values.map(|item| item.value).collect();
        Outputs::one(BatchSummary {
            batch_size: values.len(),
            values,
        })
    }
}

#[async_trait]
impl Engine for SimpleBatchEngine {
    fn name(&self) -> &str {
        "SimpleBatchEngine"
    }

    fn supports_batch(&self) -> bool {
        true
    }

    async fn evaluate(&self, _ctx: &EngineContext, inputs: Inputs) -> Result<Outputs, EngineError> {
        Ok(Self::summarize(inputs.values::<BatchItem>()))
    }

    async fn evaluate_batch(
        &self,
        _ctx: &EngineContext,
        batch: BatchInputs,
    ) -> Result<Outputs, EngineError> {
        Ok(Self::summarize(batch.values::<BatchItem>()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use flock_core::{Artifact, Payload};

    use super::*;

    fn items(values: &[i64]) -> Vec<Arc<Artifact>> {
        values
            .iter()
            .map(|&value| Arc::new(Artifact::new(Payload::new(BatchItem { value }), "external")))
            .collect()
    }

    #[tokio::test]
    async fn summarizes_a_batch_and_a_single_item() {
        let ctx = EngineContext::new("simple_batch");
        let out = SimpleBatchEngine
            .evaluate_batch(&ctx, BatchInputs::new(items(&[1, 2, 3])))
            .await
            .unwrap();
        let summary = out.payloads()[0].downcast_ref::<BatchSummary>().unwrap();
        assert_eq!(
            summary,
            &BatchSummary {
                batch_size: 3,
                values: vec![1, 2, 3]
            }
        );
        let out = SimpleBatchEngine
            .evaluate(&ctx, Inputs::new(items(&[7])))
            .await
            .unwrap();
        let summary = out.payloads()[0].downcast_ref::<BatchSummary>().unwrap();
        assert_eq!(
            summary,
            &BatchSummary {
                batch_size: 1,
                values: vec![7]
            }
        );
    }
}
