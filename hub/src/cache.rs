//! Watch caches the controllers read from.

use std::fmt::Debug;

use futures::Stream;
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use serde::de::DeserializeOwned;

/// A cache of every `K` the watch config selects, and the stream that fills it, yielding each
/// object as it is added, changed or deleted (to map into a controller's triggers). The cache
/// fills only while the stream is polled.
///
/// Cached objects carry no `managedFields`: no controller reads them, and for objects written
/// by several managers (a ManagedCluster's status by its agent, its conditions by the hub) they
/// are as large as the rest of the object, in every cache that holds it.
pub fn watched<K>(
    client: &kube::Client,
    config: watcher::Config,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store::<K>();
    (store, reflected(client, config, writer).touched_objects())
}

/// The watch of every `K` the config selects, without `managedFields`, filling `writer`'s cache.
fn reflected<K>(
    client: &kube::Client,
    config: watcher::Config,
    writer: reflector::store::Writer<K>,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    watcher(Api::<K>::all(client.clone()), config)
        .modify(|o: &mut K| o.meta_mut().managed_fields = None)
        .default_backoff()
        .reflect(writer)
}

/// A controller of every `K` the watch config selects, reconciling from a cache filled as
/// [`watched`] fills its own (without `managedFields`).
pub fn controller<K>(client: &kube::Client, config: watcher::Config) -> Controller<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store::<K>();
    // As `Controller::new` does: a controller is woken by objects added or changed; one gone
    // is gone from its cache too.
    let events = reflected(client, config, writer).applied_objects();
    Controller::for_stream(events, store)
}
