//! Watch caches the controllers read from, one per resource and selector for the whole hub.
//!
//! Several controllers read the same resources: the CSR approver, signer and cleaner all read
//! every CertificateSigningRequest; the cluster, cluster-set and placement controllers every
//! ManagedCluster. Each used to keep its own watch and its own copy of every object, so at
//! fleet scale the hub held three or four copies of each cluster's objects. [`Informers`] keeps
//! one watch and one cache per resource and selector, as client-go's shared informers do, and
//! hands each controller its own stream of changes from it.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use futures::{FutureExt, Stream, StreamExt};
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

/// What a subscriber hears: an object added or changed, or one gone (in its last state).
enum Change<K> {
    Applied(Arc<K>),
    Deleted(Arc<K>),
}

impl<K> Clone for Change<K> {
    fn clone(&self) -> Self {
        match self {
            Change::Applied(o) => Change::Applied(o.clone()),
            Change::Deleted(o) => Change::Deleted(o.clone()),
        }
    }
}

/// One resource and selector: its cache, and the controllers listening to it.
struct Informer<K: Resource<DynamicType = ()> + 'static> {
    store: Store<K>,
    subscribers: Subscribers<K>,
}

/// Which watch a cache holds: the resource type and the selectors its controllers asked for.
type Key = (TypeId, Option<String>, Option<String>);

struct Inner {
    client: kube::Client,
    informers: Mutex<HashMap<Key, Box<dyn Any + Send + Sync>>>,
    watches: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let watches = self.watches.get_mut().unwrap_or_else(|e| e.into_inner());
        for watch in watches.drain(..) {
            watch.abort();
        }
    }
}

/// The hub's shared watch caches: one watch, and one copy of each object, per resource and
/// selector, whichever controllers read them. A watch starts when its first controller
/// subscribes and lasts as long as the last clone of this handle.
#[derive(Clone)]
pub struct Informers {
    inner: Arc<Inner>,
}

impl Informers {
    /// Caches filled through `client`.
    pub fn new(client: kube::Client) -> Informers {
        Informers {
            inner: Arc::new(Inner {
                client,
                informers: Mutex::default(),
                watches: Mutex::default(),
            }),
        }
    }

    /// The client the caches watch through, for the controllers' own requests.
    pub fn client(&self) -> &kube::Client {
        &self.inner.client
    }

    /// The cache of every `K` the config selects, and a stream of its changes for one
    /// subscriber: first every object already cached, then each one added, changed or deleted.
    fn subscribe<K>(
        &self,
        config: watcher::Config,
    ) -> (Store<K>, impl Stream<Item = Change<K>> + Send + 'static)
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let key: Key = (
            TypeId::of::<K>(),
            config.label_selector.clone(),
            config.field_selector.clone(),
        );
        let (store, subscribers) = {
            let mut informers = lock(&self.inner.informers);
            let entry = informers.entry(key).or_insert_with(|| {
                let (store, writer) = reflector::store::<K>();
                let subscribers = Arc::default();
                let watch = tokio::spawn(keep_watching(
                    self.inner.client.clone(),
                    config,
                    writer,
                    store.clone(),
                    Arc::clone(&subscribers),
                ));
                lock(&self.inner.watches).push(watch.abort_handle());
                Box::new(Informer { store, subscribers })
            });
            let informer = entry
                .downcast_ref::<Informer<K>>()
                .expect("an informer's key names its type");
            (informer.store.clone(), Arc::clone(&informer.subscribers))
        };
        let changes = listen(&store, &subscribers);
        (store, changes)
    }
}

type Subscribers<K> = Arc<Mutex<Vec<mpsc::UnboundedSender<Change<K>>>>>;

/// A new subscriber's stream: every object cached now, then every change [`pump`] sends.
fn listen<K>(
    store: &Store<K>,
    subscribers: &Subscribers<K>,
) -> impl Stream<Item = Change<K>> + use<K>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    // Under the lock the watch takes to fan out a change, so no change falls between the
    // objects cached now and the ones sent from here on: the watch updates the cache before
    // it takes the lock.
    let cached = {
        let mut subscribers = lock(subscribers);
        subscribers.push(tx);
        store.state()
    };
    let replay = futures::stream::iter(cached.into_iter().map(Change::Applied));
    let live = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|change| (change, rx))
    });
    replay.chain(live)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs one shared watch for as long as the hub: should the watch stop or panic, it starts
/// again with a fresh list into the same cache and for the same subscribers, where a private
/// watch would have been restarted with its controller.
async fn keep_watching<K>(
    client: kube::Client,
    config: watcher::Config,
    mut writer: reflector::store::Writer<K>,
    store: Store<K>,
    subscribers: Subscribers<K>,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    loop {
        let events = watcher(Api::<K>::all(client.clone()), config.clone())
            .modify(|o: &mut K| o.meta_mut().managed_fields = None)
            .default_backoff();
        let pumped = AssertUnwindSafe(pump(events, &mut writer, &store, &subscribers))
            .catch_unwind()
            .await;
        let why = match pumped {
            Ok(()) => "ended".to_string(),
            Err(payload) => crate::supervisor::panicked(payload.as_ref()),
        };
        tracing::error!(resource = %K::plural(&()), reason = %why, "a shared watch stopped; starting it again");
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// Drives one watch: keeps its cache and sends each change to every subscriber still
/// listening. Subscribers' channels are unbounded, so one slow controller holds back no other
/// (what waits in them is shared with the cache, or an object just deleted).
async fn pump<K>(
    events: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
    writer: &mut reflector::store::Writer<K>,
    store: &Store<K>,
    subscribers: &Subscribers<K>,
) where
    K: Resource<DynamicType = ()> + Clone + Debug + Send + Sync + 'static,
{
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        // The cache first, then the subscribers: `listen` relies on this order.
        if let Ok(e) = &event {
            writer.apply_watcher_event(e);
        }
        let changes: Vec<Change<K>> = match event {
            Ok(watcher::Event::Apply(o)) => {
                // The cache's own copy, not a second one.
                let cached = store.get(&ObjectRef::from_obj(&o));
                vec![Change::Applied(cached.unwrap_or_else(|| Arc::new(o)))]
            }
            Ok(watcher::Event::Delete(o)) => vec![Change::Deleted(Arc::new(o))],
            // A (re)list lands in the cache all at once at its end; subscribers hear every
            // object then, as kube's shared reflectors do.
            Ok(watcher::Event::InitDone) => {
                store.state().into_iter().map(Change::Applied).collect()
            }
            Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => Vec::new(),
            Err(e) => {
                tracing::warn!(resource = %K::plural(&()), error = %e, "watch failed; retrying");
                Vec::new()
            }
        };
        if changes.is_empty() {
            continue;
        }
        let mut subscribers = lock(subscribers);
        subscribers.retain(|s| changes.iter().all(|c| s.send(c.clone()).is_ok()));
    }
}

/// The cache of every `K` the config selects, and the stream of every object added, changed
/// or deleted in it after the ones already there (to map into a controller's triggers).
///
/// Cached objects carry no `managedFields`: no controller reads them, and for objects written
/// by several managers (a ManagedCluster's status by its agent, its conditions by the hub) they
/// are as large as the rest of the object.
pub fn watched<K>(
    informers: &Informers,
    config: watcher::Config,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, changes) = informers.subscribe::<K>(config);
    let touched = changes.map(|c| match c {
        Change::Applied(o) | Change::Deleted(o) => Ok(K::clone(&o)),
    });
    (store, touched)
}

/// A controller of every `K` the config selects, reconciling from the shared cache. As
/// `Controller::new` does, it is woken by objects added or changed; one gone is gone from its
/// cache too.
pub fn controller<K>(informers: &Informers, config: watcher::Config) -> Controller<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, changes) = informers.subscribe::<K>(config);
    let applied = changes.filter_map(|c| async move {
        match c {
            Change::Applied(o) => Some(o),
            Change::Deleted(_) => None,
        }
    });
    Controller::for_shared_stream(applied, store)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    fn cm(name: &str, value: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                ..ObjectMeta::default()
            },
            data: Some([("v".to_string(), value.to_string())].into()),
            ..ConfigMap::default()
        }
    }

    /// What a subscriber heard, as `+name=value` (added or changed) or `-name` (deleted).
    async fn next(changes: &mut (impl Stream<Item = Change<ConfigMap>> + Unpin)) -> String {
        let change = tokio::time::timeout(std::time::Duration::from_secs(5), changes.next())
            .await
            .expect("a change arrives")
            .expect("the stream goes on");
        match change {
            Change::Applied(o) => format!(
                "+{}={}",
                o.metadata.name.as_deref().unwrap_or_default(),
                o.data
                    .as_ref()
                    .and_then(|d| d.get("v"))
                    .map(String::as_str)
                    .unwrap_or_default()
            ),
            Change::Deleted(o) => format!("-{}", o.metadata.name.as_deref().unwrap_or_default()),
        }
    }

    #[tokio::test]
    async fn every_subscriber_hears_every_change_once_from_one_cache() {
        let (store, writer) = reflector::store::<ConfigMap>();
        let subscribers: Subscribers<ConfigMap> = Arc::default();
        let (events, rx) = mpsc::unbounded_channel();
        let watch =
            futures::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
            );
        let (cache, subs) = (store.clone(), subscribers.clone());
        tokio::spawn(async move {
            let mut writer = writer;
            pump(watch, &mut writer, &cache, &subs).await
        });

        // Subscribed before the list: hears the listed objects once the list is complete.
        let mut early = Box::pin(listen(&store, &subscribers));
        for e in [
            watcher::Event::Init,
            watcher::Event::InitApply(cm("a", "1")),
            watcher::Event::InitApply(cm("b", "1")),
            watcher::Event::InitDone,
        ] {
            events.send(e).expect("pump runs");
        }
        let mut listed = vec![next(&mut early).await, next(&mut early).await];
        listed.sort();
        assert_eq!(listed, ["+a=1", "+b=1"]);

        // Subscribed later: hears what is cached, then what changes.
        let mut late = Box::pin(listen(&store, &subscribers));
        let mut replayed = vec![next(&mut late).await, next(&mut late).await];
        replayed.sort();
        assert_eq!(replayed, ["+a=1", "+b=1"]);

        events
            .send(watcher::Event::Apply(cm("a", "2")))
            .expect("pump runs");
        events
            .send(watcher::Event::Delete(cm("b", "1")))
            .expect("pump runs");
        for changes in [&mut early, &mut late] {
            assert_eq!(next(changes).await, "+a=2");
            assert_eq!(next(changes).await, "-b");
        }
        // One copy of each object: the one the cache holds is the one subscribers got.
        let cached = store
            .get(&ObjectRef::new("a").within("ns"))
            .expect("a is cached");
        assert_eq!(
            cached
                .data
                .as_ref()
                .and_then(|d| d.get("v"))
                .map(String::as_str),
            Some("2")
        );
        assert!(store.get(&ObjectRef::new("b").within("ns")).is_none());

        // A subscriber that stops listening is dropped at the next change; the others go on.
        drop(early);
        events
            .send(watcher::Event::Apply(cm("c", "1")))
            .expect("pump runs");
        assert_eq!(next(&mut late).await, "+c=1");
        assert_eq!(lock(&subscribers).len(), 1);
    }

    #[tokio::test]
    async fn applied_changes_share_the_cached_object() {
        let (store, writer) = reflector::store::<ConfigMap>();
        let subscribers: Subscribers<ConfigMap> = Arc::default();
        let mut changes = Box::pin(listen(&store, &subscribers));
        let watch = futures::stream::iter([
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitDone),
            Ok(watcher::Event::Apply(cm("a", "1"))),
        ]);
        let cache = store.clone();
        tokio::spawn(async move {
            let mut writer = writer;
            pump(watch, &mut writer, &cache, &subscribers).await
        });
        let Some(Change::Applied(heard)) = changes.next().await else {
            panic!("an applied change arrives");
        };
        let cached = store
            .get(&ObjectRef::new("a").within("ns"))
            .expect("a is cached");
        assert!(
            Arc::ptr_eq(&heard, &cached),
            "the subscriber got a second copy"
        );
    }
}
