//! What a run sees of the runtime: the clock, the blackboard, publishing its
//! outputs, recording failures.

use std::sync::Arc;

use flock_core::{AgentIdentity, Artifact, BlackboardView, PublishError};

use super::Runtime;
use uuid::Uuid;

use crate::{
    agent::Agent,
    clock::Now,
    failed::FailedRun,
    run::{Host, Origin},
    work::Work,
};

impl Host for Arc<Runtime> {
    fn now(&self) -> Now {
        self.clock.now()
    }

    fn view(&self, identity: Arc<AgentIdentity>) -> BlackboardView {
        // A copy of the clock, not the runtime: an engine may keep the view, and the
        // runtime holds the engine (the store, too, refers to the flock weakly).
        let clock = self.clock.clone();
        BlackboardView::new(
            self.store.clone(),
            identity,
            Arc::new(move || clock.now().wall),
        )
    }

    async fn commit_run(
        &self,
        agent: &Agent,
        origin: Origin,
        run_id: Uuid,
        work: &Work,
        outputs: Vec<Arc<Artifact>>,
    ) -> Result<(), PublishError> {
        Runtime::commit_run(self, agent, origin, run_id, work, outputs).await
    }

    async fn commit_failure(&self, run: FailedRun, error: Arc<Artifact>) {
        Runtime::commit_failure(self, run, error).await;
    }
}
