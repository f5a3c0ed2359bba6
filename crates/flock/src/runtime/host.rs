//! What a run sees of the runtime: the clock, the blackboard, publishing its
//! outputs, recording failures.

use std::sync::Arc;

use flock_core::{AgentIdentity, Artifact, BlackboardView, PublishError};

use super::Runtime;
use uuid::Uuid;

use crate::{agent::Agent, clock::Now, failed::FailedRun, run::Host, work::Work};

impl Host for Arc<Runtime> {
    fn now(&self) -> Now {
        self.clock.now()
    }

    fn view(&self, identity: Arc<AgentIdentity>) -> BlackboardView {
        let runtime = self.clone();
        BlackboardView::new(
            self.store.clone(),
            identity,
            Arc::new(move || runtime.clock.now().wall),
        )
    }

    async fn commit_run(
        &self,
        agent: &Agent,
        subscription: u32,
        run_id: Uuid,
        work: &Work,
        outputs: Vec<Arc<Artifact>>,
    ) -> Result<(), PublishError> {
        Runtime::commit_run(self, agent, subscription, run_id, work, outputs).await
    }

    async fn commit_failure(&self, run: FailedRun, error: Arc<Artifact>) {
        Runtime::commit_failure(self, run, error).await;
    }
}
