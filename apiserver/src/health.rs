//! Named health checks behind `/readyz` and `/healthz`, as kube-apiserver reports them: each
//! check prints `[+]name ok` or `[-]name failed: reason`, and any failure makes the endpoint
//! answer 500. `/readyz/NAME` runs one check. `/livez` only says the process answers.
//!
//! Whoever embeds the server adds checks (the hub adds its controllers); the server adds the
//! store's write probe.

use std::sync::{Arc, RwLock};

/// One check: Ok, or why not.
pub type Check = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// The registered checks, shared by the server and whoever adds to it.
#[derive(Clone, Default)]
pub struct Health {
    checks: Arc<RwLock<Vec<(String, Check)>>>,
}

/// What a health endpoint answers.
#[derive(Debug, PartialEq, Eq)]
pub struct Report {
    /// Whether every check that ran passed.
    pub healthy: bool,
    /// One line per check, kube-style.
    pub text: String,
}

impl Health {
    /// Registers `check` under `name`.
    pub fn add(&self, name: &str, check: Check) {
        self.checks
            .write()
            .expect("health lock")
            .push((name.to_string(), check));
    }

    /// Runs every check, or only `only`. None when `only` names no check.
    pub fn run(&self, only: Option<&str>) -> Option<Report> {
        let checks = self.checks.read().expect("health lock").clone();
        let mut text = String::from("[+]ping ok\n");
        let mut healthy = true;
        let mut ran = false;
        for (name, check) in checks.iter() {
            if only.is_some_and(|o| o != name) {
                continue;
            }
            ran = true;
            match check() {
                Ok(()) => text.push_str(&format!("[+]{name} ok\n")),
                Err(why) => {
                    healthy = false;
                    text.push_str(&format!("[-]{name} failed: {why}\n"));
                }
            }
        }
        if only.is_some() && !ran {
            return None;
        }
        text.push_str(if healthy {
            "healthz check passed\n"
        } else {
            "healthz check failed\n"
        });
        Some(Report { healthy, text })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_failing_check_fails_the_report_and_names_itself() {
        let h = Health::default();
        h.add("store", Arc::new(|| Ok(())));
        h.add(
            "controllers",
            Arc::new(|| Err("placement: panicked".into())),
        );
        let r = h.run(None).unwrap();
        assert!(!r.healthy);
        assert!(r.text.contains("[+]store ok"), "{}", r.text);
        assert!(
            r.text
                .contains("[-]controllers failed: placement: panicked"),
            "{}",
            r.text
        );
        assert!(h.run(Some("store")).unwrap().healthy);
        assert!(h.run(Some("nothing")).is_none());
    }
}
