//! Agent components: every lifecycle hook is called at its point, in priority order,
//! and a failing or panicking hook is contained like an engine failure.

use std::sync::Arc;

use async_trait::async_trait;
use flock::{AgentBuilder, AgentComponent, EngineError, RunFailure, prelude::*};
use parking_lot::Mutex;

use crate::{Item, publish_ids, spec};

type Log = Arc<Mutex<Vec<String>>>;

/// Records every hook call as `"{tag}:{hook}"`, with details where they matter.
struct Recorder {
    tag: &'static str,
    priority: i32,
    log: Log,
    fail_before_evaluate_on: Option<u32>,
    panic_in_after_evaluate: bool,
}

impl Recorder {
    fn new(tag: &'static str, priority: i32, log: &Log) -> Self {
        Self {
            tag,
            priority,
            log: log.clone(),
            fail_before_evaluate_on: None,
            panic_in_after_evaluate: false,
        }
    }

    fn push(&self, entry: String) {
        self.log.lock().push(format!("{}:{entry}", self.tag));
    }
}

#[async_trait]
impl AgentComponent for Recorder {
    fn name(&self) -> &str {
        self.tag
    }

    fn priority(&self) -> i32 {
        self.priority
    }

    async fn initialize(&self, agent: &str) -> Result<(), EngineError> {
        self.push(format!("initialize({agent})"));
        Ok(())
    }

    async fn before_consume(
        &self,
        _ctx: &EngineContext,
        inputs: &[Arc<Artifact>],
    ) -> Result<(), EngineError> {
        self.push(format!("before_consume({})", inputs.len()));
        Ok(())
    }

    async fn before_evaluate(
        &self,
        ctx: &EngineContext,
        _inputs: &[Arc<Artifact>],
    ) -> Result<(), EngineError> {
        self.push(format!("before_evaluate(attempt {})", ctx.attempt));
        if self.fail_before_evaluate_on == Some(ctx.attempt) {
            return Err(EngineError::new("budget exceeded"));
        }
        Ok(())
    }

    async fn after_evaluate(
        &self,
        _ctx: &EngineContext,
        outputs: &mut Outputs,
    ) -> Result<(), EngineError> {
        self.push(format!("after_evaluate({})", outputs.len()));
        assert!(!self.panic_in_after_evaluate, "component bug");
        Ok(())
    }

    async fn after_publish(&self, _ctx: &EngineContext, artifact: &Arc<Artifact>) {
        self.push(format!("after_publish({})", artifact.type_name()));
    }

    async fn on_error(&self, _ctx: &EngineContext, failure: &RunFailure<'_>) {
        self.push(format!(
            "on_error(attempt {}, retry {}): {}",
            failure.attempt, failure.will_retry, failure.error
        ));
    }

    async fn on_terminate(&self, agent: &str) {
        self.push(format!("on_terminate({agent})"));
    }
}

fn summarizer(flock: &Flock) -> AgentBuilder {
    flock
        .agent("summarizer")
        .consumes::<BatchItem>(Subscribe::new().batch(spec(2)))
        .publishes::<BatchSummary>()
        .with_engine(SimpleBatchEngine)
}

async fn publish_values(flock: &Flock, values: impl IntoIterator<Item = i64>) {
    for value in values {
        flock.publish(BatchItem { value }).await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn hooks_are_called_in_order_and_by_priority() {
    let log = Log::default();
    let flock = Flock::new();
    summarizer(&flock)
        // Attached out of order: priority decides, lower first.
        .with_component(Recorder::new("late", 10, &log))
        .with_component(Recorder::new("early", -5, &log))
        .register()
        .unwrap();
    publish_values(&flock, [1, 2, 3, 4]).await;
    flock.run_until_idle().await;
    assert!(log.lock().iter().all(|e| !e.contains("on_terminate")));
    flock.shutdown().await;
    flock.shutdown().await; // on_terminate runs once

    let run = [
        "before_consume(2)",
        "before_evaluate(attempt 1)",
        "after_evaluate(1)",
        "after_publish(BatchSummary)",
    ];
    let mut expected = vec![
        "early:initialize(summarizer)".to_owned(),
        "late:initialize(summarizer)".to_owned(),
    ];
    for _batch in 0..2 {
        for hook in run {
            expected.push(format!("early:{hook}"));
            expected.push(format!("late:{hook}"));
        }
    }
    expected.push("early:on_terminate(summarizer)".into());
    expected.push("late:on_terminate(summarizer)".into());
    assert_eq!(*log.lock(), expected);
}

#[tokio::test(start_paused = true)]
async fn a_failing_hook_fails_the_attempt_and_on_error_says_whether_it_retries() {
    let log = Log::default();
    let flock = Flock::new();
    let mut guard = Recorder::new("guard", 0, &log);
    guard.fail_before_evaluate_on = Some(1);
    summarizer(&flock)
        .with_component(guard)
        .retry(RetryPolicy::fixed(2, std::time::Duration::from_secs(1)).unwrap())
        .register()
        .unwrap();
    publish_values(&flock, [1, 2]).await;
    flock.run_until_idle().await;
    assert_eq!(
        *log.lock(),
        [
            "guard:initialize(summarizer)",
            "guard:before_consume(2)",
            "guard:before_evaluate(attempt 1)",
            "guard:on_error(attempt 1, retry true): component 'guard' failed in before_evaluate: budget exceeded",
            "guard:before_evaluate(attempt 2)",
            "guard:after_evaluate(1)",
            "guard:after_publish(BatchSummary)",
        ]
    );
    assert_eq!(flock.get_by_type::<BatchSummary>().await.unwrap().len(), 1);
    assert!(
        flock
            .get_by_type::<WorkflowError>()
            .await
            .unwrap()
            .is_empty()
    );
    flock.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_panicking_hook_is_caught_and_reported() {
    let log = Log::default();
    let flock = Flock::new();
    let mut buggy = Recorder::new("buggy", 0, &log);
    buggy.panic_in_after_evaluate = true;
    summarizer(&flock).with_component(buggy).register().unwrap();
    publish_values(&flock, [1, 2]).await;
    flock.run_until_idle().await;
    let errors = flock.get_by_type::<WorkflowError>().await.unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].error,
        "component 'buggy' panicked in after_evaluate: component bug"
    );
    assert!(
        flock
            .get_by_type::<BatchSummary>()
            .await
            .unwrap()
            .is_empty(),
        "outputs of a failed attempt are not published"
    );
    assert_eq!(
        log.lock().last().map(String::as_str),
        Some(
            "buggy:on_error(attempt 1, retry false): component 'buggy' panicked in after_evaluate: component bug"
        )
    );
    flock.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn after_evaluate_may_change_the_outputs() {
    struct Doubler;
    #[async_trait]
    impl AgentComponent for Doubler {
        async fn after_evaluate(
            &self,
            _ctx: &EngineContext,
            outputs: &mut Outputs,
        ) -> Result<(), EngineError> {
            let summaries: Vec<BatchSummary> = outputs
                .payloads()
                .iter()
                .filter_map(|p| p.downcast_ref::<BatchSummary>().cloned())
                .collect();
            *outputs = summaries
                .into_iter()
                .map(|s| BatchSummary {
                    values: s.values.iter().map(|v| v * 2).collect(),
                    ..s
                })
                .collect();
            Ok(())
        }
    }
    let flock = Flock::new();
    summarizer(&flock)
        .with_component(Doubler)
        .register()
        .unwrap();
    publish_values(&flock, [1, 2]).await;
    flock.run_until_idle().await;
    let summaries = flock.get_by_type::<BatchSummary>().await.unwrap();
    assert_eq!(summaries[0].values, vec![2, 4]);
    flock.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn agents_that_never_ran_are_not_terminated() {
    let log = Log::default();
    let flock = Flock::new();
    flock
        .agent("idle")
        .consumes::<Item>(Subscribe::new())
        .with_engine(map_fn(|_: &EngineContext, _: Arc<Item>| {
            Ok::<_, String>(Outputs::none())
        }))
        .with_component(Recorder::new("c", 0, &log))
        .register()
        .unwrap();
    publish_ids(&flock, []).await;
    flock.shutdown().await;
    assert!(log.lock().is_empty(), "{:?}", log.lock());
}
