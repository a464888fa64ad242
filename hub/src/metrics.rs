//! Controller metrics: each reconcile's duration and result, and the queue depth, for every
//! hub controller built on `kube::runtime::Controller`.
//!
//! kube's controller keeps its queue to itself, so the depth is read from what it works on:
//! the objects of the controller's own kind, in its cache, whose current resourceVersion has
//! not been reconciled yet. Triggers from owned or watched kinds are not counted.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::future::BoxFuture;
use garrison_telemetry::{ControllerLabels, metrics};
use kube::Resource;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};

/// The reconciled resourceVersions of one controller's objects.
type Seen<K> = Arc<Mutex<HashMap<ObjectRef<K>, String>>>;

/// Times one controller's reconciles and reports its queue depth on each scrape.
pub struct Probe<K>
where
    K: Resource + 'static,
    K::DynamicType: Eq + Hash,
{
    name: &'static str,
    seen: Seen<K>,
}

impl<K> Probe<K>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Default + Send + Sync,
{
    /// A probe for `controller`, named `name` in the metrics.
    pub fn new(name: &'static str, controller: &Controller<K>) -> Probe<K> {
        let seen: Seen<K> = Arc::default();
        let reader = controller.store();
        let tracked = seen.clone();
        garrison_telemetry::on_scrape(&format!("controller {name}"), move |m| {
            let depth = queue_depth(&reader, &tracked);
            m.queue_depth
                .get_or_create(&ControllerLabels {
                    controller: name.into(),
                })
                .set(depth as i64);
        });
        Probe { name, seen }
    }

    /// `reconcile`, timed and counted, remembering which version of each object it saw.
    pub fn timed<C, E, F, Fut>(
        &self,
        reconcile: F,
    ) -> impl FnMut(Arc<K>, Arc<C>) -> BoxFuture<'static, Result<Action, E>>
    where
        E: 'static,
        F: Fn(Arc<K>, Arc<C>) -> Fut,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
    {
        let (name, seen) = (self.name, self.seen.clone());
        move |obj: Arc<K>, ctx: Arc<C>| {
            let key = ObjectRef::from_obj(&*obj);
            let rv = obj.meta().resource_version.clone().unwrap_or_default();
            let seen = seen.clone();
            let span = tracing::info_span!(
                "reconcile",
                otel.name = format!("reconcile {name}"),
                controller = name,
                object = %key,
            );
            let run = tracing::Instrument::instrument(reconcile(obj, ctx), span);
            Box::pin(async move {
                let started = Instant::now();
                let result = run.await;
                metrics().reconcile(name, result.is_ok(), started.elapsed());
                // A failed reconcile is retried: that version still waits.
                if result.is_ok() {
                    seen.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(key, rv);
                }
                result
            })
        }
    }
}

/// Objects in `reader` whose current version was not reconciled; forgets objects that left.
fn queue_depth<K>(reader: &Store<K>, seen: &Seen<K>) -> usize
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone + Default,
{
    let objects = reader.state();
    let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    let mut present: HashMap<ObjectRef<K>, String> = HashMap::with_capacity(objects.len());
    let mut depth = 0;
    for obj in objects {
        let key = ObjectRef::from_obj(&*obj);
        let rv = obj.meta().resource_version.clone().unwrap_or_default();
        if seen.get(&key) != Some(&rv) {
            depth += 1;
        }
        if let Some(v) = seen.remove(&key) {
            present.insert(key, v);
        }
    }
    *seen = present;
    depth
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher::Event;

    fn cm(name: &str, rv: &str) -> ConfigMap {
        let mut c = ConfigMap::default();
        c.metadata.name = Some(name.into());
        c.metadata.namespace = Some("ns".into());
        c.metadata.resource_version = Some(rv.into());
        c
    }

    #[test]
    fn depth_counts_objects_whose_version_was_not_reconciled() {
        let mut writer: Writer<ConfigMap> = Writer::default();
        let reader = writer.as_reader();
        for c in [cm("a", "1"), cm("b", "2"), cm("c", "3")] {
            writer.apply_watcher_event(&Event::Apply(c));
        }
        let seen: Seen<ConfigMap> = Arc::default();
        assert_eq!(queue_depth(&reader, &seen), 3);
        {
            let mut s = seen.lock().unwrap();
            s.insert(ObjectRef::from_obj(&cm("a", "1")), "1".into());
            s.insert(ObjectRef::from_obj(&cm("b", "2")), "2".into());
            // Reconciled once, and gone since.
            s.insert(ObjectRef::from_obj(&cm("gone", "9")), "9".into());
        }
        assert_eq!(queue_depth(&reader, &seen), 1);
        // b changes: it waits again.
        writer.apply_watcher_event(&Event::Apply(cm("b", "4")));
        assert_eq!(queue_depth(&reader, &seen), 2);
        assert_eq!(
            seen.lock().unwrap().len(),
            2,
            "the gone object is forgotten"
        );
    }
}
