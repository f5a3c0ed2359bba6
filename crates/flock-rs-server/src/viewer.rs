//! What a request may see: its access (the operator, or an identity whose
//! visibility rules apply), once [`crate::auth`] has checked its token.

use chrono::{DateTime, Utc};
use flock::{AgentIdentity, Artifact, Visibility};

use crate::{ApiError, config::Access};

/// The access of the request being served.
#[derive(Debug, Clone)]
pub(crate) struct Viewer(pub(crate) Access);

impl Viewer {
    /// Whether the viewer may see something whose visibility is `visibility`
    /// (created at `created_at`), now.
    pub(crate) fn sees(
        &self,
        visibility: &Visibility,
        created_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> bool {
        match &self.0 {
            Access::Operator => true,
            Access::Identity(identity) => visibility.allows(identity, created_at, now),
        }
    }

    /// Whether the viewer may see `artifact` now.
    pub(crate) fn sees_artifact(&self, artifact: &Artifact, now: DateTime<Utc>) -> bool {
        self.sees(artifact.visibility(), artifact.created_at, now)
    }

    /// The identity, unless the viewer is the operator.
    pub(crate) fn identity(&self) -> Option<&AgentIdentity> {
        match &self.0 {
            Access::Operator => None,
            Access::Identity(identity) => Some(identity),
        }
    }

    /// Refuses operator actions to identities.
    pub(crate) fn require_operator(&self, action: &'static str) -> Result<(), ApiError> {
        match self.0 {
            Access::Operator => Ok(()),
            Access::Identity(_) => Err(ApiError::Forbidden(format!(
                "{action} is an operator action; use an operator token"
            ))),
        }
    }
}
