//! The in-memory watch cache: a bounded ring of recent events, and the registry of open watches.
//!
//! Watches are indexed by resource and then by namespace, so publishing an event in cluster A's
//! namespace touches only the watchers of that namespace and the all-namespace watchers of that
//! resource; cluster B's agent costs nothing. The ring is bounded by event count, so memory grows
//! with the number of objects (in the store), not with their history. A watch that asks to resume
//! from before the oldest retained event of its resource gets `410 Gone`, as with a compacted
//! etcd: each resource keeps its own horizon, so a busy resource (leases renewed by every
//! cluster) pushing events out of the ring does not expire the watches of a quiet one.
//!
//! The ring keeps each event as the JSON it was stored as, and of a modified object's previous
//! state only what selectors read: a parsed object costs several times its JSON, the history
//! is read only by watches that resume, and it is bounded by bytes as well as by events, so a
//! run of large objects cannot make it hold gigabytes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::selectors;

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
    /// `object` serialized: what the store wrote, and what a watch sends.
    pub data: Bytes,
    /// The object before the change, for modifications; used to turn selector-filtered watches
    /// into ADDED/DELETED when an object enters or leaves the selection. In events replayed
    /// from the history it holds only what selectors read.
    pub old: Option<Arc<Value>>,
}

/// Serialized JSON as the history keeps it: `serde_json::to_vec` leaves up to twice the length
/// allocated, which a history of thousands of events would hold for as long as it keeps them.
pub fn exact_bytes(json: Vec<u8>) -> Bytes {
    Bytes::from(json.into_boxed_slice())
}

impl WatchEvent {
    /// An event, serializing `object`.
    pub fn new(
        rv: u64,
        key: impl Into<String>,
        namespace: impl Into<String>,
        kind: EventType,
        object: Value,
        old: Option<Value>,
    ) -> Self {
        WatchEvent {
            rv,
            key: key.into(),
            namespace: namespace.into(),
            kind,
            data: exact_bytes(serde_json::to_vec(&object).unwrap_or_default()),
            object: Arc::new(object),
            old: old.map(Arc::new),
        }
    }
}

/// An event as the history keeps it.
#[derive(Clone)]
struct Retained {
    rv: u64,
    key: Box<str>,
    namespace: Box<str>,
    kind: EventType,
    data: Bytes,
    before: Before,
}

/// What the history keeps of an object's previous state.
#[derive(Clone)]
enum Before {
    /// No previous state (a creation).
    Nothing,
    /// Every selector selects the previous state as it selects the new one.
    Alike,
    /// What selectors read of the previous state, serialized.
    Selectable(Bytes),
}

impl Retained {
    fn of(ev: &WatchEvent) -> Self {
        let before = match &ev.old {
            None => Before::Nothing,
            Some(old) if selectors::selects_alike(old, &ev.object) => Before::Alike,
            Some(old) => Before::Selectable(exact_bytes(
                serde_json::to_vec(&selectors::selectable(old)).unwrap_or_default(),
            )),
        };
        Retained {
            rv: ev.rv,
            key: ev.key.as_str().into(),
            namespace: ev.namespace.as_str().into(),
            kind: ev.kind,
            data: ev.data.clone(),
            before,
        }
    }

    /// The bytes the entry holds, counting its own.
    fn size(&self) -> usize {
        let before = match &self.before {
            Before::Selectable(b) => b.len(),
            Before::Nothing | Before::Alike => 0,
        };
        std::mem::size_of::<Self>()
            + self.key.len()
            + self.namespace.len()
            + self.data.len()
            + before
    }

    /// The event again, parsed. The history holds only what the store serialized, so this
    /// fails only if memory was corrupted.
    fn event(&self) -> Option<WatchEvent> {
        let object = Arc::new(serde_json::from_slice::<Value>(&self.data).ok()?);
        let old = match &self.before {
            Before::Nothing => None,
            Before::Alike => Some(object.clone()),
            Before::Selectable(b) => Some(Arc::new(serde_json::from_slice(b).ok()?)),
        };
        Some(WatchEvent {
            rv: self.rv,
            key: self.key.to_string(),
            namespace: self.namespace.to_string(),
            kind: self.kind,
            object,
            data: self.data.clone(),
            old,
        })
    }
}

/// Default number of events the ring keeps.
pub const DEFAULT_CAPACITY: usize = 10_000;
/// Default number of bytes the ring keeps (the events' JSON and bookkeeping).
pub const DEFAULT_CAPACITY_BYTES: usize = 16 << 20;
/// Per-watch channel depth; a watcher that falls this far behind is closed and must resume.
const WATCHER_DEPTH: usize = 8192;

struct Watcher {
    id: u64,
    tx: mpsc::Sender<Arc<WatchEvent>>,
}

struct Inner {
    ring: VecDeque<Retained>,
    capacity: usize,
    /// The bytes the ring may hold, and holds.
    capacity_bytes: usize,
    bytes: usize,
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

impl Inner {
    /// Drops the oldest events until `events` more holding `bytes` fit, moving the horizons
    /// past them. The newest event stays when none is added.
    fn make_room(&mut self, events: usize, bytes: usize) {
        let keep = usize::from(events == 0);
        while self.ring.len() > keep
            && (self.ring.len() + events > self.capacity
                || self.bytes + bytes > self.capacity_bytes)
        {
            let Some(old) = self.ring.pop_front() else {
                break;
            };
            self.bytes -= old.size();
            self.horizon = old.rv;
            match self.horizons.get_mut(&*old.key) {
                Some(h) => *h = old.rv,
                None => {
                    self.horizons.insert(old.key.to_string(), old.rv);
                }
            }
        }
    }
}

/// What the watch cache holds, for metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Events in the history.
    pub events: usize,
    /// Bytes the history holds.
    pub bytes: usize,
    /// The most events it keeps.
    pub capacity: usize,
    /// The most bytes it keeps.
    pub capacity_bytes: usize,
    /// Open watches by resource key.
    pub watches: Vec<(String, usize)>,
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
    /// A cache keeping `capacity` events (and at most [`DEFAULT_CAPACITY_BYTES`]), whose history
    /// starts at `current_rv`.
    pub fn new(capacity: usize, current_rv: u64) -> Arc<Self> {
        Arc::new(WatchCache {
            inner: Mutex::new(Inner {
                ring: VecDeque::with_capacity(capacity.min(65_536)),
                capacity: capacity.max(1),
                capacity_bytes: DEFAULT_CAPACITY_BYTES,
                bytes: 0,
                horizon: current_rv,
                horizons: HashMap::new(),
                base: current_rv,
                published: current_rv,
                watchers: HashMap::new(),
                next_id: 0,
            }),
        })
    }

    /// Bounds the history by bytes as well: the oldest events leave once the ring holds more.
    /// The newest event stays whatever its size, so a watch can always resume from just
    /// before it.
    pub fn limit_bytes(&self, bytes: usize) {
        let mut inner = self.inner.lock().expect("watch cache lock");
        inner.capacity_bytes = bytes;
        inner.make_room(0, 0);
    }

    /// The ring's size in events and in bytes, its capacity in both, and the open watches by
    /// resource key.
    pub fn stats(&self) -> Stats {
        let inner = self.inner.lock().expect("watch cache lock");
        let watches = inner
            .watchers
            .iter()
            .map(|(key, by_ns)| (key.clone(), by_ns.values().map(Vec::len).sum()))
            .collect();
        Stats {
            events: inner.ring.len(),
            bytes: inner.bytes,
            capacity: inner.capacity,
            capacity_bytes: inner.capacity_bytes,
            watches,
        }
    }

    /// Records an event and hands it to the watchers of its namespace and of all namespaces.
    /// Called by the store with its write lock held, so events arrive in resourceVersion order.
    pub fn publish(&self, event: WatchEvent) {
        let retained = Retained::of(&event);
        let event = Arc::new(event);
        let mut inner = self.inner.lock().expect("watch cache lock");
        inner.make_room(1, retained.size());
        inner.bytes += retained.size();
        inner.ring.push_back(retained);
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
        // The ring is ordered by rv; find the first event after from_rv. Only the entries
        // (their JSON shared, not copied) are taken under the lock, which every write takes
        // to publish; they are parsed once it is released.
        let start = inner.ring.partition_point(|e| e.rv <= from_rv);
        let retained: Vec<Retained> = inner
            .ring
            .range(start..)
            .filter(|e| &*e.key == key && (ns.is_empty() || *e.namespace == *ns))
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
        drop(inner);
        let guard = SubscriptionGuard {
            cache: self.clone(),
            key: key.to_string(),
            namespace: ns,
            id,
        };
        let mut backlog = Vec::with_capacity(retained.len());
        for r in retained {
            match r.event() {
                Some(event) => backlog.push(Arc::new(event)),
                // An event that cannot be replayed is history lost: the watch (unregistered
                // as the guard drops) ends with 410 Gone, and its client relists.
                None => return Err(TooOld { oldest: r.rv }),
            }
        }
        Ok(Subscription { backlog, rx, guard })
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
        WatchEvent::new(
            rv,
            "/configmaps",
            ns,
            EventType::Added,
            json!({"rv": rv}),
            None,
        )
    }

    #[test]
    fn the_history_replays_objects_and_what_selectors_read_of_their_previous_state() {
        let cache = WatchCache::new(10, 0);
        let v1 = json!({"metadata": {"name": "x", "labels": {"app": "a"}}, "data": {"k": "1"}});
        let mut v2 = v1.clone();
        v2["metadata"]["labels"]["app"] = json!("b");
        let mut v3 = v2.clone();
        v3["data"]["k"] = json!("3");
        let key = "/configmaps";
        cache.publish(WatchEvent::new(
            1,
            key,
            "n",
            EventType::Added,
            v1.clone(),
            None,
        ));
        cache.publish(WatchEvent::new(
            2,
            key,
            "n",
            EventType::Modified,
            v2.clone(),
            Some(v1),
        ));
        cache.publish(WatchEvent::new(
            3,
            key,
            "n",
            EventType::Modified,
            v3.clone(),
            Some(v2),
        ));
        let sub = cache.subscribe(key, Some("n"), 0).unwrap();
        let [added, relabelled, edited] = &sub.backlog[..] else {
            panic!("three events, got {}", sub.backlog.len());
        };
        assert_eq!(added.kind, EventType::Added);
        assert!(added.old.is_none());
        // A relabelling keeps the old labels, which turn a selected watch's MODIFIED into
        // DELETED; nothing else of the old object.
        assert_eq!(
            relabelled.old.as_deref(),
            Some(&json!({"metadata": {"name": "x", "labels": {"app": "a"}}}))
        );
        // A change selectors cannot see keeps nothing of the old object.
        assert_eq!(*edited.object, v3);
        assert!(Arc::ptr_eq(edited.old.as_ref().unwrap(), &edited.object));
        assert_eq!(&edited.data[..], serde_json::to_vec(&v3).unwrap());
    }

    #[test]
    fn the_history_is_bounded_by_bytes_and_keeps_the_newest_event() {
        let cache = WatchCache::new(100, 0);
        let big = |rv: u64| {
            WatchEvent::new(
                rv,
                "/configmaps",
                "a",
                EventType::Added,
                json!({"data": "x".repeat(1000)}),
                None,
            )
        };
        cache.limit_bytes(3_500);
        for rv in 1..=10 {
            cache.publish(big(rv));
        }
        let stats = cache.stats();
        assert_eq!(stats.events, 3);
        assert!(stats.bytes <= 3_500, "{} bytes", stats.bytes);
        assert_eq!(
            cache.subscribe("/configmaps", None, 6).err(),
            Some(TooOld { oldest: 7 })
        );
        let sub = cache.subscribe("/configmaps", None, 7).unwrap();
        assert_eq!(sub.backlog.len(), 3);
        // Narrowed below one event's size: the newest stays, so a watch can resume from
        // just before it.
        cache.limit_bytes(10);
        assert_eq!(cache.stats().events, 1);
        assert_eq!(
            cache
                .subscribe("/configmaps", None, 9)
                .unwrap()
                .backlog
                .len(),
            1
        );
        cache.publish(big(11));
        assert_eq!(cache.stats().events, 1);
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
