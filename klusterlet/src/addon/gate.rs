//! What a built-in add-on that judges works (policy, image verification) shares with its work
//! gate: whether the add-on runs here, and what its current run last found. The add-on
//! manager decides whether the add-on is enabled; each run of the add-on publishes its state
//! as the gate's owner, so a run replaced by a newer one (a rotated certificate) or stopped by
//! a disabling leaves the gate alone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

/// Where an add-on stands, for its gate; `T` is what a run found.
#[derive(Clone, Default)]
pub enum GateState<T> {
    /// The agent has not learned yet whether the add-on is enabled here: works wait.
    #[default]
    Undecided,
    /// The add-on does not run here: nothing is judged.
    Off,
    /// The add-on runs but has not published its first findings: works wait.
    Starting,
    /// What its current run last found.
    Ready(T),
}

/// The gate's state and the add-on run that owns it (0: none).
pub struct Shared<T> {
    pub(super) state: GateState<T>,
    owner: u64,
}

impl<T> Default for Shared<T> {
    fn default() -> Self {
        Shared {
            state: GateState::Undecided,
            owner: 0,
        }
    }
}

/// Shared between an add-on's runs and its work gate.
pub type Handle<T> = Arc<RwLock<Shared<T>>>;

/// Reads the shared state.
pub fn read<T>(h: &Handle<T>) -> RwLockReadGuard<'_, Shared<T>> {
    h.read().unwrap_or_else(|e| e.into_inner())
}

/// What the add-on manager learned from the hub: whether the add-on is enabled on this
/// cluster. Disabled switches the gate off and leaves it without an owner, so a run still
/// stopping cannot reopen the question; enabled makes an undecided or off gate wait for the
/// add-on's first findings. A running add-on's own state is left alone.
pub fn decided<T>(h: &Handle<T>, enabled: bool) {
    let mut s = h.write().unwrap_or_else(|e| e.into_inner());
    match (&s.state, enabled) {
        (_, false) => {
            s.state = GateState::Off;
            s.owner = 0;
        }
        (GateState::Undecided | GateState::Off, true) => s.state = GateState::Starting,
        _ => {}
    }
}

/// Whether the add-on is enabled here (running or starting).
pub fn enabled<T>(h: &Handle<T>) -> bool {
    matches!(read(h).state, GateState::Starting | GateState::Ready(_))
}

/// Whether the gate is waiting: undecided, or for the add-on's first findings.
pub fn waiting<T>(h: &Handle<T>) -> bool {
    matches!(read(h).state, GateState::Undecided | GateState::Starting)
}

/// Sets the gate's state as run `owner`; `take` makes `owner` the current run, otherwise only
/// the current run's state is changed.
pub fn set<T>(h: &Handle<T>, owner: u64, state: GateState<T>, take: bool) {
    let mut s = h.write().unwrap_or_else(|e| e.into_inner());
    if take || s.owner == owner {
        s.owner = owner;
        s.state = state;
    }
}

/// A number for a new run of an add-on, never 0.
pub fn next_owner() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disabled_add_on_stays_off_when_its_stopping_run_lets_go() {
        let h: Handle<()> = Handle::default();
        decided(&h, true);
        set(&h, 7, GateState::Starting, true);
        decided(&h, false);
        // The run stops after the decision: it must not reopen the question.
        set(&h, 7, GateState::Undecided, false);
        assert!(matches!(read(&h).state, GateState::Off));
        // Enabled again, a new run takes the gate.
        decided(&h, true);
        set(&h, 8, GateState::Starting, true);
        assert!(matches!(read(&h).state, GateState::Starting));
    }
}
