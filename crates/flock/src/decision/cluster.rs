//! The core in a cluster: the fence each run commits under (the epoch of its
//! unit's lease when the run was created), and forgetting what this process holds
//! of units it no longer owns.
//!
//! Both happen under the core's lock, as do the changes of ownership (the cluster
//! driver forgets lost units and records the new leases in one step): a run is
//! created either before a unit was lost (and carries the old epoch, which the
//! store refuses) or after it was taken again (and carries the new one), never
//! with the new epoch over inputs collected under the old one.

use std::sync::Arc;

use super::{Core, Ready, RunInput};
use crate::work::{BatchKey, Work};

/// The epoch of the lease of a batch key's unit, if this process owns it.
pub(crate) type Fence = Arc<dyn Fn(&BatchKey) -> Option<u64> + Send + Sync>;

impl Core {
    /// Joins a cluster: runs get their fence from `fence`.
    pub(crate) fn set_fence(&mut self, fence: Fence) {
        self.fence = Some(fence);
    }

    /// The fence of a run of `agent`'s `subscription` over `input` (`None` outside
    /// a cluster).
    pub(super) fn fence_of(&self, agent: u32, subscription: u32, input: &RunInput) -> Option<u64> {
        let fence = self.fence.as_ref()?;
        fence(&key_of(agent, subscription, input))
    }

    /// Drops, without running or consuming any of it, what this process holds of
    /// the units `lost` names by batch key: partial batches, join groups, and runs
    /// waiting for a slot. The units' new owners collect it all again from the
    /// store. Runs already started keep their fence, which the store now refuses.
    pub(crate) fn forget(&mut self, lost: impl Fn(&BatchKey) -> bool) -> Ready {
        let mut ready = Ready::default();
        // In a cluster nothing is charged (admission does not apply): batch items
        // and join members have no charge to give back.
        let _ = self.batcher.remove(&lost);
        let _ = self.joiner.remove_pools(&lost);
        for run in self
            .scheduler
            .drop_queued(|run| lost(&key_of(run.ticket.agent, run.subscription, &run.input)))
        {
            self.release(&run.ticket, &mut ready);
        }
        self.settle(&mut ready);
        ready
    }
}

/// The batch key a run's inputs were collected under (a single delivery's has no
/// partition).
fn key_of(agent: u32, subscription: u32, input: &RunInput) -> BatchKey {
    let partition = match input {
        RunInput::Batch(batch) => batch.key.partition.clone(),
        RunInput::Again(Work::Batch(flushed)) => flushed.key.partition.clone(),
        RunInput::Single(_) | RunInput::Again(Work::Single(_)) => None,
    };
    BatchKey {
        agent,
        subscription,
        partition,
    }
}
