//! The objects a fresh server needs: system namespaces and the default RBAC roles and bindings
//! kube-apiserver creates (`cluster-admin`, `admin`, `edit`, `view`, `system:discovery`,
//! `system:monitoring`, `system:basic-user`, `system:public-info-viewer`).

use serde_json::{Value, json};

use crate::admission::FieldValidation;
use crate::auth::UserInfo;
use crate::auth::authn::MASTERS;
use crate::error::ApiResult;
use crate::ops::{Objects, WriteCtx};

/// The identity the server uses for its own writes.
pub fn system_user() -> UserInfo {
    UserInfo::new("system:apiserver", vec![MASTERS.into()], "internal")
}

fn cluster_role(name: &str, rules: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}}, "rules": rules})
}

fn cluster_binding(name: &str, role: &str, groups: &[&str]) -> Value {
    let subjects: Vec<Value> = groups
        .iter()
        .map(|g| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g}))
        .collect();
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role}, "subjects": subjects})
}

/// The default objects, in creation order.
pub fn defaults() -> Vec<Value> {
    let read = json!(["get", "list", "watch"]);
    let write = json!(["create", "delete", "deletecollection", "patch", "update"]);
    let mut out: Vec<Value> = ["default", "kube-system", "kube-public", "kube-node-lease"]
        .iter()
        .map(|n| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}))
        .collect();
    out.push(cluster_role(
        "cluster-admin",
        json!([
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
            {"nonResourceURLs": ["*"], "verbs": ["*"]}
        ]),
    ));
    out.push(cluster_role("view", json!([
        {"apiGroups": [""], "resources": ["configmaps", "serviceaccounts", "events", "namespaces"], "verbs": read},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": read}
    ])));
    out.push(cluster_role("edit", json!([
        {"apiGroups": [""], "resources": ["configmaps", "secrets", "serviceaccounts", "events"], "verbs": read},
        {"apiGroups": [""], "resources": ["configmaps", "secrets", "serviceaccounts", "events"], "verbs": write},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "list", "watch", "create", "delete", "deletecollection", "patch", "update"]}
    ])));
    out.push(cluster_role("admin", json!([
        {"apiGroups": [""], "resources": ["configmaps", "secrets", "serviceaccounts", "events"], "verbs": ["*"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["*"]},
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"], "verbs": ["*"]}
    ])));
    out.push(cluster_role("system:discovery", json!([
        {"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/readyz", "/openapi", "/openapi/*", "/version", "/version/"], "verbs": ["get"]}
    ])));
    out.push(cluster_role("system:basic-user", json!([
        {"apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], "verbs": ["create"]},
        {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]}
    ])));
    out.push(cluster_role("system:public-info-viewer", json!([
        {"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"], "verbs": ["get"]}
    ])));
    // kube-apiserver's: metrics and health for whoever is put in the system:monitoring group.
    out.push(cluster_role("system:monitoring", json!([
        {"nonResourceURLs": ["/healthz", "/healthz/*", "/livez", "/livez/*", "/metrics", "/readyz", "/readyz/*"], "verbs": ["get"]}
    ])));
    out.push(cluster_binding(
        "cluster-admin",
        "cluster-admin",
        &[MASTERS],
    ));
    out.push(cluster_binding(
        "system:monitoring",
        "system:monitoring",
        &["system:monitoring"],
    ));
    out.push(cluster_binding(
        "system:discovery",
        "system:discovery",
        &["system:authenticated"],
    ));
    out.push(cluster_binding(
        "system:basic-user",
        "system:basic-user",
        &["system:authenticated"],
    ));
    out.push(cluster_binding(
        "system:public-info-viewer",
        "system:public-info-viewer",
        &["system:authenticated", "system:unauthenticated"],
    ));
    // kubeadm's: anyone may read the signed cluster-info, which token discovery starts from.
    let clusterinfo = "kubeadm:bootstrap-signer-clusterinfo";
    out.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": clusterinfo, "namespace": "kube-public"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["cluster-info"], "verbs": ["get"]}]}));
    out.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": clusterinfo, "namespace": "kube-public"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": clusterinfo},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": ANONYMOUS}]}));
    out
}

/// The user of requests without credentials, on the paths that admit them.
pub const ANONYMOUS: &str = "system:anonymous";
/// The group of requests without credentials.
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
/// The only resource path served to requests without credentials, as kube-apiserver's
/// anonymous authentication limited to `cluster-info` (its `AuthenticationConfiguration`
/// `anonymous.conditions`) serves it; RBAC still decides. Everything else answers 401.
pub const ANONYMOUS_PATHS: &[&str] = &["/api/v1/namespaces/kube-public/configmaps/cluster-info"];

/// Creates each default object that does not exist yet. Existing ones are left as the admin
/// left them.
pub fn ensure_defaults(objects: &Objects) -> ApiResult<()> {
    for obj in defaults() {
        ensure_object(objects, obj, false)?;
    }
    Ok(())
}

/// Creates `obj` when missing, or, with `update`, replaces its content (keeping the stored
/// metadata, taking the given labels) when it exists.
pub fn ensure_object(objects: &Objects, obj: Value, update: bool) -> ApiResult<Value> {
    let user = system_user();
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let kind = obj["kind"].as_str().unwrap_or_default();
    let res = objects
        .registry
        .by_kind(group, version, kind)
        .ok_or_else(|| crate::error::ApiError::bad_request(format!("unknown kind {kind}")))?;
    let meta_field = |f: &str| {
        obj.pointer(&format!("/metadata/{f}"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (ns, name) = (meta_field("namespace"), meta_field("name"));
    let mut ctx = WriteCtx {
        user: &user,
        manager: "garrison-hub".into(),
        dry_run: false,
        field_validation: FieldValidation::Strict,
        warnings: vec![],
    };
    match objects.get(&res, &ns, &name) {
        Ok(current) if !update => Ok(current),
        Ok(current) => {
            let mut next = obj.clone();
            next["metadata"] = current["metadata"].clone();
            if let Some(labels) = obj.pointer("/metadata/labels") {
                next["metadata"]["labels"] = labels.clone();
            }
            objects.update(&res, &ns, &name, "", next, &mut ctx)
        }
        Err(e) if e.code == 404 => objects.create(&res, &ns, obj, &mut ctx),
        Err(e) => Err(e),
    }
}
