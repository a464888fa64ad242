//! Garrison's telemetry: Prometheus metrics, in one registry per process, exposed in the
//! Prometheus text format by [`render`]; and OpenTelemetry traces ([`traces`]).
//!
//! - **SLIs** (what operators run the fleet by): clusters by availability, works by condition,
//!   add-ons by availability, certificate rotations, CSR decisions, compliance by state, and
//!   works refused at delivery by a gate (image verification, policy).
//! - **API server:** request latency by verb and resource, requests by code, open watches,
//!   the watch cache's size, store write latency.
//! - **Controllers:** reconcile duration and results, and queue depth.
//!
//! Counters and histograms are updated where things happen. Gauges that describe the state of
//! the store are set by refreshers that run on each scrape ([`on_scrape`]), so a scrape always
//! shows the state at that moment and nothing is kept in step between scrapes.

pub mod traces;

use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A histogram family whose histograms share one bucket layout.
pub type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Latency buckets from 1 ms to about 33 s, doubling.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Store write buckets from 50 µs to about 1.6 s, doubling.
fn write_latency() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// An API request's verb, API group and resource (`resource/subresource`; empty for paths
/// that are not resources).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Kubernetes verb (`get`, `list`, `create`, ...), or the HTTP method of other paths.
    pub verb: String,
    /// API group, empty for the core group.
    pub group: String,
    /// Resource, with `/subresource` when there is one.
    pub resource: String,
}

/// [`RequestLabels`] and the answer's HTTP code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestCodeLabels {
    /// Kubernetes verb.
    pub verb: String,
    /// API group.
    pub group: String,
    /// Resource.
    pub resource: String,
    /// HTTP status code.
    pub code: String,
}

/// An API group and resource.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabels {
    /// API group.
    pub group: String,
    /// Resource.
    pub resource: String,
}

/// A controller's name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// The controller.
    pub controller: String,
}

/// A controller and a reconcile's result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// The controller.
    pub controller: String,
    /// `success` or `error`.
    pub result: String,
}

/// The status of an availability condition: `True`, `False` or `Unknown` (also when absent).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AvailableLabels {
    /// The condition's status.
    pub available: String,
}

/// An add-on and its availability.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AddonLabels {
    /// The add-on's name.
    pub addon: String,
    /// The Available condition's status.
    pub available: String,
}

/// A condition type and its status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConditionLabels {
    /// The condition type.
    pub condition: String,
    /// Its status.
    pub status: String,
}

/// An outcome: `succeeded` or `failed`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// The outcome.
    pub result: String,
}

/// A CSR decision: `approved` or `denied`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// The decision.
    pub decision: String,
}

/// A compliance state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// `Compliant`, `NonCompliant`, `Pending` or `Unknown`.
    pub state: String,
}

/// What became of an image checked at delivery.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `verified`, `refused` or `allowed` (warned about, or covered by no policy where that is
    /// allowed).
    pub outcome: String,
}

/// The gate that refused a work.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GateLabels {
    /// The reason the agent gave (`ImageVerificationFailed`, `PolicyViolation`).
    pub reason: String,
}

type Refresher = Box<dyn Fn(&Metrics) + Send + Sync>;

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    /// Run before each scrape; the lock also keeps two scrapes from interleaving.
    refreshers: Mutex<Vec<(String, Refresher)>>,
    /// `garrison_apiserver_request_duration_seconds`: latency of requests other than watches.
    pub request_duration: HistogramFamily<RequestLabels>,
    /// `garrison_apiserver_requests_total`: requests by verb, resource and code.
    pub requests: Family<RequestCodeLabels, Counter>,
    /// `garrison_apiserver_open_watches`: watches open now, by resource.
    pub open_watches: Family<ResourceLabels, Gauge>,
    /// `garrison_apiserver_watch_cache_events`: events the watch cache holds.
    pub watch_cache_events: Gauge,
    /// `garrison_apiserver_watch_cache_capacity`: the most events it holds.
    pub watch_cache_capacity: Gauge,
    /// `garrison_apiserver_watch_cache_bytes`: bytes the watch cache holds.
    pub watch_cache_bytes: Gauge,
    /// `garrison_apiserver_watch_cache_capacity_bytes`: the most bytes it holds.
    pub watch_cache_capacity_bytes: Gauge,
    /// `garrison_store_write_duration_seconds`: one object write, from the wait for the
    /// writer to the commit.
    pub store_write_duration: Histogram,
    /// `garrison_store_commit_duration_seconds`: one commit of a group of writes (the fsync).
    pub store_commit_duration: Histogram,
    /// `garrison_store_commit_writes`: how many object writes one commit carried.
    pub store_commit_size: Histogram,
    /// `garrison_process_heap_bytes`: bytes the process holds allocated now (live heap, as the
    /// allocator counts it; RSS above this is allocator overhead and code).
    pub heap_bytes: Gauge,
    /// `garrison_process_heap_peak_bytes`: the most it held at once.
    pub heap_peak_bytes: Gauge,
    /// `garrison_controller_reconcile_duration_seconds`, by controller.
    pub reconcile_duration: HistogramFamily<ControllerLabels>,
    /// `garrison_controller_reconciles_total`, by controller and result.
    pub reconciles: Family<ReconcileLabels, Counter>,
    /// `garrison_controller_queue_depth`: objects changed since their last reconcile.
    pub queue_depth: Family<ControllerLabels, Gauge>,
    /// `garrison_managed_clusters`: ManagedClusters by the status of ManagedClusterConditionAvailable.
    pub clusters: Family<AvailableLabels, Gauge>,
    /// `garrison_manifestworks`: ManifestWorks by condition (Applied, Available, Degraded) and status.
    pub works: Family<ConditionLabels, Gauge>,
    /// `garrison_manifestworks_refused`: ManifestWorks a gate on the agent refused, by reason.
    pub works_refused: Family<GateLabels, Gauge>,
    /// `garrison_managed_cluster_addons`: ManagedClusterAddOns by add-on and availability.
    pub addons: Family<AddonLabels, Gauge>,
    /// `garrison_certificate_rotations_total`: agent certificate renewals, signed or refused.
    pub certificate_rotations: Family<ResultLabels, Counter>,
    /// `garrison_csr_decisions_total`: CSRs approved or denied (by an admin or automatically).
    pub csr_decisions: Family<DecisionLabels, Counter>,
    /// `garrison_policy_compliance`: replicated policies (one per policy and cluster) by state.
    pub compliance: Family<StateLabels, Gauge>,
    /// `garrison_image_verifications_total`: images checked at delivery on an agent, by outcome.
    pub image_verifications: Family<OutcomeLabels, Counter>,
}

impl Metrics {
    fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix("garrison"),
            refreshers: Mutex::default(),
            request_duration: Family::new_with_constructor(latency),
            requests: Family::default(),
            open_watches: Family::default(),
            watch_cache_events: Gauge::default(),
            watch_cache_bytes: Gauge::default(),
            watch_cache_capacity_bytes: Gauge::default(),
            watch_cache_capacity: Gauge::default(),
            store_write_duration: write_latency(),
            store_commit_duration: write_latency(),
            store_commit_size: Histogram::new(exponential_buckets(1.0, 2.0, 9)),
            heap_bytes: Gauge::default(),
            heap_peak_bytes: Gauge::default(),
            reconcile_duration: Family::new_with_constructor(latency),
            reconciles: Family::default(),
            queue_depth: Family::default(),
            clusters: Family::default(),
            works: Family::default(),
            works_refused: Family::default(),
            addons: Family::default(),
            certificate_rotations: Family::default(),
            csr_decisions: Family::default(),
            compliance: Family::default(),
            image_verifications: Family::default(),
        };
        let r = &mut m.registry;
        r.register(
            "apiserver_request_duration_seconds",
            "Latency of API requests other than watches, by verb, group and resource",
            m.request_duration.clone(),
        );
        r.register(
            "apiserver_requests",
            "API requests by verb, group, resource and HTTP code",
            m.requests.clone(),
        );
        r.register(
            "apiserver_open_watches",
            "Watches open now, by group and resource",
            m.open_watches.clone(),
        );
        r.register(
            "apiserver_watch_cache_events",
            "Events the watch cache holds now",
            m.watch_cache_events.clone(),
        );
        r.register(
            "apiserver_watch_cache_capacity",
            "The most events the watch cache holds",
            m.watch_cache_capacity.clone(),
        );
        r.register(
            "apiserver_watch_cache_bytes",
            "Bytes the watch cache holds now (the events' JSON and bookkeeping)",
            m.watch_cache_bytes.clone(),
        );
        r.register(
            "apiserver_watch_cache_capacity_bytes",
            "The most bytes the watch cache holds",
            m.watch_cache_capacity_bytes.clone(),
        );
        r.register(
            "store_write_duration_seconds",
            "Latency of one object write to the store, from the wait for the writer to the commit",
            m.store_write_duration.clone(),
        );
        r.register(
            "store_commit_duration_seconds",
            "Latency of one store commit, which carries a group of object writes",
            m.store_commit_duration.clone(),
        );
        r.register(
            "process_heap_bytes",
            "Bytes allocated and not yet freed, as the allocator counts them",
            m.heap_bytes.clone(),
        );
        r.register(
            "process_heap_peak_bytes",
            "The most bytes allocated at once since the process started",
            m.heap_peak_bytes.clone(),
        );
        r.register(
            "store_commit_writes",
            "Object writes carried by one store commit",
            m.store_commit_size.clone(),
        );
        r.register(
            "controller_reconcile_duration_seconds",
            "Duration of one reconcile, by controller",
            m.reconcile_duration.clone(),
        );
        r.register(
            "controller_reconciles",
            "Reconciles by controller and result (success or error)",
            m.reconciles.clone(),
        );
        r.register(
            "controller_queue_depth",
            "Objects of the controller's own kind changed since their last reconcile",
            m.queue_depth.clone(),
        );
        r.register(
            "managed_clusters",
            "ManagedClusters by the status of their ManagedClusterConditionAvailable condition",
            m.clusters.clone(),
        );
        r.register(
            "manifestworks",
            "ManifestWorks by condition (Applied, Available, Degraded) and its status",
            m.works.clone(),
        );
        r.register(
            "manifestworks_refused",
            "ManifestWorks a gate on the agent refused before applying anything, by reason",
            m.works_refused.clone(),
        );
        r.register(
            "managed_cluster_addons",
            "ManagedClusterAddOns by add-on and the status of their Available condition",
            m.addons.clone(),
        );
        r.register(
            "certificate_rotations",
            "Agent certificate renewals: signed (succeeded), or denied or refused by the signer (failed)",
            m.certificate_rotations.clone(),
        );
        r.register(
            "csr_decisions",
            "Certificate signing requests approved or denied, by an admin or automatically",
            m.csr_decisions.clone(),
        );
        r.register(
            "policy_compliance",
            "Replicated policies (one per policy and cluster) by compliance state",
            m.compliance.clone(),
        );
        r.register(
            "image_verifications",
            "Images the image-verification add-on checked before applying a work, by outcome: verified, refused, or allowed (warned about, or covered by no policy where that is allowed)",
            m.image_verifications.clone(),
        );
        m
    }

    /// Shows the hub's counters from the start, at zero, so that rates over them are defined.
    pub fn hub_counters(&self) {
        for ok in [true, false] {
            self.certificate_rotations
                .get_or_create_owned(&ResultLabels {
                    result: if ok { "succeeded" } else { "failed" }.into(),
                });
            self.csr_decisions.get_or_create_owned(&DecisionLabels {
                decision: if ok { "approved" } else { "denied" }.into(),
            });
        }
    }

    /// Shows an agent's counters from the start, at zero.
    pub fn agent_counters(&self) {
        for result in ["succeeded", "failed"] {
            self.certificate_rotations
                .get_or_create_owned(&ResultLabels {
                    result: result.into(),
                });
        }
        for outcome in ["verified", "refused", "allowed"] {
            self.image_verifications
                .get_or_create_owned(&OutcomeLabels {
                    outcome: outcome.into(),
                });
        }
    }

    /// Records one API request: its latency (unless it was a watch) and its code.
    pub fn request(&self, verb: &str, group: &str, resource: &str, code: u16, took: Duration) {
        if verb != "watch" {
            self.request_duration
                .get_or_create(&RequestLabels {
                    verb: verb.into(),
                    group: group.into(),
                    resource: resource.into(),
                })
                .observe(took.as_secs_f64());
        }
        self.requests
            .get_or_create(&RequestCodeLabels {
                verb: verb.into(),
                group: group.into(),
                resource: resource.into(),
                code: code.to_string(),
            })
            .inc();
    }

    /// Records one reconcile of `controller`.
    pub fn reconcile(&self, controller: &str, ok: bool, took: Duration) {
        self.reconcile_duration
            .get_or_create(&ControllerLabels {
                controller: controller.into(),
            })
            .observe(took.as_secs_f64());
        self.reconciles
            .get_or_create(&ReconcileLabels {
                controller: controller.into(),
                result: if ok { "success" } else { "error" }.into(),
            })
            .inc();
    }

    /// Counts a certificate renewal that was signed (`true`) or refused.
    pub fn rotation(&self, succeeded: bool) {
        self.certificate_rotations
            .get_or_create(&ResultLabels {
                result: if succeeded { "succeeded" } else { "failed" }.into(),
            })
            .inc();
    }

    /// Counts an image checked at delivery.
    pub fn image_verification(&self, outcome: &str) {
        self.image_verifications
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Counts a CSR decision.
    pub fn csr_decision(&self, approved: bool) {
        self.csr_decisions
            .get_or_create(&DecisionLabels {
                decision: if approved { "approved" } else { "denied" }.into(),
            })
            .inc();
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// Runs `refresh` before every scrape, to set gauges from the current state. It replaces the
/// refresher registered earlier under the same `name` (a controller started again, say).
pub fn on_scrape(name: &str, refresh: impl Fn(&Metrics) + Send + Sync + 'static) {
    let mut refreshers = METRICS.refreshers.lock().unwrap_or_else(|p| p.into_inner());
    refreshers.retain(|(n, _)| n != name);
    refreshers.push((name.to_string(), Box::new(refresh)));
}

/// Every metric in the Prometheus text format, after the refreshers ran.
pub fn render() -> String {
    let m = metrics();
    let refreshers = m.refreshers.lock().unwrap_or_else(|p| p.into_inner());
    for (_, refresh) in refreshers.iter() {
        refresh(m);
    }
    let heap = regorus_mimalloc::global_allocation_stats_snapshot();
    m.heap_bytes
        .set(i64::try_from(heap.allocated).unwrap_or(i64::MAX));
    m.heap_peak_bytes
        .set(i64::try_from(heap.peak).unwrap_or(i64::MAX));
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &m.registry);
    out
}

/// Sets a gauge family to exactly `counts`: label sets that are no longer counted disappear
/// rather than linger at their last value.
pub fn set_all<L>(family: &Family<L, Gauge>, counts: impl IntoIterator<Item = (L, i64)>)
where
    L: Clone + std::hash::Hash + Eq,
{
    family.clear();
    for (labels, n) in counts {
        family.get_or_create(&labels).set(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_sli_with_help_and_type() {
        let m = metrics();
        m.request(
            "get",
            "cluster.open-cluster-management.io",
            "managedclusters",
            200,
            Duration::from_millis(3),
        );
        m.request("watch", "", "configmaps", 200, Duration::from_secs(300));
        m.rotation(true);
        m.csr_decision(false);
        m.reconcile("placement", true, Duration::from_millis(2));
        on_scrape("test", |m| {
            set_all(
                &m.clusters,
                [(
                    AvailableLabels {
                        available: "True".into(),
                    },
                    2,
                )],
            )
        });
        let text = render();
        for line in [
            "# TYPE garrison_managed_clusters gauge",
            "garrison_managed_clusters{available=\"True\"} 2",
            "# TYPE garrison_certificate_rotations counter",
            "garrison_certificate_rotations_total{result=\"succeeded\"} 1",
            "garrison_csr_decisions_total{decision=\"denied\"} 1",
            "garrison_controller_reconciles_total{controller=\"placement\",result=\"success\"} 1",
            "garrison_apiserver_requests_total{verb=\"watch\",group=\"\",resource=\"configmaps\",code=\"200\"} 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        // A watch is long-running: it counts as a request but not in the latency histogram.
        assert!(!text.contains("_count{verb=\"watch\""), "{text}");
        // 3 ms falls in the 4 ms bucket, not the 2 ms one.
        let get = "verb=\"get\",group=\"cluster.open-cluster-management.io\",resource=\"managedclusters\"";
        for (le, n) in [("0.002", 0), ("0.004", 1)] {
            let line = format!(
                "garrison_apiserver_request_duration_seconds_bucket{{le=\"{le}\",{get}}} {n}"
            );
            assert!(text.contains(&line), "missing {line:?} in:\n{text}");
        }
    }

    #[test]
    fn set_all_drops_label_sets_no_longer_counted() {
        let family: Family<StateLabels, Gauge> = Family::default();
        let s = |x: &str| StateLabels { state: x.into() };
        set_all(&family, [(s("Compliant"), 3), (s("Pending"), 1)]);
        set_all(&family, [(s("Compliant"), 4)]);
        let mut reg = Registry::default();
        reg.register("c", "c", family);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &reg).unwrap();
        assert!(text.contains("c{state=\"Compliant\"} 4"), "{text}");
        assert!(!text.contains("Pending"), "{text}");
    }
}
