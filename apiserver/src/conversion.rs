//! Conversion between the versions a kind is served at and the version it is stored at, as
//! kube-apiserver converts: built-in conversions for built-in kinds (`events.k8s.io/v1` Event
//! is stored as a core Event), and converters registered for custom resources (kube-apiserver's
//! conversion webhooks; the embedded hub registers its own in process).
//!
//! Every read converts the stored object to the version asked for; every write converts the
//! request's object to the stored version before it is kept. Without a converter only
//! `apiVersion` changes, as with a CRD's `strategy: None`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde_json::{Map, Value, json};

use crate::resources::Resource;

/// Converts an object to the `apiVersion` given, or says why it cannot.
pub type Converter = Arc<dyn Fn(&Value, &str) -> Result<Value, String> + Send + Sync>;

/// A conversion that failed: why, and the object as it was given.
#[derive(Debug)]
pub struct ConversionError {
    /// Why.
    pub message: String,
    /// The unconverted object.
    pub object: Value,
}

/// The converters, by stored `(group, kind)`.
pub struct Conversions {
    by_kind: RwLock<HashMap<(String, String), Converter>>,
}

impl Default for Conversions {
    fn default() -> Self {
        let c = Conversions {
            by_kind: RwLock::new(HashMap::new()),
        };
        c.add("", "Event", Arc::new(convert_event));
        c
    }
}

impl Conversions {
    /// Registers the converter of a stored kind.
    pub fn add(&self, group: &str, kind: &str, f: Converter) {
        self.by_kind
            .write()
            .expect("conversions lock")
            .insert((group.to_string(), kind.to_string()), f);
    }

    /// Converts `obj` of resource `res` (any of its versions) to `api_version`.
    pub fn convert(
        &self,
        res: &Resource,
        mut obj: Value,
        api_version: &str,
    ) -> Result<Value, ConversionError> {
        if obj["apiVersion"].as_str() == Some(api_version) {
            return Ok(obj);
        }
        let f = self
            .by_kind
            .read()
            .expect("conversions lock")
            .get(&(res.storage_group.clone(), res.kind.clone()))
            .cloned();
        if let Some(f) = f {
            obj = f(&obj, api_version).map_err(|message| ConversionError {
                message,
                object: obj,
            })?;
        }
        obj["apiVersion"] = json!(api_version);
        Ok(obj)
    }
}

/// Renames top-level fields of `obj` from the first name of each pair to the second.
fn rename(obj: &Value, pairs: &[(&str, &str)]) -> Value {
    let Value::Object(map) = obj else {
        return obj.clone();
    };
    let out: Map<String, Value> = map
        .iter()
        .map(|(k, v)| {
            let k = pairs
                .iter()
                .find(|(from, _)| from == k)
                .map(|(_, to)| to.to_string())
                .unwrap_or_else(|| k.clone());
            (k, v.clone())
        })
        .collect();
    Value::Object(out)
}

/// core/v1 Event <-> events.k8s.io/v1 Event: one object, two field layouts.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
];

fn convert_event(obj: &Value, api_version: &str) -> Result<Value, String> {
    match api_version {
        "events.k8s.io/v1" => Ok(rename(obj, EVENT_FIELDS)),
        "v1" => {
            let back: Vec<(&str, &str)> = EVENT_FIELDS.iter().map(|(a, b)| (*b, *a)).collect();
            Ok(rename(obj, &back))
        }
        other => Err(format!("an Event cannot be converted to {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_convert_both_ways_without_loss() {
        let core = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
            "involvedObject": {"kind": "ManagedCluster", "name": "c1"}, "message": "up",
            "reason": "Available", "reportingComponent": "klusterlet-agent", "count": 2,
            "eventTime": "2026-01-01T00:00:00.000000Z", "type": "Normal"});
        let v1 = convert_event(&core, "events.k8s.io/v1").unwrap();
        assert_eq!(v1["regarding"]["name"], "c1");
        assert_eq!(v1["note"], "up");
        assert_eq!(v1["reportingController"], "klusterlet-agent");
        assert_eq!(v1["deprecatedCount"], 2);
        assert!(v1.get("message").is_none());
        let mut back = convert_event(&v1, "v1").unwrap();
        back["apiVersion"] = json!("v1");
        assert_eq!(back, core);
        assert!(convert_event(&core, "events.k8s.io/v1beta1").is_err());
    }
}
