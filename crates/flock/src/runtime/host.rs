//! What a run sees of the runtime: the clock, the blackboard, publishing its
//! outputs, recording failures.

use std::sync::Arc;

use flock_core::{AgentIdentity, Artifact, BlackboardView, PublishError};

use super::Runtime;
use crate::{clock::Now, failed::FailedRun, run::Host};

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

    async fn publish_outputs(&self, outputs: Vec<Arc<Artifact>>) -> Result<(), PublishError> {
        Runtime::publish_outputs(self, outputs).await
    }

    fn record_failure(&self, run: FailedRun) {
        self.failed.lock().push(run);
    }
}
