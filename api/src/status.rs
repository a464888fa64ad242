//! Helpers for status condition lists, with the semantics of Kubernetes'
//! `meta.SetStatusCondition` / `meta.FindStatusCondition`.
//!
//! The helpers read no clock: callers pass the current time.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// A condition to pass to [`set_condition`]: no observed generation, and the zero transition
/// time, so `set_condition` stamps its `now` when the status changes.
///
/// A message longer than a condition holds ([`CONDITION_MESSAGE_MAX`]) is cut to fit, at a
/// character boundary, ending in `...`: a status with a longer one would be refused whole.
pub fn condition(type_: &str, status: &str, reason: &str, message: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: cut_to(message.to_string(), CONDITION_MESSAGE_MAX),
        last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
        observed_generation: None,
    }
}

/// The most characters a condition's message may hold: `metav1.Condition` declares
/// `maxLength: 32768`, and the API server refuses a status with a longer one.
pub const CONDITION_MESSAGE_MAX: usize = 32768;

/// `message` cut to at most `max` bytes at a character boundary, ending in `...` when cut.
pub fn cut_to(mut message: String, max: usize) -> String {
    if message.len() > max {
        let mut cut = max.saturating_sub(3);
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push_str("...");
    }
    message
}

/// `metav1.Condition`'s `type`: CamelCase, or prefixed by a DNS subdomain and `/`.
pub const CONDITION_TYPE_PATTERN: &str = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$";

/// `metav1.Condition`'s `reason`: a CamelCase identifier (letters, digits, `_`, `,`, `:`).
pub const CONDITION_REASON_PATTERN: &str = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$";

/// Whether `t` may be a condition's `type` ([`CONDITION_TYPE_PATTERN`], at most 316
/// characters): a status with any other is refused.
pub fn valid_condition_type(t: &str) -> bool {
    static RE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(CONDITION_TYPE_PATTERN).expect("the pattern compiles")
    });
    t.chars().count() <= 316 && RE.is_match(t)
}

/// Returns the condition of the given type, if the list has one.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Returns the condition of the given type for changing, if the list has one.
pub fn find_condition_mut<'a>(
    conditions: &'a mut [Condition],
    type_: &str,
) -> Option<&'a mut Condition> {
    conditions.iter_mut().find(|c| c.type_ == type_)
}

/// Whether the list has a condition of the given type with status `True`.
pub fn is_condition_true(conditions: &[Condition], type_: &str) -> bool {
    has_condition_status(conditions, type_, crate::conditions::STATUS_TRUE)
}

/// Whether the list has a condition of the given type with status `False`.
pub fn is_condition_false(conditions: &[Condition], type_: &str) -> bool {
    has_condition_status(conditions, type_, crate::conditions::STATUS_FALSE)
}

fn has_condition_status(conditions: &[Condition], type_: &str, status: &str) -> bool {
    find_condition(conditions, type_).is_some_and(|c| c.status == status)
}

/// Adds `new` to the list, or updates the condition of the same type; returns whether the
/// list changed.
///
/// When a condition of that type exists, its status, reason, message and observed
/// generation are taken from `new`; its `lastTransitionTime` changes only if the status
/// does, and then becomes `new`'s time, or `now` if `new`'s is the zero time (the Unix
/// epoch). A new condition keeps `new`'s time, or gets `now` if that is the zero time.
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition, now: Time) -> bool {
    let transition_time = if is_zero_time(&new.last_transition_time) {
        now
    } else {
        new.last_transition_time.clone()
    };

    let Some(existing) = find_condition_mut(conditions, &new.type_) else {
        new.last_transition_time = transition_time;
        conditions.push(new);
        return true;
    };

    let mut changed = false;
    if existing.status != new.status {
        existing.status = new.status;
        existing.last_transition_time = transition_time;
        changed = true;
    }
    if existing.reason != new.reason {
        existing.reason = new.reason;
        changed = true;
    }
    if existing.message != new.message {
        existing.message = new.message;
        changed = true;
    }
    if existing.observed_generation != new.observed_generation {
        existing.observed_generation = new.observed_generation;
        changed = true;
    }
    changed
}

/// Removes the condition of the given type; returns whether the list changed.
pub fn remove_condition(conditions: &mut Vec<Condition>, type_: &str) -> bool {
    let before = conditions.len();
    conditions.retain(|c| c.type_ != type_);
    conditions.len() != before
}

/// Whether a time is Go's zero `metav1.Time` as it reaches us: the Unix epoch.
fn is_zero_time(time: &Time) -> bool {
    time.0 == k8s_openapi::jiff::Timestamp::UNIX_EPOCH
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    #[test]
    fn a_message_longer_than_a_condition_holds_is_cut_at_a_character_boundary() {
        assert_eq!(cut_to("short".into(), CONDITION_MESSAGE_MAX), "short");
        let exact = "x".repeat(CONDITION_MESSAGE_MAX);
        assert_eq!(cut_to(exact.clone(), CONDITION_MESSAGE_MAX), exact);
        let long = "é".repeat(CONDITION_MESSAGE_MAX);
        let fit = super::condition("Applied", "False", "R", &long).message;
        assert!(
            fit.len() <= CONDITION_MESSAGE_MAX && fit.ends_with("é..."),
            "{}",
            fit.len()
        );
        assert!(fit.chars().count() <= CONDITION_MESSAGE_MAX);
    }

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).unwrap())
    }

    fn condition(type_: &str, status: &str, reason: &str, time: Time) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: time,
        }
    }

    #[test]
    fn setting_a_new_condition_appends_it_with_its_own_time() {
        let mut conditions = Vec::new();
        let changed = set_condition(
            &mut conditions,
            condition("Applied", "True", "Done", at(100)),
            at(500),
        );
        assert!(changed);
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].last_transition_time, at(100));
    }

    #[test]
    fn setting_a_new_condition_without_time_stamps_it_with_now() {
        let mut conditions = Vec::new();
        set_condition(
            &mut conditions,
            condition("Applied", "True", "Done", at(0)),
            at(500),
        );
        assert_eq!(conditions[0].last_transition_time, at(500));
    }

    #[test]
    fn changing_only_the_reason_keeps_the_transition_time() {
        let mut conditions = vec![condition("Applied", "True", "Old", at(100))];
        let changed = set_condition(
            &mut conditions,
            condition("Applied", "True", "New", at(300)),
            at(500),
        );
        assert!(changed);
        assert_eq!(conditions[0].reason, "New");
        assert_eq!(conditions[0].last_transition_time, at(100));
    }

    #[test]
    fn changing_the_status_moves_the_transition_time() {
        let mut conditions = vec![condition("Applied", "True", "Done", at(100))];
        set_condition(
            &mut conditions,
            condition("Applied", "False", "Failed", at(0)),
            at(500),
        );
        assert_eq!(conditions[0].status, "False");
        assert_eq!(conditions[0].last_transition_time, at(500));
    }

    #[test]
    fn changing_the_status_with_a_time_uses_that_time() {
        let mut conditions = vec![condition("Applied", "True", "Done", at(100))];
        set_condition(
            &mut conditions,
            condition("Applied", "False", "Failed", at(300)),
            at(500),
        );
        assert_eq!(conditions[0].last_transition_time, at(300));
    }

    #[test]
    fn setting_an_identical_condition_reports_no_change() {
        let mut conditions = vec![condition("Applied", "True", "Done", at(100))];
        let changed = set_condition(
            &mut conditions,
            condition("Applied", "True", "Done", at(300)),
            at(500),
        );
        assert!(!changed);
        assert_eq!(conditions[0].last_transition_time, at(100));
    }

    #[test]
    fn setting_one_type_leaves_other_types_alone() {
        let mut conditions = vec![
            condition("Applied", "True", "Done", at(100)),
            condition("Available", "False", "Missing", at(100)),
        ];
        set_condition(
            &mut conditions,
            condition("Available", "True", "Found", at(0)),
            at(500),
        );
        assert_eq!(conditions[0], condition("Applied", "True", "Done", at(100)));
        assert_eq!(conditions[1].status, "True");
    }

    #[test]
    fn finding_returns_the_condition_of_the_type() {
        let conditions = vec![
            condition("Applied", "True", "Done", at(100)),
            condition("Available", "False", "Missing", at(100)),
        ];
        assert_eq!(
            find_condition(&conditions, "Available").map(|c| c.reason.as_str()),
            Some("Missing")
        );
        assert!(find_condition(&conditions, "Degraded").is_none());
    }

    #[test]
    fn truth_checks_look_at_the_status() {
        let conditions = vec![condition("Applied", "True", "Done", at(100))];
        assert!(is_condition_true(&conditions, "Applied"));
        assert!(!is_condition_false(&conditions, "Applied"));
        assert!(!is_condition_true(&conditions, "Available"));
    }

    #[test]
    fn removing_drops_only_that_type() {
        let mut conditions = vec![
            condition("Applied", "True", "Done", at(100)),
            condition("Available", "False", "Missing", at(100)),
        ];
        assert!(remove_condition(&mut conditions, "Applied"));
        assert!(!remove_condition(&mut conditions, "Applied"));
        assert_eq!(conditions.len(), 1);
    }
}
