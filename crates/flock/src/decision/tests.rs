//! The decision core driven directly, with explicit instants: no runtime, no
//! clock, no tasks.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use flock_core::{Artifact, FlushReason, Payload, PublishError, Visibility};
use flock_engines::{BatchItem, BatchSummary, Outputs, SimpleBatchEngine, map_fn};
use flock_subscription::{BatchSpec, Subscribe};

use super::{Cause, Core, Phase, Ready, Refused, Routed, Routing, RunInput, Source};
use crate::{
    Admission, AgentBuilder, OnFull,
    agent::{Agent, Registrar, RegistrationError},
    clock::Now,
};

/// A core and its routing, with explicit time.
struct Fixture {
    core: Core,
    routing: Routing,
    t0: Instant,
    wall0: DateTime<Utc>,
    types: Arc<Types>,
}

impl Fixture {
    fn new(admission: Admission) -> Self {
        Self {
            core: Core::new(admission),
            routing: Routing::default(),
            t0: Instant::now_for_tests(),
            wall0: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            types: Arc::default(),
        }
    }

    fn at(&self, ms: u64) -> Now {
        let d = Duration::from_millis(ms);
        Now {
            mono: self.t0 + d,
            wall: self.wall0 + chrono::TimeDelta::from_std(d).unwrap(),
        }
    }

    fn agent(&self, name: &str) -> AgentBuilder {
        AgentBuilder::new(self.types.clone(), name.to_owned())
    }

    fn register(&mut self, builder: AgentBuilder) -> Arc<Agent> {
        let agent = self.core.register(builder.validate().unwrap()).unwrap();
        self.routing.add(agent.clone());
        agent
    }

    /// Publishes an item from outside at `ms`, returning what became ready.
    fn publish(&mut self, value: i64, ms: u64) -> Result<Ready, Refused> {
        self.publish_with(value, Visibility::Public, ms)
    }

    fn publish_with(
        &mut self,
        value: i64,
        visibility: Visibility,
        ms: u64,
    ) -> Result<Ready, Refused> {
        let now = self.at(ms);
        let mut artifact =
            Artifact::new_at(Payload::new(BatchItem { value }), "external", now.wall);
        artifact.set_visibility(visibility);
        let routed = self.routing.route(&artifact, now);
        self.core.reserve(&routed, Source::External)?;
        Ok(self
            .core
            .collect(Arc::new(artifact), routed, now, Cause::None))
    }
}

/// What the builder needs for validation: a type registry. Registration itself
/// goes to the core under test.
#[derive(Default)]
struct Types(flock_core::TypeRegistry);

impl Registrar for Types {
    fn registry(&self) -> &flock_core::TypeRegistry {
        &self.0
    }

    fn register(&self, _: Agent) -> Result<(), RegistrationError> {
        unreachable!("the tests register agents with the core")
    }
}

/// `Instant::now` is off limits outside the clock module; tests need one base.
trait NowForTests {
    fn now_for_tests() -> Self;
}

impl NowForTests for Instant {
    #[expect(
        clippy::disallowed_methods,
        reason = "a base instant for explicit-time tests"
    )]
    fn now_for_tests() -> Self {
        Instant::now()
    }
}

fn batch_values(ready: &Ready) -> Vec<Vec<i64>> {
    ready
        .start
        .iter()
        .map(|run| match &run.input {
            RunInput::Batch(batch) => batch
                .items
                .iter()
                .map(|unit| unit.artifacts()[0].get::<BatchItem>().unwrap().value)
                .collect(),
            _ => panic!("not a batch"),
        })
        .collect()
}

fn batcher(fixture: &mut Fixture, spec: BatchSpec) -> Arc<Agent> {
    let builder = fixture
        .agent("batcher")
        .consumes::<BatchItem>(Subscribe::new().batch(spec))
        .publishes::<BatchSummary>()
        .with_engine(SimpleBatchEngine);
    fixture.register(builder)
}

fn spec(size: usize, timeout_ms: u64) -> BatchSpec {
    BatchSpec::size(size)
        .timeout(Duration::from_millis(timeout_ms))
        .build()
        .unwrap()
}

#[test]
fn a_full_batch_becomes_a_live_run_in_the_same_step() {
    let mut f = Fixture::new(Admission::new());
    batcher(&mut f, spec(3, 1_000));
    for value in 0..2 {
        let ready = f.publish(value, 0).unwrap();
        assert!(ready.start.is_empty());
    }
    assert!(f.core.is_quiet());
    let ready = f.publish(2, 0).unwrap();
    assert_eq!(batch_values(&ready), vec![vec![0, 1, 2]]);
    assert!(
        !f.core.is_quiet(),
        "the flushed batch's run is counted live"
    );
    let run = ready.start.into_iter().next().unwrap();
    let _ = f.core.finish(run.ticket);
    assert!(f.core.is_quiet());
}

#[test]
fn a_due_batch_leaves_the_batcher_and_counts_live_in_one_tick() {
    let mut f = Fixture::new(Admission::new());
    batcher(&mut f, spec(10, 100));
    let ready = f.publish(7, 5).unwrap();
    assert!(ready.rearm, "the first item arms the timer");
    assert_eq!(f.core.next_deadline(), Some(f.at(105).mono));
    let early = f.core.tick(f.at(104));
    assert!(early.start.is_empty());
    let due = f.core.tick(f.at(105));
    assert_eq!(batch_values(&due), vec![vec![7]]);
    match &due.start[0].input {
        RunInput::Batch(batch) => assert_eq!(batch.reason, FlushReason::Timeout),
        _ => unreachable!(),
    }
    // Never "nothing due and nothing live" in between: the same call did both.
    assert!(!f.core.is_quiet());
    assert_eq!(f.core.next_deadline(), None);
}

#[test]
fn runs_of_one_agent_start_in_order_within_their_slots() {
    let mut f = Fixture::new(Admission::new());
    batcher(&mut f, spec(1, 1_000));
    let first = f.publish(1, 0).unwrap();
    let second = f.publish(2, 0).unwrap();
    let third = f.publish(3, 0).unwrap();
    assert_eq!(batch_values(&first), vec![vec![1]]);
    assert!(
        second.start.is_empty() && third.start.is_empty(),
        "one slot: queued"
    );
    let next = f
        .core
        .finish(first.start.into_iter().next().unwrap().ticket);
    assert_eq!(batch_values(&next), vec![vec![2]]);
    let last = f.core.finish(next.start.into_iter().next().unwrap().ticket);
    assert_eq!(batch_values(&last), vec![vec![3]]);
}

#[test]
fn the_circuit_breaker_refuses_runs_until_the_flock_is_quiet() {
    let mut f = Fixture::new(Admission::new());
    let builder = f
        .agent("looping")
        .consumes::<BatchItem>(Subscribe::new())
        .max_iterations(2)
        .max_concurrency(4)
        .with_engine(map_fn(
            |_: &flock_engines::EngineContext, _: Arc<BatchItem>| Ok::<_, String>(Outputs::none()),
        ));
    f.register(builder);
    let mut tickets = Vec::new();
    for value in 0..2 {
        let ready = f.publish(value, 0).unwrap();
        assert_eq!(ready.start.len(), 1);
        tickets.extend(ready.start.into_iter().map(|r| r.ticket));
    }
    let refused = f.publish(2, 0).unwrap();
    assert_eq!((refused.start.len(), refused.refused.len()), (0, 1));
    assert!(
        !refused.refused[0].ticket.slot,
        "a refused run holds no slot"
    );
    tickets.extend(refused.refused.into_iter().map(|r| r.ticket));
    for ticket in tickets {
        let _ = f.core.finish(ticket);
    }
    assert!(f.core.is_quiet());
    assert_eq!(
        f.publish(3, 0).unwrap().start.len(),
        1,
        "counting restarts at quiet"
    );
}

#[test]
fn shutdown_refuses_external_publishes_and_drains_only_when_nothing_is_left() {
    let mut f = Fixture::new(Admission::new());
    batcher(&mut f, spec(10, 1_000));
    // Admitted before shutdown, collected after it began: still delivered.
    let now = f.at(0);
    let artifact = Artifact::new_at(Payload::new(BatchItem { value: 1 }), "external", now.wall);
    let routed = f.routing.route(&artifact, now);
    f.core.reserve(&routed, Source::External).unwrap();
    let _ = f.core.begin_shutdown();
    assert!(matches!(f.publish(2, 0), Err(Refused::Closed)));
    assert!(
        f.core.try_drain(f.at(1), false).is_none(),
        "a publish is still dispatching"
    );
    let _ = f
        .core
        .collect(Arc::new(artifact), routed, f.at(1), Cause::None);
    assert!(
        f.core.try_drain(f.at(1), false).is_none(),
        "a batch is waiting"
    );
    let flushed = f.core.flush_all(FlushReason::Shutdown, f.at(2));
    assert_eq!(batch_values(&flushed), vec![vec![1]]);
    assert!(
        f.core.try_drain(f.at(2), false).is_none(),
        "its run is live"
    );
    let _ = f
        .core
        .finish(flushed.start.into_iter().next().unwrap().ticket);
    assert!(f.core.try_drain(f.at(3), false).is_some());
    assert_eq!(f.core.phase(), Phase::Drained);
    assert_eq!(f.core.next_deadline(), None);
}

#[test]
fn deferred_artifacts_are_released_at_their_instant_but_not_once_shutdown_began() {
    let mut f = Fixture::new(Admission::new());
    batcher(&mut f, spec(10, 1_000));
    let later = |ms| Visibility::after(Duration::from_millis(ms), None);
    let ready = f.publish_with(1, later(50), 0).unwrap();
    assert!(ready.rearm);
    let _ = f.publish_with(2, later(80), 0).unwrap();
    assert_eq!(f.core.next_deadline(), Some(f.at(50).mono));
    let released = f.core.tick(f.at(50));
    assert_eq!(released.released.len(), 1);
    assert!(
        !f.core.is_quiet(),
        "a released artifact counts until collected"
    );
    let artifact = released.released.into_iter().next().unwrap().held.artifact;
    let routed = f.routing.route(&artifact, f.at(50));
    assert!(matches!(&routed, Routed::Takes(t) if t.len() == 1));
    f.core.reserve(&routed, Source::Released).unwrap();
    let _ = f.core.collect(artifact, routed, f.at(50), Cause::None);
    assert!(f.core.is_quiet());
    let _ = f.core.begin_shutdown();
    // The batch's deadline remains; the second artifact's instant no longer counts.
    assert_eq!(f.core.next_deadline(), Some(f.at(1_050).mono));
    assert!(f.core.tick(f.at(80)).released.is_empty());
    let flushed = f.core.flush_all(FlushReason::Shutdown, f.at(90));
    let _ = f
        .core
        .finish(flushed.start.into_iter().next().unwrap().ticket);
    let drained = f.core.try_drain(f.at(90), false).unwrap();
    assert_eq!(drained.deferred_undelivered, 1);
}

#[test]
fn admission_counts_a_unit_until_its_run_finishes() {
    let admission = Admission::new()
        .max_waiting_per_subscription(2)
        .unwrap()
        .on_full(OnFull::Reject);
    let mut f = Fixture::new(admission);
    batcher(&mut f, spec(2, 1_000));
    let _ = f.publish(1, 0).unwrap();
    let flushed = f.publish(2, 0).unwrap();
    assert_eq!(batch_values(&flushed), vec![vec![1, 2]]);
    // The batch flushed, but its run has not finished: still counted.
    match f.publish(3, 0) {
        Err(Refused::Full(PublishError::Full {
            waiting: 2,
            limit: 2,
            ..
        })) => {}
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
    let counts = f.core.admission_counts().unwrap();
    assert_eq!((counts.total, counts.of("batcher", 0)), (2, 2));
    let after = f
        .core
        .finish(flushed.start.into_iter().next().unwrap().ticket);
    assert!(!after.room, "nobody waits for room");
    assert!(f.publish(3, 0).is_ok());
    assert_eq!(f.core.admission_counts().unwrap().total, 1);
}

#[test]
fn an_abandoned_run_drops_its_agents_queue_and_releases_every_charge() {
    let admission = Admission::new().max_waiting(100).unwrap();
    let mut f = Fixture::new(admission);
    batcher(&mut f, spec(1, 1_000));
    let first = f.publish(1, 0).unwrap();
    let _ = f.publish(2, 0).unwrap();
    let _ = f.publish(3, 0).unwrap();
    assert_eq!(f.core.admission_counts().unwrap().total, 3);
    let ready = f
        .core
        .abandon(first.start.into_iter().next().unwrap().ticket);
    assert!(ready.start.is_empty());
    assert!(f.core.is_quiet());
    assert_eq!(f.core.admission_counts().unwrap().total, 0);
}

#[test]
fn a_lost_unit_is_forgotten_and_runs_carry_the_epoch_they_were_created_under() {
    use std::sync::atomic::{AtomicU64, Ordering};

    let mut f = Fixture::new(Admission::new());
    batcher(&mut f, spec(2, 1_000));
    // The cluster's view, as the fence hook reads it: the epoch held (0: not held).
    let epoch = Arc::new(AtomicU64::new(7));
    let held = epoch.clone();
    f.core.set_fence(Arc::new(move |_| {
        Some(held.load(Ordering::Relaxed)).filter(|&e| e > 0)
    }));
    let started = f.publish(1, 0).unwrap();
    assert!(started.start.is_empty());
    let started = f.publish(2, 0).unwrap();
    assert_eq!(started.start[0].fence, Some(7));
    let _ = f.publish(3, 0).unwrap();
    let queued = f.publish(4, 0).unwrap();
    assert!(queued.start.is_empty(), "one slot: the second batch waits");
    let _ = f.publish(5, 0).unwrap();
    assert_eq!(f.core.batcher.waiting(), 1, "a partial batch");

    // Lost: the partial batch and the queued run go; the started run stays live
    // (its commit is fenced with epoch 7).
    epoch.store(0, Ordering::Relaxed);
    let forgot = f.core.forget(|_| true);
    assert!(forgot.start.is_empty());
    assert!(f.core.batcher.is_empty());
    assert_eq!(f.core.next_deadline(), None, "its timeout is gone too");
    assert!(!f.core.is_quiet(), "the started run is still live");
    let next = f
        .core
        .finish(started.start.into_iter().next().unwrap().ticket);
    assert!(next.start.is_empty(), "the queued run was dropped");
    assert!(f.core.is_quiet());

    // Taken again under epoch 9: new runs carry it.
    epoch.store(9, Ordering::Relaxed);
    let _ = f.publish(6, 10).unwrap();
    let again = f.publish(7, 10).unwrap();
    assert_eq!(batch_values(&again), vec![vec![6, 7]]);
    assert_eq!(again.start[0].fence, Some(9));
}
