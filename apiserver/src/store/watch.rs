//! The in-memory watch cache: a bounded ring of recent events, and the registry of open watches.
//!
//! Watches are indexed by resource and then by namespace, so publishing an event in cluster A's
//! namespace touches only the watchers of that namespace and the all-namespace watchers of that
//! resource; cluster B's agent costs nothing. The ring is bounded by event count, so memory grows
//! with the number of objects (in the store), not with their history. A watch that asks to resume
//! from before the oldest retained event of its resource gets `410 Gone`, as with a compacted
//! etcd: each resource keeps its own horizon, so a busy resource (leases renewed by every
//! cluster) pushing events out of the ring does not expire the watches of a quiet one.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::mpsc;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// The object was created.
    Added,
    /// The object changed.
    Modified,
    /// The object is gone.
    Deleted,
}

impl EventType {
    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change to one object, at one resourceVersion.
#[derive(Debug)]
pub struct WatchEvent {
    /// The resourceVersion the change was written at.
    pub rv: u64,
    /// The storage key of the resource (`group/plural`).
    pub key: String,
    /// The object's namespace, empty for cluster-scoped objects.
    pub namespace: String,
    /// What happened.
    pub kind: EventType,
    /// The object after the change (for deletes, its last state).
    pub object: Arc<Value>,
    /// The object before the change, for modifications; used to turn selector-filtered watches
    /// into ADDED/DELETED when an object enters or leaves the selection.
    pub old: Option<Arc<Value>>,
}

/// Default number of events the ring keeps.
pub const DEFAULT_CAPACITY: usize = 10_000;
/// Per-watch channel depth; a watcher that falls this far behind is closed and must resume.
const WATCHER_DEPTH: usize = 8192;

struct Watcher {
    id: u64,
    tx: mpsc::Sender<Arc<WatchEvent>>,
}

struct Inner {
    ring: VecDeque<Arc<WatchEvent>>,
    capacity: usize,
    /// Every event with rv greater than this is in the ring.
    horizon: u64,
    /// Per resource key: every event of that resource with rv greater than this is in the
    /// ring. A resource with no entry has lost no event since `base`.
    horizons: HashMap<String, u64>,
    /// The history's start: the resourceVersion current when the cache was made.
    base: u64,
    /// The resourceVersion of the last event handed to the watchers.
    published: u64,
    /// resource key -> namespace ("" = all namespaces) -> watchers.
    watchers: HashMap<String, HashMap<String, Vec<Watcher>>>,
    next_id: u64,
}

/// The watch cache shared by the store and the watch handlers.
pub struct WatchCache {
    inner: Mutex<Inner>,
}

/// Returned when a watch asks for history that is no longer kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooOld {
    /// The oldest resourceVersion a watch can still resume from.
    pub oldest: u64,
}

/// An open watch: its backlog, its live channel, and a guard that unregisters it when dropped.
pub struct Subscription {
    /// Events after the requested resourceVersion that were already in the ring.
    pub backlog: Vec<Arc<WatchEvent>>,
    /// Live events.
    pub rx: mpsc::Receiver<Arc<WatchEvent>>,
    /// Unregisters the watch on drop.
    pub guard: SubscriptionGuard,
}

/// Removes a watcher from the registry when dropped.
pub struct SubscriptionGuard {
    cache: Arc<WatchCache>,
    key: String,
    namespace: String,
    id: u64,
}

impl Drop for SubscriptionGuard {
    fn drop(&mut self) {
        let mut inner = self.cache.inner.lock().expect("watch cache lock");
        if let Some(by_ns) = inner.watchers.get_mut(&self.key) {
            if let Some(list) = by_ns.get_mut(&self.namespace) {
                list.retain(|w| w.id != self.id);
                if list.is_empty() {
                    by_ns.remove(&self.namespace);
                }
            }
            if by_ns.is_empty() {
                inner.watchers.remove(&self.key);
            }
        }
    }
}

impl WatchCache {
    /// A cache keeping `capacity` events, whose history starts at `current_rv`.
    pub fn new(capacity: usize, current_rv: u64) -> Arc<Self> {
        Arc::new(WatchCache {
            inner: Mutex::new(Inner {
                ring: VecDeque::with_capacity(capacity.min(65_536)),
                capacity: capacity.max(1),
                horizon: current_rv,
                horizons: HashMap::new(),
                base: current_rv,
                published: current_rv,
                watchers: HashMap::new(),
                next_id: 0,
            }),
        })
    }

    /// How many events the ring holds, its capacity, and the open watches by resource key.
    pub fn stats(&self) -> (usize, usize, Vec<(String, usize)>) {
        let inner = self.inner.lock().expect("watch cache lock");
        let watches = inner
            .watchers
            .iter()
            .map(|(key, by_ns)| (key.clone(), by_ns.values().map(Vec::len).sum()))
            .collect();
        (inner.ring.len(), inner.capacity, watches)
    }

    /// Records an event and hands it to the watchers of its namespace and of all namespaces.
    /// Called by the store with its write lock held, so events arrive in resourceVersion order.
    pub fn publish(&self, event: WatchEvent) {
        let event = Arc::new(event);
        let mut inner = self.inner.lock().expect("watch cache lock");
        if inner.ring.len() == inner.capacity
            && let Some(old) = inner.ring.pop_front()
        {
            inner.horizon = old.rv;
            match inner.horizons.get_mut(&old.key) {
                Some(h) => *h = old.rv,
                None => {
                    inner.horizons.insert(old.key.clone(), old.rv);
                }
            }
        }
        inner.ring.push_back(event.clone());
        inner.published = inner.published.max(event.rv);
        let Some(by_ns) = inner.watchers.get_mut(&event.key) else {
            return;
        };
        for ns in [event.namespace.as_str(), ""] {
            if let Some(list) = by_ns.get_mut(ns) {
                // A full or closed channel ends that watch; its client resumes from its last
                // resourceVersion, as with kube-apiserver's slow-watcher handling.
                list.retain(|w| w.tx.try_send(event.clone()).is_ok());
            }
            if event.namespace.is_empty() {
                break;
            }
        }
    }

    /// Opens a watch on `key`, in `namespace` (or all namespaces when `None`), replaying every
    /// retained event after `from_rv`.
    pub fn subscribe(
        self: &Arc<Self>,
        key: &str,
        namespace: Option<&str>,
        from_rv: u64,
    ) -> Result<Subscription, TooOld> {
        let mut inner = self.inner.lock().expect("watch cache lock");
        let horizon = inner.horizons.get(key).copied().unwrap_or(inner.base);
        if from_rv < horizon {
            return Err(TooOld { oldest: horizon });
        }
        let ns = namespace.unwrap_or("").to_string();
        // The ring is ordered by rv; find the first event after from_rv.
        let start = inner.ring.partition_point(|e| e.rv <= from_rv);
        let backlog: Vec<Arc<WatchEvent>> = inner
            .ring
            .range(start..)
            .filter(|e| e.key == key && (ns.is_empty() || e.namespace == ns))
            .cloned()
            .collect();
        let (tx, rx) = mpsc::channel(WATCHER_DEPTH);
        inner.next_id += 1;
        let id = inner.next_id;
        inner
            .watchers
            .entry(key.to_string())
            .or_default()
            .entry(ns.clone())
            .or_default()
            .push(Watcher { id, tx });
        Ok(Subscription {
            backlog,
            rx,
            guard: SubscriptionGuard {
                cache: self.clone(),
                key: key.to_string(),
                namespace: ns,
                id,
            },
        })
    }

    /// The number of open watches, for metrics and tests.
    pub fn watcher_count(&self) -> usize {
        let inner = self.inner.lock().expect("watch cache lock");
        inner
            .watchers
            .values()
            .flat_map(|m| m.values())
            .map(Vec::len)
            .sum()
    }

    /// The resourceVersion of the last event handed to the watchers. Every event up to it is
    /// in the channel of each watch it concerns, or that watch was closed for falling behind:
    /// what a bookmark may promise once the channel is drained. (The store's current version
    /// may be ahead of it: a committed group's events are published just after the commit.)
    pub fn published(&self) -> u64 {
        self.inner.lock().expect("watch cache lock").published
    }

    /// The oldest resourceVersion a watch of any resource can resume from.
    pub fn horizon(&self) -> u64 {
        self.inner.lock().expect("watch cache lock").horizon
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(rv: u64, ns: &str) -> WatchEvent {
        WatchEvent {
            rv,
            key: "/configmaps".into(),
            namespace: ns.into(),
            kind: EventType::Added,
            object: Arc::new(json!({"rv": rv})),
            old: None,
        }
    }

    #[test]
    fn a_watch_in_one_namespace_sees_nothing_from_another() {
        let cache = WatchCache::new(10, 0);
        let mut a = cache.subscribe("/configmaps", Some("a"), 0).unwrap();
        let mut all = cache.subscribe("/configmaps", None, 0).unwrap();
        cache.publish(ev(1, "b"));
        cache.publish(ev(2, "a"));
        assert_eq!(a.rx.try_recv().unwrap().rv, 2);
        assert!(a.rx.try_recv().is_err());
        assert_eq!(all.rx.try_recv().unwrap().rv, 1);
        assert_eq!(all.rx.try_recv().unwrap().rv, 2);
    }

    #[test]
    fn resuming_replays_only_later_events() {
        let cache = WatchCache::new(10, 0);
        for rv in 1..=5 {
            cache.publish(ev(rv, "a"));
        }
        let sub = cache.subscribe("/configmaps", Some("a"), 3).unwrap();
        let rvs: Vec<u64> = sub.backlog.iter().map(|e| e.rv).collect();
        assert_eq!(rvs, vec![4, 5]);
    }

    #[test]
    fn resuming_from_before_the_horizon_is_gone() {
        let cache = WatchCache::new(3, 0);
        for rv in 1..=5 {
            cache.publish(ev(rv, "a"));
        }
        assert_eq!(
            cache.subscribe("/configmaps", None, 1).err(),
            Some(TooOld { oldest: 2 })
        );
        assert!(cache.subscribe("/configmaps", None, 2).is_ok());
    }

    #[test]
    fn a_busy_resource_does_not_expire_the_watches_of_a_quiet_one() {
        let cache = WatchCache::new(3, 0);
        cache.publish(ev(1, "a"));
        for rv in 2..=10 {
            cache.publish(WatchEvent {
                key: "coordination.k8s.io/leases".into(),
                ..ev(rv, "a")
            });
        }
        // The ConfigMap event (rv 1) left the ring: from before it, the history is gone.
        assert_eq!(
            cache.subscribe("/configmaps", None, 0).err(),
            Some(TooOld { oldest: 1 })
        );
        // From after it, nothing of the ConfigMaps was lost, however far the leases went on.
        let sub = cache.subscribe("/configmaps", Some("a"), 1).unwrap();
        assert!(sub.backlog.is_empty());
        assert_eq!(
            cache.subscribe("coordination.k8s.io/leases", None, 6).err(),
            Some(TooOld { oldest: 7 })
        );
        let sub = cache
            .subscribe("coordination.k8s.io/leases", None, 7)
            .unwrap();
        assert_eq!(
            sub.backlog.iter().map(|e| e.rv).collect::<Vec<_>>(),
            vec![8, 9, 10]
        );
        // A resource that never had an event resumes from anywhere since the cache began.
        assert!(cache.subscribe("/secrets", None, 0).is_ok());
    }

    #[test]
    fn dropping_a_subscription_unregisters_it() {
        let cache = WatchCache::new(3, 0);
        let sub = cache.subscribe("/configmaps", Some("a"), 0).unwrap();
        assert_eq!(cache.watcher_count(), 1);
        drop(sub);
        assert_eq!(cache.watcher_count(), 0);
    }
}
