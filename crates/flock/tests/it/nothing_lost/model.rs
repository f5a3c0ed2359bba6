//! The model of a history: the artifacts it publishes, the flock it builds (agents,
//! the join, admission bounds) and its operations (paused-clock histories) or its
//! publishers' rounds (concurrent histories), and what the model expects of one
//! published artifact.

use std::time::Duration;

use flock::{ArtifactId, prelude::*};
use serde::{Deserialize, Serialize};

use crate::support::{
    probe::{Decoder, Fault, INDUCED, decoder, probe_fields},
    runs::Probed,
};

// === the model's artifacts ===

/// A unit of work for the item agents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FlockType)]
#[flock(name = "reliability.Job")]
pub(crate) struct Job {
    /// Publish sequence number, unique per case.
    pub(crate) n: u32,
    /// What predicates look at.
    pub(crate) class: u8,
    pub(crate) fault: Fault,
    /// Bit `i`: agent `i` is affected by the fault.
    pub(crate) targets: u8,
    /// Predicates of "panicky" subscriptions panic on this job.
    pub(crate) predicate_panics: bool,
    /// Key functions of keyed subscriptions panic on this job.
    pub(crate) key_panics: bool,
}

/// The left side of the join.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FlockType)]
#[flock(name = "reliability.Left")]
pub(crate) struct Left {
    pub(crate) n: u32,
    pub(crate) key: u8,
    pub(crate) fault: Fault,
    pub(crate) targets: u8,
    /// The join's key function panics on this one.
    pub(crate) key_panics: bool,
}

/// The right side of the join.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, FlockType)]
#[flock(name = "reliability.Right")]
pub(crate) struct Right {
    pub(crate) n: u32,
    pub(crate) key: u8,
    pub(crate) fault: Fault,
    pub(crate) targets: u8,
}

probe_fields!(Job, Left, Right);

/// What the probe engines of a case receive.
pub(crate) const TYPES: &[Decoder] = &[decoder::<Job>, decoder::<Left>, decoder::<Right>];

// === the flock of a case ===

/// A batch spec: size, timeout in ms (at least one).
pub(crate) type Spec = (Option<usize>, Option<u64>);

#[derive(Debug, Clone)]
pub(crate) struct SubCfg {
    /// `class % m == r`.
    pub(crate) filter: Option<(u8, u8)>,
    /// Its predicate panics on jobs with `predicate_panics`.
    pub(crate) panicky: bool,
    pub(crate) batch: Option<Spec>,
    /// Keyed batches (`keyed_by`): one accumulator per `class % k`.
    pub(crate) keyed: Option<u8>,
}

#[derive(Debug, Clone)]
pub(crate) struct AgentCfg {
    pub(crate) subs: Vec<SubCfg>,
    pub(crate) attempts: u32,
    pub(crate) retry_ms: u64,
    pub(crate) work_ms: u64,
    pub(crate) concurrency: usize,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Window {
    Time(u64),
    Count(usize),
}

#[derive(Debug, Clone)]
pub(crate) struct JoinCfg {
    pub(crate) window: Window,
    pub(crate) batch: Option<Spec>,
    pub(crate) attempts: u32,
    pub(crate) work_ms: u64,
}

// === the history of a case ===

/// A job to publish: what its artifact carries, and whom it is hidden from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JobSpec {
    pub(crate) class: u8,
    pub(crate) fault: Fault,
    pub(crate) targets: u8,
    pub(crate) predicate_panics: bool,
    pub(crate) key_panics: bool,
    /// Published private to every item agent but this one (modulo the agents).
    pub(crate) hidden_from: Option<u8>,
}

impl JobSpec {
    /// The job, as publish number `n`.
    pub(crate) fn job(&self, n: u32) -> Job {
        Job {
            n,
            class: self.class,
            fault: self.fault,
            targets: self.targets,
            predicate_panics: self.predicate_panics,
            key_panics: self.key_panics,
        }
    }

    /// The item agent it is hidden from, among `agents`.
    pub(crate) fn hidden_from(&self, agents: usize) -> Option<usize> {
        self.hidden_from.map(|h| usize::from(h) % agents)
    }

    /// What the model knows of it, published hidden from `hidden_from`.
    pub(crate) fn kind(&self, hidden_from: Option<usize>) -> Kind {
        Kind::Job {
            class: self.class,
            predicate_panics: self.predicate_panics,
            key_panics: self.key_panics,
            hidden_from,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Op {
    Job {
        job: JobSpec,
        /// Published as JSON text through `publish_json_str` (and so public).
        json: bool,
    },
    Left {
        key: u8,
        fault: Fault,
        targets: u8,
        key_panics: bool,
    },
    Right {
        key: u8,
        fault: Fault,
        targets: u8,
    },
    Sleep(u64),
    Flush,
    CheckTimeouts,
    Idle,
}

#[derive(Debug, Clone)]
pub(crate) struct Case {
    pub(crate) agents: Vec<AgentCfg>,
    pub(crate) join: Option<JoinCfg>,
    /// Admission limits: per subscription, in all batches, and whether publishes
    /// wait for room (`OnFull::Wait`) or are refused (`OnFull::Reject`).
    pub(crate) admission: Option<(Option<usize>, Option<usize>, bool)>,
    pub(crate) ops: Vec<Op>,
}

pub(crate) const JOINER: &str = "joiner";
pub(crate) const AUDITOR: &str = "auditor";
pub(crate) const AUDIT_SIZE: usize = 3;
pub(crate) const AUDIT_TIMEOUT: Duration = Duration::from_millis(40);

pub(crate) fn agent_name(i: usize) -> String {
    format!("a{i}")
}

/// The item agents, as the checks of the probe log know them.
pub(crate) fn probed(agents: &[AgentCfg]) -> Vec<Probed> {
    agents
        .iter()
        .enumerate()
        .map(|(i, cfg)| Probed {
            name: agent_name(i),
            attempts: cfg.attempts,
        })
        .collect()
}

pub(crate) fn batch_spec((size, timeout_ms): Spec) -> flock::subscription::BatchSpecBuilder {
    let mut builder = flock::subscription::BatchSpecBuilder::default();
    if let Some(size) = size {
        builder = builder.size(size);
    }
    if let Some(ms) = timeout_ms {
        builder = builder.timeout(Duration::from_millis(ms));
    }
    builder
}

/// The predicate of a subscription: its filter, panicking where the model says.
pub(crate) fn predicate(cfg: &SubCfg) -> impl Fn(&Job) -> bool + Send + Sync + 'static {
    let (filter, panicky) = (cfg.filter, cfg.panicky);
    move |job: &Job| {
        assert!(
            !(panicky && job.predicate_panics),
            "{INDUCED} predicate of job {}",
            job.n
        );
        filter.is_none_or(|(m, r)| job.class % m == r)
    }
}

// === the concurrent histories ===

/// One job a publisher publishes.
#[derive(Debug, Clone)]
pub(crate) struct Publish {
    pub(crate) job: JobSpec,
    /// Hidden from everyone for this many ms (`Visibility::After`).
    pub(crate) after_ms: Option<u64>,
    /// What the publisher does next.
    pub(crate) pause: Pause,
}

/// What a publisher does after a publish.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pause {
    None,
    Yield,
    Sleep(u64),
}

/// How long the controller waits before its next call.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    Ms(u64),
    /// Until the earliest deadline of the batches collecting, if any: the flock's
    /// timer wakes at the same tick, and the two race.
    NextDeadline,
}

/// A call the controller makes while the publishers publish a round.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Call {
    Flush,
    CheckTimeouts,
    Sleep(u64),
}

/// One round of a concurrent history.
#[derive(Debug, Clone)]
pub(crate) struct Round {
    /// Each publisher's jobs.
    pub(crate) publishers: Vec<Vec<Publish>>,
    pub(crate) calls: Vec<Call>,
    /// How long the controller waits after the barrier before `run_until_idle`.
    pub(crate) pause: Wait,
}

/// A concurrent history.
#[derive(Debug, Clone)]
pub(crate) struct Concurrent {
    pub(crate) workers: usize,
    pub(crate) agents: Vec<AgentCfg>,
    pub(crate) rounds: Vec<Round>,
    /// What each publisher publishes, over and over, until the flock is closed.
    pub(crate) tail: Vec<Vec<Publish>>,
    /// How long the controller waits after the last round.
    pub(crate) wait: Wait,
    /// Whether the controller then calls `check_batch_timeouts`.
    pub(crate) tick: bool,
    /// How often it yields after releasing the publishers before it calls
    /// `shutdown`, racing their publishes.
    pub(crate) yields: u8,
}

// === what the model expects ===

/// One published artifact, as the model saw it.
#[derive(Debug, Clone)]
pub(crate) struct Published {
    pub(crate) op: usize,
    pub(crate) at: Duration,
    pub(crate) id: ArtifactId,
    pub(crate) kind: Kind,
}

/// What was published.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Job {
        class: u8,
        predicate_panics: bool,
        key_panics: bool,
        hidden_from: Option<usize>,
    },
    Left {
        key: u8,
        key_panics: bool,
    },
    Right {
        key: u8,
    },
}

/// The subscription of agent `agent` a job goes to, if any: the first whose
/// predicate accepts it and whose batch key function (if keyed) gives a key; a
/// panicking predicate or key function does not. None if the agent may not see it.
pub(crate) fn expected_sub(cfg: &AgentCfg, agent: usize, kind: &Kind) -> Option<usize> {
    let Kind::Job {
        class,
        predicate_panics,
        key_panics,
        hidden_from,
    } = kind
    else {
        return None;
    };
    if *hidden_from == Some(agent) {
        return None;
    }
    cfg.subs.iter().position(|sub| {
        !(sub.panicky && *predicate_panics)
            && sub.filter.is_none_or(|(m, r)| class % m == r)
            && !(sub.keyed.is_some() && *key_panics)
    })
}

/// The batch key of a job in a subscription keyed by `class % k` (0 unkeyed).
pub(crate) fn key_of(kind: &Kind, keyed: Option<u8>) -> u8 {
    match (kind, keyed) {
        (Kind::Job { class, .. }, Some(k)) => class % k,
        _ => 0,
    }
}

/// The fault and targets of the artifact published `n`th.
pub(crate) fn fault_of(ops: &[Op], published: &[Published], n: u32) -> (Fault, u8) {
    match ops[published[n as usize].op] {
        Op::Job {
            job: JobSpec { fault, targets, .. },
            ..
        }
        | Op::Left { fault, targets, .. }
        | Op::Right { fault, targets, .. } => (fault, targets),
        _ => unreachable!("only publishes make artifacts"),
    }
}
