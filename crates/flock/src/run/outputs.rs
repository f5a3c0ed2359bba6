//! A run's outputs: the output contract, and the artifacts the outputs become,
//! with their visibility.

use std::{panic::AssertUnwindSafe, sync::Arc};

use flock_core::{Artifact, Payload, Visibility, panic_message};
use flock_engines::{EngineError, Outputs};
use uuid::Uuid;

use crate::{
    agent::{Agent, OutputCount},
    clock::Now,
    work::Work,
};

/// The output contract: every output of a declared type, in the declared count.
///
/// Each output gets the visibility its declaration gives it (`None`: derived from
/// the inputs); a panicking visibility function fails the run before anything is
/// published.
pub(super) fn check(
    agent: &Agent,
    items: usize,
    outputs: Outputs,
) -> Result<Vec<(Payload, Option<Visibility>)>, EngineError> {
    let payloads = outputs.into_payloads();
    if let Some(undeclared) = payloads
        .iter()
        .find(|p| !agent.outputs.contains_key(p.type_name()))
    {
        let declared: Vec<&str> = agent.outputs.keys().copied().collect();
        return Err(EngineError::new(format!(
            "engine returned an output of type '{}', which agent '{}' does not declare; declared: [{}]; add .publishes::<{}>()",
            undeclared.type_name(),
            agent.name,
            declared.join(", "),
            undeclared.type_name(),
        )));
    }
    for (&type_name, decl) in &agent.outputs {
        let count = decl.count;
        let got = payloads
            .iter()
            .filter(|p| p.type_name() == type_name)
            .count();
        let declared = count.declaration(type_name);
        let name = &agent.name;
        let message = match count {
            OutputCount::Any => continue,
            OutputCount::ExactlyOne if got == 1 => continue,
            OutputCount::PerInput if got == items => continue,
            OutputCount::ExactlyOne => format!(
                "agent '{name}' must publish exactly one '{type_name}' per run (declared with {declared}), but the engine returned {got}; \
                 return exactly one, or declare {} for any number",
                OutputCount::Any.declaration(type_name)
            ),
            OutputCount::PerInput => format!(
                "agent '{name}' must publish one '{type_name}' per input (declared with {declared}), {items} for this run, but the engine returned {got}"
            ),
        };
        return Err(EngineError::new(message));
    }
    payloads
        .into_iter()
        .map(|payload| {
            let visibility = match &agent.outputs[payload.type_name()].visibility {
                None => None,
                Some(rule) => Some(
                    std::panic::catch_unwind(AssertUnwindSafe(|| rule(&payload)))
                        .map_err(|panic| {
                            EngineError::new(format!(
                                "visibility function for '{}' panicked: {}",
                                payload.type_name(),
                                panic_message(panic.as_ref())
                            ))
                        })?
                        .unwrap_or_default(),
                ),
            };
            Ok((payload, visibility))
        })
        .collect()
}

/// The visibility of what a run derives from its inputs: whoever could see every
/// input.
pub(super) fn inputs_visibility(work: &Work) -> Visibility {
    Visibility::derived_from(work.artifacts().iter().map(|a| a.visibility()))
}

/// The artifacts a successful attempt publishes.
pub(super) fn artifacts(
    now: Now,
    agent: &Agent,
    payloads: Vec<(Payload, Option<Visibility>)>,
    correlation_id: Option<Uuid>,
    work: &Work,
) -> Vec<Arc<Artifact>> {
    let mut derived = None;
    payloads
        .into_iter()
        .map(|(payload, visibility)| {
            let visibility = visibility.unwrap_or_else(|| {
                derived
                    .get_or_insert_with(|| inputs_visibility(work))
                    .clone()
            });
            self::derived(now, agent, payload, visibility, correlation_id)
        })
        .collect()
}

/// An artifact `agent` publishes.
pub(super) fn derived(
    now: Now,
    agent: &Agent,
    payload: Payload,
    visibility: Visibility,
    correlation_id: Option<Uuid>,
) -> Arc<Artifact> {
    let mut artifact = Artifact::new_at(payload, agent.name.clone(), now.wall);
    artifact.set_correlation_id(correlation_id);
    artifact.set_visibility(visibility);
    Arc::new(artifact)
}
