//! Discovery documents, `/version`, and the OpenAPI v3 documents kubectl reads to learn that the
//! server validates fields itself (`fieldValidation`) and, for custom resources, their schemas.

use std::sync::Arc;

use axum::response::Response;
use http::HeaderMap;
use serde_json::{Map, Value, json};

use super::{ApiServer, json_response};
use crate::error::{ApiError, ApiResult};
use crate::resources::Resource;

/// The Kubernetes minor version whose API this server follows.
pub const KUBE_MINOR: &str = "33";

fn version_doc() -> Value {
    json!({
        "major": "1",
        "minor": KUBE_MINOR,
        "gitVersion": format!("v1.{KUBE_MINOR}.0+garrison-{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    })
}

fn resource_list(group_version: &str, resources: &[Arc<Resource>]) -> Value {
    let mut out = Vec::new();
    for r in resources {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs(),
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        out.push(entry);
        for sub in &r.subresources {
            let kind = if *sub == "approval" || *sub == "status" || *sub == "finalize" {
                r.kind.clone()
            } else {
                String::new()
            };
            let verbs: &[&str] = if *sub == "finalize" {
                &["update"]
            } else {
                &["get", "patch", "update"]
            };
            out.push(json!({"name": format!("{}/{}", r.plural, sub), "singularName": "", "namespaced": r.namespaced, "kind": kind, "verbs": verbs}));
        }
    }
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": out})
}

fn group_doc(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({"name": name, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(Value::Null)})
}

/// Serves a non-resource GET.
pub fn serve(srv: &ApiServer, path: &str, _headers: &HeaderMap) -> ApiResult<Response> {
    let reg = &srv.objects.registry;
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let not_found = || ApiError::no_route("the server could not find the requested resource");
    let doc = match segs.as_slice() {
        ["version"] => version_doc(),
        ["api"] => {
            json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]})
        }
        ["api", "v1"] => {
            let rs: Vec<Arc<Resource>> = reg
                .all()
                .into_iter()
                .filter(|r| r.group.is_empty() && r.version == "v1")
                .collect();
            resource_list("v1", &rs)
        }
        ["apis"] => {
            let groups: Vec<Value> = reg
                .groups()
                .iter()
                .filter(|(g, _)| !g.is_empty())
                .map(|(g, vs)| group_doc(g, vs))
                .collect();
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        }
        ["apis", g] => {
            let (name, versions) = reg
                .groups()
                .into_iter()
                .find(|(n, _)| n == g)
                .ok_or_else(not_found)?;
            let mut d = group_doc(&name, &versions);
            d["kind"] = json!("APIGroup");
            d["apiVersion"] = json!("v1");
            d
        }
        ["apis", g, v] => {
            let rs: Vec<Arc<Resource>> = reg
                .all()
                .into_iter()
                .filter(|r| r.group == *g && r.version == *v)
                .collect();
            if rs.is_empty() {
                return Err(not_found());
            }
            resource_list(&format!("{g}/{v}"), &rs)
        }
        ["openapi", "v3"] => openapi_root(srv),
        ["openapi", "v3", rest @ ..] => {
            openapi_group_version(srv, &rest.join("/")).ok_or_else(not_found)?
        }
        _ => return Err(not_found()),
    };
    Ok(json_response(200, &doc))
}

fn group_versions(srv: &ApiServer) -> Vec<(String, Vec<Arc<Resource>>)> {
    let mut out: Vec<(String, Vec<Arc<Resource>>)> = Vec::new();
    for r in srv.objects.registry.all() {
        let gv = if r.group.is_empty() {
            format!("api/{}", r.version)
        } else {
            format!("apis/{}/{}", r.group, r.version)
        };
        match out.iter_mut().find(|(k, _)| *k == gv) {
            Some((_, list)) => list.push(r),
            None => out.push((gv, vec![r])),
        }
    }
    out
}

fn openapi_root(srv: &ApiServer) -> Value {
    let mut paths = Map::new();
    for (gv, resources) in group_versions(srv) {
        let doc = build_gv_doc(&resources);
        let digest = ring::digest::digest(&ring::digest::SHA256, doc.to_string().as_bytes());
        let hash: String = digest
            .as_ref()
            .iter()
            .take(16)
            .map(|b| format!("{b:02X}"))
            .collect();
        paths.insert(
            gv.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash={hash}")}),
        );
    }
    json!({"paths": paths})
}

fn openapi_group_version(srv: &ApiServer, gv: &str) -> Option<Value> {
    group_versions(srv)
        .into_iter()
        .find(|(k, _)| k == gv)
        .map(|(_, rs)| build_gv_doc(&rs))
}

fn schema_name(r: &Resource) -> String {
    let group = if r.group.is_empty() {
        "core".to_string()
    } else {
        r.group.split('.').rev().collect::<Vec<_>>().join(".")
    };
    format!("{group}.{}.{}", r.version, r.kind)
}

fn build_gv_doc(resources: &[Arc<Resource>]) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for r in resources {
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let prefix = if r.group.is_empty() {
            format!("/api/{}", r.version)
        } else {
            format!("/apis/{}/{}", r.group, r.version)
        };
        let base = if r.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("{prefix}/{}", r.plural)
        };
        let params = json!([
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        ]);
        let ok = json!({"200": {"description": "OK"}});
        let op = |action: &str| json!({"x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk, "parameters": params, "responses": ok});
        if r.virtual_only {
            paths.insert(base, json!({"post": op("post")}));
            continue;
        }
        paths.insert(
            base.clone(),
            json!({"get": op("list"), "post": op("post"), "delete": op("deletecollection")}),
        );
        paths.insert(format!("{base}/{{name}}"), json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")}));
        for sub in &r.subresources {
            paths.insert(
                format!("{base}/{{name}}/{sub}"),
                json!({"get": op("get"), "put": op("put"), "patch": op("patch")}),
            );
        }
        // Schemas are published for custom resources only; for built-in kinds kubectl uses its
        // compiled-in types, which carry the strategic-merge metadata.
        if let Some(s) = &r.schema {
            let mut s = (**s).clone();
            if let Some(props) = s.get_mut("properties").and_then(Value::as_object_mut) {
                props
                    .entry("apiVersion")
                    .or_insert(json!({"type": "string"}));
                props.entry("kind").or_insert(json!({"type": "string"}));
                props.entry("metadata").or_insert(json!({"type": "object"}));
            }
            s["x-kubernetes-group-version-kind"] = json!([gvk]);
            schemas.insert(schema_name(r), s);
        }
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Garrison", "version": version_doc()["gitVersion"]},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}
