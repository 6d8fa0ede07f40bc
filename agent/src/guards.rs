//! The checks the agent runs around the model, by name.
//!
//! A small model gets much wrong that code can catch: ids it made up, details
//! the user never gave, a call repeated instead of an answer. Each such check
//! is a [`Guard`]. Every time one acts it is reported as an
//! [`AgentEvent::Guard`](crate::AgentEvent::Guard), so an eval counts how
//! often each fired, and an agent profile can switch the switchable ones off
//! ([`Guards::without`]) to measure what each is worth.
//!
//! Some are principles, not patches, and cannot be switched off: approvals
//! (a destructive call or one after outside text waits for the user), the
//! step and token budgets, and the refusal of a call that fails the same way
//! twice. The rest are there for small models and are candidates to drop
//! where the turn pipeline makes them unnecessary.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// One check of the loop (and, where it applies, of the turn pipeline).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Guard {
    /// A call waits for approval: destructive, or after outside text (taint).
    Approval,
    /// The step or token budget of a turn ran out.
    Budget,
    /// The same call failed twice: the turn stops.
    RepeatedFailure,
    /// A viewer asked for a change: refused before any model call.
    ReadOnly,
    /// A call that already ran was not run again (a read withheld once, a
    /// write answered from its result).
    RepeatedCall,
    /// A create with the same text as one that already ran this turn.
    SameTextWrite,
    /// The model wrote the same call twice in one reply; it ran once.
    DoubledCall,
    /// An id the model wrote was replaced by the one the request named
    /// (typed ids from the conversation).
    TypedIds,
    /// An optional id that appears nowhere in the conversation was left out.
    InventedIds,
    /// A date window the request did not ask for was left out of a search.
    UnaskedWindow,
    /// Contact details or amounts the user did not give were left out.
    GivenDetails,
    /// A call refused before it ran (an id never shown, an apology in a
    /// text argument, a missing required field), with candidates linked to
    /// a wrong id where there are some.
    CallCheck,
    /// A write picked one of several records the request could mean: the
    /// turn asks which.
    AmbiguousPick,
    /// A single write answered from its result, without another model call.
    ConfirmWrite,
    /// The model declined a plain request at once and was asked again for a call.
    Apology,
    /// Told to answer after a repeat, the model called again or parroted:
    /// the answer was written from the result.
    Parrot,
    /// Records of the last read were listed after an answer that named none.
    Listing,
    /// The pipeline left out filled values the request does not ground
    /// (`pipeline::fill::ungrounded`).
    UngroundedFill,
}

impl Guard {
    /// Every guard, in the order a call meets them.
    pub const ALL: [Guard; 18] = [
        Guard::ReadOnly,
        Guard::RepeatedFailure,
        Guard::RepeatedCall,
        Guard::SameTextWrite,
        Guard::DoubledCall,
        Guard::TypedIds,
        Guard::InventedIds,
        Guard::UnaskedWindow,
        Guard::GivenDetails,
        Guard::CallCheck,
        Guard::AmbiguousPick,
        Guard::Approval,
        Guard::ConfirmWrite,
        Guard::Budget,
        Guard::Apology,
        Guard::Parrot,
        Guard::Listing,
        Guard::UngroundedFill,
    ];

    /// The guard's name in events, reports and agent profiles.
    pub fn name(self) -> &'static str {
        match self {
            Guard::Approval => "approval",
            Guard::Budget => "budget",
            Guard::RepeatedFailure => "repeated_failure",
            Guard::ReadOnly => "read_only",
            Guard::RepeatedCall => "repeated_call",
            Guard::SameTextWrite => "same_text_write",
            Guard::DoubledCall => "doubled_call",
            Guard::TypedIds => "typed_ids",
            Guard::InventedIds => "invented_ids",
            Guard::UnaskedWindow => "unasked_window",
            Guard::GivenDetails => "given_details",
            Guard::CallCheck => "call_check",
            Guard::AmbiguousPick => "ambiguous_pick",
            Guard::ConfirmWrite => "confirm_write",
            Guard::Apology => "apology",
            Guard::Parrot => "parrot",
            Guard::Listing => "listing",
            Guard::UngroundedFill => "ungrounded_fill",
        }
    }

    /// Whether a profile may switch it off. Approvals, budgets and the stop
    /// after a repeated failure protect the user's data and money; a refusal
    /// before any model call is exact, not a patch.
    pub fn switchable(self) -> bool {
        !matches!(
            self,
            Guard::Approval | Guard::Budget | Guard::RepeatedFailure | Guard::ReadOnly
        )
    }
}

impl fmt::Display for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Guard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Guard::ALL
            .into_iter()
            .find(|g| g.name() == s.trim())
            .ok_or_else(|| {
                let names: Vec<&str> = Guard::ALL.iter().map(|g| g.name()).collect();
                format!("no guard named {s:?}; the guards are {}", names.join(", "))
            })
    }
}

/// Which guards are on: all of them unless a profile switched some off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Guards {
    off: BTreeSet<Guard>,
}

impl Guards {
    /// Every guard on.
    pub fn all() -> Self {
        Guards::default()
    }

    /// These guards off; an unknown name or one that cannot be switched off
    /// is an error that says which.
    pub fn without<S: AsRef<str>>(names: &[S]) -> Result<Self, String> {
        let mut off = BTreeSet::new();
        for name in names {
            let g: Guard = name.as_ref().parse()?;
            if !g.switchable() {
                return Err(format!(
                    "the {g} guard cannot be switched off: it protects the user's records"
                ));
            }
            off.insert(g);
        }
        Ok(Guards { off })
    }

    /// Whether `g` acts.
    pub fn on(&self, g: Guard) -> bool {
        !self.off.contains(&g)
    }

    /// The guards switched off, by name.
    pub fn off(&self) -> Vec<&'static str> {
        self.off.iter().map(|g| g.name()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_every_guard_is_listed_once() {
        let names: BTreeSet<&str> = Guard::ALL.iter().map(|g| g.name()).collect();
        assert_eq!(names.len(), Guard::ALL.len());
        for g in Guard::ALL {
            assert_eq!(g.name().parse::<Guard>(), Ok(g));
            assert_eq!(serde_json::to_value(g).unwrap(), g.name());
        }
    }

    #[test]
    fn principled_guards_cannot_be_switched_off_and_unknown_names_are_refused() {
        let g = Guards::without(&["apology", "parrot"]).unwrap();
        assert!(!g.on(Guard::Apology) && !g.on(Guard::Parrot));
        assert!(g.on(Guard::Approval));
        assert_eq!(g.off(), vec!["apology", "parrot"]);
        assert!(
            Guards::without(&["approval"])
                .unwrap_err()
                .contains("cannot be switched off")
        );
        let e = Guards::without(&["apologies"]).unwrap_err();
        assert!(e.contains("no guard named") && e.contains("apology"), "{e}");
    }
}
