//! Hub: keeps every controller running. A controller whose task ends or panics is recorded as
//! down, logged, and started again after a growing delay (1 s doubling to 60 s); while any is
//! down, [`Supervisor::check`] fails, and with it the hub's `/readyz`. A controller is never
//! silently lost.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The state of one controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Its task is running.
    Running,
    /// Its task ended; it restarts after a delay.
    Down(String),
}

/// Runs controllers and knows which are up.
#[derive(Clone)]
pub struct Supervisor {
    states: Arc<Mutex<BTreeMap<&'static str, (State, u32)>>>,
    first_delay: Duration,
}

impl Default for Supervisor {
    fn default() -> Self {
        Supervisor::with_first_delay(Duration::from_secs(1))
    }
}

/// Longest wait before a restart.
const MAX_DELAY: Duration = Duration::from_secs(60);

fn panic_message(e: tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return "cancelled".into();
    }
    panicked(e.into_panic().as_ref())
}

/// `panicked: MESSAGE` for a panic's payload, or `panicked` when it carries no text.
pub(crate) fn panicked(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .map(|m| format!("panicked: {m}"))
        .unwrap_or_else(|| "panicked".into())
}

impl Supervisor {
    /// A supervisor whose first restart comes after `delay` (tests use a short one).
    pub fn with_first_delay(delay: Duration) -> Self {
        Supervisor {
            states: Arc::default(),
            first_delay: delay,
        }
    }

    fn set(&self, name: &'static str, state: State, restarted: bool) {
        let mut states = self.states.lock().expect("supervisor lock");
        let entry = states.entry(name).or_insert((State::Running, 0));
        entry.0 = state;
        if restarted {
            entry.1 += 1;
        }
    }

    /// Runs the controller `make` builds under `name`, building and starting it again each time
    /// its task ends or panics.
    pub fn spawn<F, Fut>(&self, name: &'static str, make: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let me = self.clone();
        me.set(name, State::Running, false);
        tokio::spawn(async move {
            let mut delay = me.first_delay;
            loop {
                let why = match tokio::spawn(make()).await {
                    Ok(()) => "stopped".to_string(),
                    Err(e) => panic_message(e),
                };
                tracing::error!(controller = name, reason = %why, retry_in = ?delay, "a hub controller died; restarting it");
                me.set(name, State::Down(why), false);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_DELAY);
                me.set(name, State::Running, true);
            }
        });
    }

    /// Each controller's state and how often it was restarted.
    pub fn states(&self) -> BTreeMap<&'static str, (State, u32)> {
        self.states.lock().expect("supervisor lock").clone()
    }

    /// Ok while every controller runs; else the ones that are down, and why.
    pub fn check(&self) -> Result<(), String> {
        let down: Vec<String> = self
            .states()
            .into_iter()
            .filter_map(|(name, (s, _))| match s {
                State::Down(why) => Some(format!("{name} {why}")),
                State::Running => None,
            })
            .collect();
        if down.is_empty() {
            Ok(())
        } else {
            Err(down.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_panicking_controller_is_reported_down_then_restarted() {
        let sup = Supervisor::with_first_delay(Duration::from_millis(300));
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        sup.spawn("flaky", move || {
            let n = r.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    panic!("bad object");
                }
                std::future::pending::<()>().await;
            }
        });
        sup.spawn("steady", std::future::pending::<()>);
        let mut saw_down = None;
        for _ in 0..100 {
            if let Err(e) = sup.check() {
                saw_down = Some(e);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let why = saw_down.expect("the dead controller was never reported");
        assert!(why.contains("flaky panicked: bad object"), "{why}");
        assert!(!why.contains("steady"), "{why}");
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(sup.check(), Ok(()));
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(sup.states()["flaky"], (State::Running, 1));
    }

    #[tokio::test]
    async fn a_controller_whose_stream_ends_counts_as_dead() {
        let sup = Supervisor::with_first_delay(Duration::from_secs(30));
        sup.spawn("ends", || async {});
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(sup.check(), Err("ends stopped".to_string()));
    }
}
