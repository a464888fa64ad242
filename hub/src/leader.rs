//! Leader election with a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does,
//! so several hub replicas can run with one active.
//!
//! A replica takes the lease when it is free or when its holder has not renewed it for a whole
//! lease duration, judged by this replica's own clock from the moment it last saw the lease
//! change (never by comparing its clock with the holder's). The leader renews every retry
//! period; when it cannot renew within the renew deadline it has lost the lease, and must stop
//! acting before another replica can take over: the renew deadline is shorter than the lease
//! duration. Every write carries the resourceVersion it read, so two replicas racing for a free
//! lease cannot both win.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};

/// Timing and identity of an election.
#[derive(Debug, Clone)]
pub struct Config {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity, unique among replicas.
    pub identity: String,
    /// How long a lease is good for after its last renewal.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leadership.
    pub renew_deadline: Duration,
    /// Time between attempts.
    pub retry_period: Duration,
}

impl Config {
    /// client-go's defaults: 15 s lease, 10 s renew deadline, 2 s retry period.
    pub fn new(namespace: &str, name: &str, identity: &str) -> Self {
        Config {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// Checks that the leader gives up before a follower may take over.
    pub fn validate(&self) -> Result<(), String> {
        if self.renew_deadline >= self.lease_duration {
            return Err(format!(
                "the renew deadline ({:?}) must be shorter than the lease duration ({:?})",
                self.renew_deadline, self.lease_duration
            ));
        }
        if self.retry_period >= self.renew_deadline {
            return Err(format!(
                "the retry period ({:?}) must be shorter than the renew deadline ({:?})",
                self.retry_period, self.renew_deadline
            ));
        }
        Ok(())
    }
}

/// One replica's side of the election.
pub struct Elector {
    api: Api<Lease>,
    cfg: Config,
    /// The lease record last seen, and when this replica first saw it.
    observed: Option<(Option<String>, Option<MicroTime>, Instant)>,
}

impl Elector {
    /// An elector for `cfg`, talking through `client`.
    pub fn new(client: kube::Client, cfg: Config) -> Self {
        Elector {
            api: Api::namespaced(client, &cfg.namespace),
            cfg,
            observed: None,
        }
    }

    /// The election's configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Waits until this replica holds the lease.
    pub async fn acquire(&mut self) {
        let mut announced = false;
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => return,
                Ok(false) => {
                    if !announced {
                        tracing::info!(lease = %self.cfg.name, holder = ?self.holder(), "waiting for the leader lease");
                        announced = true;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read or write the leader lease"),
            }
            tokio::time::sleep(self.cfg.retry_period).await;
        }
    }

    /// Keeps the lease renewed. Returns, with why, once leadership is lost: another replica
    /// holds the lease, or no renewal succeeded within the renew deadline. Each attempt is cut
    /// off at the deadline, so a request that hangs cannot keep a stale leader going.
    pub async fn hold(&mut self) -> String {
        let mut last_renewal = Instant::now();
        loop {
            tokio::time::sleep(self.cfg.retry_period).await;
            let left = self
                .cfg
                .renew_deadline
                .saturating_sub(last_renewal.elapsed());
            match tokio::time::timeout(left, self.try_acquire_or_renew()).await {
                Ok(Ok(true)) => last_renewal = Instant::now(),
                Ok(Ok(false)) => {
                    return format!(
                        "the lease is held by {}",
                        self.holder().unwrap_or_else(|| "another replica".into())
                    );
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot renew the leader lease");
                }
                Err(_) => tracing::warn!("renewing the leader lease timed out"),
            }
            if last_renewal.elapsed() >= self.cfg.renew_deadline {
                return format!(
                    "the lease could not be renewed for {:?}",
                    self.cfg.renew_deadline
                );
            }
        }
    }

    fn holder(&self) -> Option<String> {
        self.observed.as_ref().and_then(|(h, _, _)| h.clone())
    }

    /// One attempt: true when this replica holds the lease afterwards.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = MicroTime(jiff::Timestamp::now());
        let duration_secs = self.cfg.lease_duration.as_secs().max(1) as i32;
        let Some(mut lease) = self.api.get_opt(&self.cfg.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.cfg.name.clone()),
                    namespace: Some(self.cfg.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.cfg.identity.clone()),
                    lease_duration_seconds: Some(duration_secs),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => {
                    self.observe(&lease);
                    Ok(true)
                }
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        self.observe(&lease);
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let mine = holder == self.cfg.identity;
        // The holder's own promise, not ours, says how long its lease lasts.
        let lasts = spec
            .lease_duration_seconds
            .filter(|s| *s > 0)
            .map(|s| Duration::from_secs(s as u64))
            .unwrap_or(self.cfg.lease_duration);
        let seen_at = self.observed.as_ref().map(|(_, _, at)| *at);
        let expired = seen_at.is_none_or(|at| at.elapsed() >= lasts);
        if !holder.is_empty() && !mine && !expired {
            return Ok(false);
        }
        let mut next = spec;
        next.renew_time = Some(now.clone());
        next.lease_duration_seconds = Some(duration_secs);
        if !mine {
            next.holder_identity = Some(self.cfg.identity.clone());
            next.acquire_time = Some(now);
            next.lease_transitions = Some(next.lease_transitions.unwrap_or(0) + 1);
        }
        lease.spec = Some(next);
        match self
            .api
            .replace(&self.cfg.name, &PostParams::default(), &lease)
            .await
        {
            Ok(written) => {
                self.observe(&written);
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Notes the lease's record; the clock for its expiry restarts whenever the record changes.
    fn observe(&mut self, lease: &Lease) {
        let spec = lease.spec.clone().unwrap_or_default();
        let record = (spec.holder_identity, spec.renew_time);
        let changed = self
            .observed
            .as_ref()
            .is_none_or(|(h, r, _)| (h, r) != (&record.0, &record.1));
        if changed {
            self.observed = Some((record.0, record.1, Instant::now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leader_must_give_up_before_a_follower_takes_over() {
        let ok = Config::new("ns", "l", "a");
        ok.validate().unwrap();
        let mut bad = ok.clone();
        bad.renew_deadline = bad.lease_duration;
        assert!(bad.validate().unwrap_err().contains("renew deadline"));
        let mut bad = ok;
        bad.retry_period = bad.renew_deadline;
        assert!(bad.validate().unwrap_err().contains("retry period"));
    }
}
