//! Visibility rules for flock-rs artifacts: who may see which artifact.
//!
//! Every artifact carries a [`Visibility`]; every agent (and every user query that
//! carries one) has an [`AgentIdentity`]. [`Visibility::allows`] decides whether the
//! identity may see the artifact at a given moment. The runtime applies this check
//! before predicates, joins and batches, and on every read path.
//!
//! This crate is the leaf of the workspace: it depends on no other flock crate, so
//! that `flock-core` can carry a `Visibility` in every artifact (see
//! `docs/adr/0001-visibility-is-the-leaf-crate.md`).
//!
//! ```
//! use flock_visibility::{AgentIdentity, Visibility};
//! use chrono::Utc;
//!
//! let reader = AgentIdentity::new("reader").with_tenant("acme");
//! let now = Utc::now();
//! assert!(Visibility::Public.allows(&reader, now, now));
//! assert!(Visibility::tenant("acme").allows(&reader, now, now));
//! assert!(!Visibility::tenant("globex").allows(&reader, now, now));
//! ```

use std::{collections::BTreeSet, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// Who an agent (or a user query) is, for visibility checks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentIdentity {
    /// The agent's name, unique within a `Flock`.
    pub name: String,
    /// Labels the agent holds (for [`Visibility::Labelled`]).
    #[serde(default)]
    pub labels: BTreeSet<String>,
    /// The tenant the agent acts for, if any (for [`Visibility::Tenant`]).
    #[serde(default)]
    pub tenant_id: Option<String>,
}

impl AgentIdentity {
    /// An identity with a name, no labels and no tenant.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            labels: BTreeSet::new(),
            tenant_id: None,
        }
    }

    /// Adds labels.
    pub fn with_labels<I, S>(mut self, labels: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.labels.extend(labels.into_iter().map(Into::into));
        self
    }

    /// Sets the tenant.
    pub fn with_tenant(mut self, tenant_id: impl Into<String>) -> Self {
        self.tenant_id = Some(tenant_id.into());
        self
    }

    /// Sets or clears the tenant.
    pub fn with_tenant_opt(mut self, tenant_id: Option<String>) -> Self {
        self.tenant_id = tenant_id;
        self
    }
}

/// Who may see an artifact.
///
/// Serialized with a `kind` tag, e.g. `{"kind": "tenant", "tenant_id": "acme"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Visibility {
    /// Everyone.
    #[default]
    Public,
    /// Only the named agents.
    Private {
        /// Agent names allowed to see the artifact.
        agents: BTreeSet<String>,
    },
    /// Only identities holding every required label.
    Labelled {
        /// Labels an identity must all hold.
        required_labels: BTreeSet<String>,
    },
    /// Only identities of one tenant; `None` means everyone.
    Tenant {
        /// The tenant allowed to see the artifact.
        tenant_id: Option<String>,
    },
    /// Hidden from everyone until `created_at + ttl`, then as `then` (public if `None`).
    After {
        /// How long after creation the artifact stays hidden.
        #[serde(with = "duration_ms")]
        ttl: Duration,
        /// The rule in force once the artifact is visible.
        #[serde(default)]
        then: Option<Box<Visibility>>,
    },
    /// Only identities that every rule allows. The runtime gives it to what it
    /// derives from artifacts of different visibilities (see
    /// [`Visibility::derived_from`]).
    AllOf {
        /// The rules, all of which must allow.
        rules: Vec<Visibility>,
    },
}

impl Visibility {
    /// [`Visibility::Private`] for the given agents.
    pub fn private<I, S>(agents: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::Private {
            agents: agents.into_iter().map(Into::into).collect(),
        }
    }

    /// [`Visibility::Labelled`] with the given required labels.
    pub fn labelled<I, S>(labels: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::Labelled {
            required_labels: labels.into_iter().map(Into::into).collect(),
        }
    }

    /// [`Visibility::Tenant`] for one tenant.
    pub fn tenant(tenant_id: impl Into<String>) -> Self {
        Self::Tenant {
            tenant_id: Some(tenant_id.into()),
        }
    }

    /// [`Visibility::After`]: hidden for `ttl`, then `then`.
    pub fn after(ttl: Duration, then: Option<Visibility>) -> Self {
        Self::After {
            ttl,
            then: then.map(Box::new),
        }
    }

    /// The visibility of something derived from artifacts with `inputs`' visibilities
    /// (an agent's output, or the error of its run): whoever could not see every
    /// input may not see it. An `After` input counts as its rule once visible (the
    /// derived artifact exists only after its inputs were visible).
    ///
    /// ```
    /// use flock_visibility::{AgentIdentity, Visibility};
    /// # let now = chrono::Utc::now();
    ///
    /// let inputs = [Visibility::tenant("acme"), Visibility::Public, Visibility::tenant("acme")];
    /// assert_eq!(Visibility::derived_from(&inputs), Visibility::tenant("acme"));
    /// assert_eq!(Visibility::derived_from(&[Visibility::Public]), Visibility::Public);
    ///
    /// let mixed = Visibility::derived_from(&[Visibility::tenant("acme"), Visibility::labelled(["pii"])]);
    /// let acme = AgentIdentity::new("a").with_tenant("acme");
    /// assert!(!mixed.allows(&acme, now, now));
    /// assert!(mixed.allows(&acme.with_labels(["pii"]), now, now));
    /// ```
    pub fn derived_from<'a>(inputs: impl IntoIterator<Item = &'a Visibility>) -> Self {
        fn add(rules: &mut Vec<Visibility>, rule: &Visibility) {
            match rule {
                Visibility::Public | Visibility::Tenant { tenant_id: None } => {}
                Visibility::After { then, .. } => {
                    if let Some(then) = then {
                        add(rules, then);
                    }
                }
                Visibility::AllOf { rules: nested } => {
                    for rule in nested {
                        add(rules, rule);
                    }
                }
                other => {
                    if !rules.contains(other) {
                        rules.push(other.clone());
                    }
                }
            }
        }
        let mut rules = Vec::new();
        for input in inputs {
            add(&mut rules, input);
        }
        match rules.len() {
            0 => Self::Public,
            1 => rules.remove(0),
            _ => Self::AllOf { rules },
        }
    }

    /// Whether `identity` may see an artifact created at `created_at`, at time `now`.
    #[inline]
    pub fn allows(
        &self,
        identity: &AgentIdentity,
        created_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> bool {
        // Most artifacts are public: decided where it is asked, without a call.
        matches!(self, Self::Public) || self.allows_rule(identity, created_at, now)
    }

    fn allows_rule(
        &self,
        identity: &AgentIdentity,
        created_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> bool {
        match self {
            Self::Public => true,
            Self::Private { agents } => agents.contains(&identity.name),
            Self::Labelled { required_labels } => required_labels.is_subset(&identity.labels),
            Self::Tenant { tenant_id: None } => true,
            Self::Tenant {
                tenant_id: Some(tenant),
            } => identity.tenant_id.as_deref() == Some(tenant.as_str()),
            Self::After { ttl, then } => {
                let visible_from = visible_from(created_at, *ttl);
                now >= visible_from
                    && then
                        .as_deref()
                        .is_none_or(|then| then.allows(identity, created_at, now))
            }
            Self::AllOf { rules } => rules
                .iter()
                .all(|rule| rule.allows(identity, created_at, now)),
        }
    }

    /// The earliest moment the artifact can become visible to anyone, if that is
    /// later than its creation (only [`Visibility::After`] delays visibility).
    pub fn visible_from(&self, created_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::After { ttl, then } => {
                let own = visible_from(created_at, *ttl);
                let nested = then
                    .as_deref()
                    .and_then(|then| then.visible_from(created_at));
                Some(nested.map_or(own, |nested| nested.max(own)))
            }
            Self::AllOf { rules } => rules
                .iter()
                .filter_map(|rule| rule.visible_from(created_at))
                .max(),
            _ => None,
        }
    }
}

fn visible_from(created_at: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    // A ttl too large for chrono's range means "never within this calendar".
    TimeDelta::from_std(ttl)
        .ok()
        .and_then(|ttl| created_at.checked_add_signed(ttl))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

mod duration_ms {
    //! `Duration` as whole milliseconds, the unit Flock's JSON uses.
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn each_kind_allows_and_denies() {
        let alice = AgentIdentity::new("alice")
            .with_labels(["pii", "eu"])
            .with_tenant("acme");
        let bob = AgentIdentity::new("bob");
        let t = at(0);
        assert!(Visibility::Public.allows(&bob, t, t));
        assert!(Visibility::private(["alice"]).allows(&alice, t, t));
        assert!(!Visibility::private(["alice"]).allows(&bob, t, t));
        assert!(!Visibility::private(Vec::<String>::new()).allows(&alice, t, t));
        assert!(Visibility::labelled(["pii"]).allows(&alice, t, t));
        assert!(!Visibility::labelled(["pii", "us"]).allows(&alice, t, t));
        assert!(Visibility::labelled(Vec::<String>::new()).allows(&bob, t, t));
        assert!(Visibility::tenant("acme").allows(&alice, t, t));
        assert!(!Visibility::tenant("acme").allows(&bob, t, t));
        assert!(Visibility::Tenant { tenant_id: None }.allows(&bob, t, t));
    }

    #[test]
    fn after_hides_until_ttl_then_delegates() {
        let alice = AgentIdentity::new("alice");
        let bob = AgentIdentity::new("bob");
        let v = Visibility::after(
            Duration::from_secs(10),
            Some(Visibility::private(["alice"])),
        );
        assert!(!v.allows(&alice, at(0), at(9)));
        assert!(v.allows(&alice, at(0), at(10)));
        assert!(!v.allows(&bob, at(0), at(10)));
        assert_eq!(v.visible_from(at(0)), Some(at(10)));
        let public_later = Visibility::after(Duration::from_secs(5), None);
        assert!(public_later.allows(&bob, at(0), at(5)));
        assert_eq!(Visibility::Public.visible_from(at(0)), None);
    }

    #[test]
    fn derived_visibility_allows_only_who_sees_every_input() {
        let acme = AgentIdentity::new("a").with_tenant("acme");
        let acme_pii = acme.clone().with_labels(["pii"]);
        let other = AgentIdentity::new("b").with_tenant("globex");
        let t = at(0);
        let inputs = [
            Visibility::tenant("acme"),
            Visibility::after(Duration::from_secs(5), Some(Visibility::labelled(["pii"]))),
            Visibility::Public,
        ];
        let derived = Visibility::derived_from(&inputs);
        assert_eq!(
            derived,
            Visibility::AllOf {
                rules: vec![Visibility::tenant("acme"), Visibility::labelled(["pii"])]
            }
        );
        assert!(derived.allows(&acme_pii, t, t));
        assert!(!derived.allows(&acme, t, t));
        assert!(!derived.allows(&other, t, t));
        // Nested and repeated rules flatten; an after without a rule is public.
        let again = Visibility::derived_from(&[
            derived.clone(),
            Visibility::tenant("acme"),
            Visibility::after(Duration::from_secs(1), None),
        ]);
        assert_eq!(again, derived);
        assert_eq!(Visibility::derived_from(&[]), Visibility::Public);
        let json = serde_json::to_value(&derived).unwrap();
        assert_eq!(json["kind"], "all_of");
        assert_eq!(serde_json::from_value::<Visibility>(json).unwrap(), derived);
    }

    #[test]
    fn serializes_with_kind_tag_and_rejects_malformed_input() {
        let v = Visibility::after(Duration::from_millis(1500), Some(Visibility::tenant("a")));
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "after", "ttl": 1500, "then": {"kind": "tenant", "tenant_id": "a"}})
        );
        assert_eq!(serde_json::from_value::<Visibility>(json).unwrap(), v);
        assert!(serde_json::from_str::<Visibility>(r#"{"kind":"nobody"}"#).is_err());
        assert!(serde_json::from_str::<Visibility>(r#"{"kind":"private","agents":3}"#).is_err());
        assert!(serde_json::from_str::<Visibility>(r#"{"agents":[]}"#).is_err());
    }
}
