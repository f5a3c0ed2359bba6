//! The one matching decision: which subscription of which agent takes an artifact,
//! and under which key. Dispatch and admission both act on it, so they can never
//! disagree.
//!
//! Routing calls user code (predicates, key functions; panics contained) and so
//! runs outside the core's lock; it reads only the agents' declarations.

use std::{sync::Arc, time::Instant};

use flock_core::{Artifact, Visibility};
use flock_subscription::{JoinKey, KeyError, MatchOutcome};
use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use crate::{agent::Agent, clock::Now};

/// The subscriptions of every registered agent, indexed by the types they consume.
#[derive(Default)]
pub(crate) struct Routing {
    agents: Vec<Arc<Agent>>,
    /// Type name → (agent, subscription), in agent registration then declaration order.
    by_type: FxHashMap<&'static str, Vec<(u32, u32)>>,
    /// Whether some subscription calls user code when it decides (predicates, key
    /// functions): then routing must not run under the core's lock.
    user_code: bool,
}

/// How one subscription takes an artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Way {
    /// Straight to a run of its own.
    Run,
    /// Into a batch (of `partition`, for keyed batches).
    Batch(Option<JoinKey>),
    /// Into a join pool under `key`, in `slot`.
    Join { key: JoinKey, slot: usize },
}

/// One subscription taking an artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Take {
    pub(crate) agent: u32,
    pub(crate) subscription: u32,
    pub(crate) way: Way,
}

impl Take {
    /// Whether the artifact itself waits for a run here (and counts towards
    /// admission bounds): in a batch, or in a run's inputs. Join artifacts count once
    /// their group completes.
    pub(crate) fn is_counted(&self) -> bool {
        !matches!(self.way, Way::Join { .. })
    }
}

/// Where an artifact goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Routed {
    /// To these subscriptions: at most one per agent, in registration order.
    Takes(SmallVec<[Take; 2]>),
    /// Nowhere yet: its `After` visibility begins at this instant; it is routed again
    /// then.
    Deferred(Instant),
}

impl Default for Routed {
    /// Nowhere.
    fn default() -> Self {
        Self::Takes(SmallVec::new())
    }
}

impl Routed {
    /// The subscriptions taking the artifact now.
    pub(crate) fn takes(&self) -> &[Take] {
        match self {
            Self::Takes(takes) => takes,
            Self::Deferred(_) => &[],
        }
    }
}

impl Routing {
    /// The registered agents, by index.
    pub(crate) fn agents(&self) -> &[Arc<Agent>] {
        &self.agents
    }

    /// Whether routing may call user code (a predicate, a key function): then it
    /// runs outside the core's lock.
    pub(crate) fn calls_user_code(&self) -> bool {
        self.user_code
    }

    /// Adds a registered agent (its index is its position).
    pub(crate) fn add(&mut self, agent: Arc<Agent>) {
        debug_assert_eq!(agent.index as usize, self.agents.len());
        self.user_code |= agent.subscriptions.iter().any(|s| s.calls_user_code());
        for (index, subscription) in agent.subscriptions.iter().enumerate() {
            let index = u32::try_from(index).expect("fewer than 2^32 subscriptions");
            for slot in subscription.slots() {
                self.by_type
                    .entry(slot.type_name)
                    .or_default()
                    .push((agent.index, index));
            }
        }
        self.agents.push(agent);
    }

    /// Where `artifact` goes at `now`, for the agents `only` names (all when
    /// `None`): recovery collects an artifact again only for the agents that had not
    /// consumed it.
    pub(crate) fn route_for(&self, artifact: &Artifact, now: Now, only: Option<&[u32]>) -> Routed {
        let mut routed = self.route(artifact, now);
        if let (Some(only), Routed::Takes(takes)) = (only, &mut routed) {
            takes.retain(|take| only.contains(&take.agent));
        }
        routed
    }

    /// Where `artifact` goes at `now`. Matching order per agent and subscription:
    /// self-trigger prevention → visibility → type, producer, tags, predicates → key.
    /// An artifact is taken by an agent at most once, through its first subscription
    /// that matches and can key it.
    pub(crate) fn route(&self, artifact: &Artifact, now: Now) -> Routed {
        let mut routed = Routed::default();
        self.route_into(artifact, now, &mut routed);
        routed
    }

    /// [`Routing::route`] into `routed` (nowhere, as [`Routed::default`] makes it):
    /// the publish path's, which fills the takes where they stay rather than copying
    /// them out through a return right after writing them.
    pub(crate) fn route_into(&self, artifact: &Artifact, now: Now, routed: &mut Routed) {
        debug_assert!(matches!(routed, Routed::Takes(takes) if takes.is_empty()));
        // Only `After` depends on the time; the other kinds ignore `now`.
        let wall = if matches!(artifact.visibility(), Visibility::After { .. }) {
            if let Some(visible_from) = artifact.visibility().visible_from(artifact.created_at)
                && visible_from > now.wall
            {
                let delay = (visible_from - now.wall).to_std().unwrap_or_default();
                match now.mono.checked_add(delay) {
                    Some(at) => *routed = Routed::Deferred(at),
                    None => tracing::warn!(
                        artifact_id = %artifact.id,
                        "visibility delay beyond the clock's range; the artifact stays on the blackboard undelivered"
                    ),
                }
                return;
            }
            now.wall
        } else {
            artifact.created_at
        };
        let (Some(candidates), Routed::Takes(takes)) =
            (self.by_type.get(artifact.type_name()), routed)
        else {
            return;
        };
        // At most one take per candidate: one allocation at most, never a regrowth.
        takes.reserve_exact(candidates.len());
        let mut taken_by = None;
        for &(agent_index, subscription_index) in candidates {
            if taken_by == Some(agent_index) {
                continue;
            }
            let agent = &self.agents[agent_index as usize];
            if let Some(way) = way(agent, subscription_index, artifact, wall) {
                taken_by = Some(agent_index);
                takes.push(Take {
                    agent: agent_index,
                    subscription: subscription_index,
                    way,
                });
            }
        }
    }
}

/// How subscription `index` of `agent` takes `artifact`, if it does.
fn way(
    agent: &Agent,
    index: u32,
    artifact: &Artifact,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Way> {
    if !agent.may_receive(artifact, now) {
        return None;
    }
    let subscription = &agent.subscriptions[index as usize];
    match subscription.matches(artifact) {
        MatchOutcome::Accepted => {}
        MatchOutcome::Rejected => return None,
        MatchOutcome::PredicatePanicked { predicate, message } => {
            tracing::error!(
                agent = %agent.name,
                subscription_index = index,
                predicate,
                artifact_id = %artifact.id,
                panic = %message,
                "predicate panicked; the artifact does not match this subscription"
            );
            return None;
        }
    }
    let key = match subscription.key_of(artifact) {
        Ok(key) => key,
        Err(KeyError::BatchKeyPanicked(panic)) => {
            tracing::error!(
                agent = %agent.name,
                subscription_index = index,
                artifact_id = %artifact.id,
                %panic,
                "batch key function panicked; the artifact does not match this subscription"
            );
            return None;
        }
        Err(KeyError::NoJoinKey(error)) => {
            tracing::error!(
                agent = %agent.name,
                subscription_index = index,
                artifact_id = %artifact.id,
                %error,
                "no join key; the artifact does not match this subscription"
            );
            return None;
        }
        Err(error) => {
            tracing::error!(
                agent = %agent.name,
                subscription_index = index,
                artifact_id = %artifact.id,
                %error,
                "no key; the artifact does not match this subscription"
            );
            return None;
        }
    };
    Some(if agent.join_shapes[index as usize].is_some() {
        Way::Join {
            key: key.expect("join subscriptions always key their artifacts"),
            slot: subscription
                .slot_of(artifact.type_name())
                .expect("a matching artifact has a slot"),
        }
    } else if subscription.batch().is_some() {
        Way::Batch(key)
    } else {
        Way::Run
    })
}
