//! Event retention, as kube-apiserver's `--event-ttl` keeps it: an Event goes an hour (by
//! default) after it was last written, and at most [`MAX_EVENTS`] are kept, the oldest going
//! first, so a chatty agent cannot fill the store. Plus the checks kube-apiserver makes on an
//! `events.k8s.io/v1` create.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::error::{ApiResult, Cause};
use crate::ops::Objects;
use crate::store::Mutation;

const EVENTS: &str = "/events";
/// The most Events kept in all.
pub const MAX_EVENTS: usize = 20_000;

/// When an Event was last written, by the server's clock: its creation or its latest write
/// (managedFields). The times inside an Event are the client's and are not trusted here, so a
/// client cannot keep its Events forever or push out everyone else's.
fn last_written(ev: &Value) -> Option<jiff::Timestamp> {
    let created = ev
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str);
    let writes = ev
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("time").and_then(Value::as_str));
    created
        .into_iter()
        .chain(writes)
        .filter_map(|t| t.parse::<jiff::Timestamp>().ok())
        .max()
}

/// Deletes expired Events and, past [`MAX_EVENTS`], the oldest. Returns how many went.
pub fn sweep(objects: &Objects, ttl: Duration, now: jiff::Timestamp) -> ApiResult<usize> {
    let items = objects.store.list(EVENTS, None, None, 0)?.items;
    let ttl =
        jiff::SignedDuration::try_from(ttl).unwrap_or(jiff::SignedDuration::from_hours(24 * 365));
    let cutoff = now.checked_sub(ttl).unwrap_or(jiff::Timestamp::MIN);
    let mut aged: Vec<(jiff::Timestamp, String, String)> = items
        .iter()
        .map(|ev| {
            let at = last_written(ev).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
            let ns = ev
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let name = ev
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            (at, ns.to_string(), name.to_string())
        })
        .collect();
    aged.sort();
    let over = aged.len().saturating_sub(MAX_EVENTS);
    let mut gone = 0;
    for (i, (at, ns, name)) in aged.iter().enumerate() {
        if i >= over && *at > cutoff {
            break;
        }
        let out = objects.store.mutate(EVENTS, ns, name, |current, _| {
            Ok(match current {
                Some(_) => Mutation::Delete,
                None => Mutation::Keep(Value::Null),
            })
        });
        if out.is_ok() {
            gone += 1;
        }
    }
    Ok(gone)
}

/// Sweeps every `period`.
pub fn start(objects: Arc<Objects>, ttl: Duration, period: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            let o = objects.clone();
            let _ =
                tokio::task::spawn_blocking(move || match sweep(&o, ttl, jiff::Timestamp::now()) {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(deleted = n, "expired events deleted"),
                    Err(e) => tracing::warn!(error = %e.message, "cannot delete expired events"),
                })
                .await;
        }
    });
}

/// The checks kube-apiserver makes on an `events.k8s.io/v1` create.
pub fn validate_v1_create(ev: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let s = |k: &str| ev.get(k).and_then(Value::as_str).unwrap_or_default();
    if ev.get("eventTime").is_none_or(Value::is_null) {
        causes.push(Cause::required("eventTime"));
    }
    for k in [
        "reportingController",
        "reportingInstance",
        "action",
        "reason",
    ] {
        if s(k).is_empty() {
            causes.push(Cause::required(k));
        }
    }
    for k in ["reportingInstance", "action", "reason"] {
        if s(k).len() > 128 {
            causes.push(Cause::invalid(k, "must be no more than 128 characters"));
        }
    }
    if s("note").len() > 1024 {
        causes.push(Cause::invalid(
            "note",
            "must be no more than 1024 characters",
        ));
    }
    if !matches!(s("type"), "Normal" | "Warning") {
        causes.push(Cause::not_supported(
            "type",
            format!(
                "Unsupported value: {:?}: supported values: \"Normal\", \"Warning\"",
                s("type")
            ),
        ));
    }
    for k in [
        "deprecatedSource",
        "deprecatedFirstTimestamp",
        "deprecatedLastTimestamp",
        "deprecatedCount",
    ] {
        let set = match ev.get(k) {
            None | Some(Value::Null) => false,
            Some(Value::Object(m)) => !m.is_empty(),
            Some(Value::Number(n)) => n.as_i64() != Some(0),
            Some(_) => true,
        };
        if set {
            causes.push(Cause::invalid(k, "needs to be unset"));
        }
    }
    if let Some(series) = ev.get("series").filter(|s| !s.is_null()) {
        if series["count"].as_i64().unwrap_or(0) < 2 {
            causes.push(Cause::invalid("series.count", "should be at least 2"));
        }
        if series.get("lastObservedTime").is_none_or(Value::is_null) {
            causes.push(Cause::required("series.lastObservedTime"));
        }
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_complete_v1_event_passes_and_each_missing_part_is_named() {
        let good = json!({"eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "klusterlet-agent",
            "reportingInstance": "c1", "action": "Report", "reason": "Available", "type": "Normal", "note": "up"});
        assert!(validate_v1_create(&good).is_empty());
        for (field, value) in [
            ("eventTime", Value::Null),
            ("reportingController", json!("")),
            ("action", json!("")),
            ("type", json!("Info")),
            ("note", json!("x".repeat(1025))),
            ("deprecatedCount", json!(3)),
            ("series", json!({"count": 1})),
        ] {
            let mut bad = good.clone();
            bad[field] = value;
            let causes = validate_v1_create(&bad);
            assert!(
                causes.iter().any(|c| c.field.starts_with(field)),
                "{field}: {causes:?}"
            );
        }
    }

    #[test]
    fn only_the_servers_times_count() {
        let ev = json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z",
                "managedFields": [{"manager": "a", "time": "2026-01-01T02:00:00Z"}]},
            "series": {"count": 3, "lastObservedTime": "9999-01-01T05:00:00.000000Z"},
            "eventTime": "9999-01-01T01:00:00.000000Z", "lastTimestamp": "9999-01-01T00:00:00Z"});
        assert_eq!(
            last_written(&ev).unwrap(),
            "2026-01-01T02:00:00Z".parse::<jiff::Timestamp>().unwrap()
        );
    }
}
