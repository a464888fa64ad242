//! Watch: a stream of JSON events over one HTTP response, resumable from a resourceVersion, with
//! bookmarks, `timeoutSeconds`, and `410 Gone` (as an ERROR event) when the history asked for is
//! no longer kept.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, header};
use serde_json::{Value, json};

use super::{ApiServer, Query, table};
use crate::error::{ApiError, ApiResult};
use crate::ops::ListOptions;
use crate::resources::Resource;
use crate::store::watch::{EventType, WatchEvent};

/// Longest watch when the client sets no timeout, as kube-apiserver's default minimum.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

fn line(kind: &str, object: Value) -> Bytes {
    line_of(kind, &object)
}

/// A BOOKMARK event: the watch has seen every change up to `rv`.
fn bookmark(res: &Resource, rv: u64) -> Bytes {
    line(
        "BOOKMARK",
        json!({"kind": res.kind, "apiVersion": res.api_version(),
            "metadata": {"resourceVersion": rv.to_string()}}),
    )
}

/// One watch event on the wire, written from a borrowed object: the cached event is shared by
/// every watcher it goes to, and is serialized without being copied.
fn line_of(kind: &str, object: &Value) -> Bytes {
    #[derive(serde::Serialize)]
    struct Line<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        object: &'a Value,
    }
    let mut v = serde_json::to_vec(&Line { kind, object }).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

/// One watch event on the wire, from the object's JSON as the store wrote it: no serializing
/// per watcher.
fn line_of_json(kind: &str, object: &[u8]) -> Bytes {
    let mut v = Vec::with_capacity(object.len() + kind.len() + 24);
    v.extend_from_slice(b"{\"type\":\"");
    v.extend_from_slice(kind.as_bytes());
    v.extend_from_slice(b"\",\"object\":");
    v.extend_from_slice(object);
    v.extend_from_slice(b"}\n");
    Bytes::from(v)
}

/// Starts a watch response.
pub fn serve(
    srv: Arc<ApiServer>,
    res: Arc<Resource>,
    ns: Option<String>,
    opts: ListOptions,
    q: &Query,
    as_table: bool,
) -> ApiResult<Response> {
    let bookmarks = q.flag("allowWatchBookmarks");
    let send_initial = q.flag("sendInitialEvents");
    let timeout =
        match q.get("timeoutSeconds") {
            None | Some("") => DEFAULT_TIMEOUT,
            Some(t) => Duration::from_secs(t.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("timeoutSeconds: invalid value {t:?}"))
            })?),
        };
    let rv_param = q.get("resourceVersion").unwrap_or("").to_string();
    if send_initial && (!bookmarks || q.get("resourceVersionMatch") != Some("NotOlderThan")) {
        return Err(ApiError::invalid(
            "",
            "ListOptions",
            "",
            vec![crate::error::Cause::forbidden(
                "sendInitialEvents",
                "sendInitialEvents requires allowWatchBookmarks=true and resourceVersionMatch=NotOlderThan",
            )],
        ));
    }
    // Without a resourceVersion (or with "0"), a watch starts with the current state as ADDED
    // events, as kube-apiserver does.
    let (initial, from_rv) = if rv_param.is_empty() || rv_param == "0" || send_initial {
        let all = ListOptions {
            labels: opts.labels.clone(),
            fields: opts.fields.clone(),
            limit: 0,
            continue_token: None,
        };
        let (items, rv, _) = srv.objects.list(&res, ns.as_deref(), &all)?;
        (items, rv)
    } else {
        let rv = rv_param.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!("resourceVersion: invalid value {rv_param:?}"))
        })?;
        (vec![], rv)
    };
    let key = res.key();
    let sub = srv
        .objects
        .store
        .watch()
        .subscribe(&key, ns.as_deref(), from_rv);
    let res2 = res.clone();
    let srv2 = srv.clone();
    let api_version = res.api_version();
    // Objects stored in the version served go out as they are, without a copy, and events
    // as the JSON the store wrote.
    let render = move |kind: &str, obj: &Value, json: Option<&[u8]>| -> Bytes {
        if !as_table && obj["apiVersion"].as_str() == Some(api_version.as_str()) {
            return match json {
                Some(json) => line_of_json(kind, json),
                None => line_of(kind, obj),
            };
        }
        let obj = srv2.objects.present(&res2, obj.clone());
        if as_table {
            line(
                kind,
                table::to_table(&res2, &[obj], Some("Object"), None, None),
            )
        } else {
            line(kind, obj)
        }
    };
    let interval = srv.bookmark_interval;
    let stream = async_stream::stream! {
        let mut sub = match sub {
            Ok(s) => s,
            Err(too_old) => {
                let status = ApiError::gone(format!("too old resource version: {from_rv} ({})", too_old.oldest)).to_status();
                yield Ok::<Bytes, std::convert::Infallible>(line("ERROR", status));
                return;
            }
        };
        for obj in &initial {
            yield Ok(render("ADDED", obj, None));
        }
        let mut last_rv = from_rv;
        if send_initial {
            yield Ok(line("BOOKMARK", json!({"kind": res.kind, "apiVersion": res.api_version(), "metadata": {"resourceVersion": last_rv.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}})));
        }
        let backlog = std::mem::take(&mut sub.backlog);
        for ev in backlog {
            last_rv = ev.rv;
            if let Some(kind) = filter(&opts, &ev) {
                yield Ok(render(kind, &ev.object, Some(&ev.data)));
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        loop {
            let ending = tokio::select! {
                ev = sub.rx.recv() => {
                    let Some(ev) = ev else { break };
                    if ev.rv <= last_rv { continue; }
                    last_rv = ev.rv;
                    if let Some(kind) = filter(&opts, &ev) {
                        yield Ok(render(kind, &ev.object, Some(&ev.data)));
                    }
                    continue;
                }
                _ = tick.tick(), if bookmarks => false,
                // As the watch times out, a last bookmark, as kube-apiserver sends: the client
                // resumes from now, not from its last event or bookmark, which a busy store
                // may have pushed out of the history meanwhile (410 Gone and a relist for
                // every watcher at once).
                _ = &mut deadline => true,
            };
            if bookmarks {
                // Deliver what was published up to the bookmark's version first, or the
                // client would resume past events still waiting in the channel.
                let rv = srv.objects.store.watch().published();
                while last_rv < rv && let Ok(ev) = sub.rx.try_recv() {
                    if ev.rv <= last_rv { continue; }
                    last_rv = ev.rv;
                    if let Some(kind) = filter(&opts, &ev) {
                        yield Ok(render(kind, &ev.object, Some(&ev.data)));
                    }
                }
                // A closed channel lost events (the watch fell behind): no bookmark.
                if !sub.rx.is_closed() {
                    yield Ok(bookmark(&res, rv.max(last_rv)));
                }
            }
            if ending {
                break;
            }
        }
    };
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// Maps an event through the watch's selectors: an object entering the selection is ADDED, one
/// leaving it is DELETED.
fn filter(opts: &ListOptions, ev: &WatchEvent) -> Option<&'static str> {
    let sel = |o: &Value| opts.labels.matches_object(o) && opts.fields.matches(o);
    let now = sel(&ev.object);
    let kind = match ev.kind {
        EventType::Added => now.then_some("ADDED")?,
        EventType::Deleted => now.then_some("DELETED")?,
        EventType::Modified => match (ev.old.as_deref().is_some_and(sel), now) {
            (true, true) => "MODIFIED",
            (false, true) => "ADDED",
            (true, false) => "DELETED",
            (false, false) => return None,
        },
    };
    Some(kind)
}
