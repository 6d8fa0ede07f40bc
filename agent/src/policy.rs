//! When a tool call waits for the user's approval.
//!
//! Reads always run. Destructive calls always wait. Writes run directly or
//! wait, per deployment. And whatever the deployment says, a write the model
//! asks for after it has read untrusted text in the same turn (an email body,
//! a note, a search result, imported text) waits: instructions hidden in that
//! text must never change the CRM without a person saying yes.

use rapport_tools::Effect;
use serde::{Deserialize, Serialize};

/// How writes are handled in a deployment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WritePolicy {
    /// Writes run directly (destructive ones still wait).
    #[default]
    Direct,
    /// Every write waits for approval.
    Approve,
}

/// The approval policy of a deployment or a session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Whether ordinary writes run directly or wait.
    pub writes: WritePolicy,
    /// The user approved in advance (`rapport ask --approve-all`): policy and
    /// destructive waits are skipped, but not waits caused by untrusted text.
    pub approve_all: bool,
}

/// Why a call waits, or `None` when it runs now.
pub fn approval_reason(policy: &Policy, effect: Effect, tainted: bool) -> Option<&'static str> {
    if effect == Effect::Read {
        return None;
    }
    if tainted {
        return Some(
            "this turn read text from emails, notes, calls or imports; changes after that wait for your approval",
        );
    }
    if policy.approve_all {
        return None;
    }
    match (effect, policy.writes) {
        (Effect::Destructive, _) => Some("deleting or merging records always waits for approval"),
        (Effect::Write, WritePolicy::Approve) => Some("this deployment asks before every change"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_run_destructive_waits_taint_always_waits() {
        let direct = Policy::default();
        let approve = Policy {
            writes: WritePolicy::Approve,
            approve_all: false,
        };
        let all = Policy {
            writes: WritePolicy::Approve,
            approve_all: true,
        };
        assert_eq!(approval_reason(&direct, Effect::Read, true), None);
        assert_eq!(approval_reason(&direct, Effect::Write, false), None);
        assert!(approval_reason(&approve, Effect::Write, false).is_some());
        assert!(approval_reason(&direct, Effect::Destructive, false).is_some());
        assert_eq!(approval_reason(&all, Effect::Destructive, false), None);
        assert!(approval_reason(&all, Effect::Write, true).is_some());
        assert!(approval_reason(&direct, Effect::Destructive, true).is_some());
    }
}
