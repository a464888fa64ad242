//! The RBAC the registration flow hands out, as upstream OCM names it.
//!
//! - Bootstrap (`open-cluster-management:bootstrap`, bound to the bootstrap-token group): create
//!   a ManagedCluster (in the `default` set) and CSRs, and follow those CSRs. Nothing else.
//! - Per accepted cluster, ClusterRole and ClusterRoleBinding
//!   `open-cluster-management:managedcluster:<cluster>` for the cluster's group: CSRs for its
//!   renewals, and its own ManagedCluster and its status, by name.
//! - In the cluster's namespace, RoleBindings `open-cluster-management:managedcluster:<cluster>:registration`
//!   and `...:work` to the shared ClusterRoles `open-cluster-management:managedcluster:registration`
//!   and `...:work`: its lease, events, add-ons and ManifestWorks, in that namespace only.

use serde_json::{Value, json};

/// Group bootstrap tokens made by `garrison token create` carry.
///
/// This is the group `clusteradm init` gives its bootstrap tokens, so an upstream bootstrap
/// kubeconfig (and the token Secret clusteradm writes) works against a Garrison hub unchanged.
pub const BOOTSTRAP_GROUP: &str = "system:bootstrappers:managedcluster";
/// Name of the bootstrap ClusterRole and its binding.
pub const BOOTSTRAP_ROLE: &str = "open-cluster-management:bootstrap";
/// Shared ClusterRole bound in each cluster namespace for the registration agent.
pub const REGISTRATION_ROLE: &str = "open-cluster-management:managedcluster:registration";
/// Shared ClusterRole bound in each cluster namespace for the work agent.
pub const WORK_ROLE: &str = "open-cluster-management:managedcluster:work";

const RBAC: &str = "rbac.authorization.k8s.io/v1";

/// Name of a cluster's own ClusterRole and ClusterRoleBinding.
pub fn cluster_role_name(cluster: &str) -> String {
    format!("open-cluster-management:managedcluster:{cluster}")
}

/// Name of a cluster's registration RoleBinding.
pub fn registration_binding_name(cluster: &str) -> String {
    format!("open-cluster-management:managedcluster:{cluster}:registration")
}

/// Name of a cluster's work RoleBinding.
pub fn work_binding_name(cluster: &str) -> String {
    format!("open-cluster-management:managedcluster:{cluster}:work")
}

/// The group of a cluster's agents.
pub fn cluster_group(cluster: &str) -> String {
    format!("system:open-cluster-management:{cluster}")
}

fn group_subject(group: &str) -> Value {
    json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}])
}

fn labels(cluster: Option<&str>) -> Value {
    match cluster {
        Some(c) => {
            json!({"open-cluster-management.io/cluster-name": c, "app.kubernetes.io/managed-by": "garrison"})
        }
        None => json!({"app.kubernetes.io/managed-by": "garrison"}),
    }
}

/// The shared objects every hub has: the bootstrap role and binding, and the registration and
/// work roles bound per cluster.
pub fn shared_objects() -> Vec<Value> {
    vec![
        json!({"apiVersion": RBAC, "kind": "ClusterRole",
        "metadata": {"name": BOOTSTRAP_ROLE, "labels": labels(None)},
        "rules": [
            {"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests"], "verbs": ["create", "get", "list", "watch"]},
            // Upstream's agent lists and watches its ManagedCluster before it has a certificate.
            // Unlike clusteradm's role, no `update` (a bootstrap token could rewrite any other
            // cluster's spec) and no `configmaps get` (every ConfigMap of the hub).
            {"apiGroups": ["cluster.open-cluster-management.io"], "resources": ["managedclusters"], "verbs": ["create", "get", "list", "watch"]},
            // A new cluster lands in the default set (the API server labels it so), which its
            // creator must be allowed to join.
            {"apiGroups": ["cluster.open-cluster-management.io"], "resources": ["managedclustersets/join"], "resourceNames": ["default"], "verbs": ["create"]}
        ]}),
        json!({"apiVersion": RBAC, "kind": "ClusterRoleBinding",
            "metadata": {"name": BOOTSTRAP_ROLE, "labels": labels(None)},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": BOOTSTRAP_ROLE},
            "subjects": group_subject(BOOTSTRAP_GROUP)}),
        json!({"apiVersion": RBAC, "kind": "ClusterRole",
        "metadata": {"name": REGISTRATION_ROLE, "labels": labels(None)},
        "rules": [
            // Exactly upstream's: leases are renewed by update, never patched or created.
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "list", "watch", "update"]},
            {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create"]},
            {"apiGroups": ["addon.open-cluster-management.io"], "resources": ["managedclusteraddons"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["addon.open-cluster-management.io"], "resources": ["managedclusteraddons/status"], "verbs": ["patch", "update"]}
        ]}),
        json!({"apiVersion": RBAC, "kind": "ClusterRole",
        "metadata": {"name": WORK_ROLE, "labels": labels(None)},
        "rules": [
            {"apiGroups": ["work.open-cluster-management.io"], "resources": ["manifestworks"], "verbs": ["get", "list", "watch", "update", "patch"]},
            {"apiGroups": ["work.open-cluster-management.io"], "resources": ["manifestworks/status"], "verbs": ["patch", "update"]},
            {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch", "update"]}
        ]}),
    ]
}

/// A cluster's ClusterRole: CSRs for its renewals, and its own ManagedCluster by name.
pub fn cluster_role(cluster: &str) -> Value {
    json!({"apiVersion": RBAC, "kind": "ClusterRole",
    "metadata": {"name": cluster_role_name(cluster), "labels": labels(Some(cluster))},
    "rules": [
        {"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests"], "verbs": ["create", "get", "list", "watch"]},
        {"apiGroups": ["cluster.open-cluster-management.io"], "resources": ["managedclusters"], "resourceNames": [cluster], "verbs": ["get", "list", "watch", "update"]},
        {"apiGroups": ["cluster.open-cluster-management.io"], "resources": ["managedclusters/status"], "resourceNames": [cluster], "verbs": ["patch", "update"]}
    ]})
}

/// The binding of a cluster's ClusterRole to the cluster's group.
pub fn cluster_role_binding(cluster: &str) -> Value {
    json!({"apiVersion": RBAC, "kind": "ClusterRoleBinding",
        "metadata": {"name": cluster_role_name(cluster), "labels": labels(Some(cluster))},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role_name(cluster)},
        "subjects": group_subject(&cluster_group(cluster))})
}

/// The registration and work RoleBindings in the cluster's namespace.
pub fn namespace_bindings(cluster: &str) -> [Value; 2] {
    let binding = |name: String, role: &str| {
        json!({"apiVersion": RBAC, "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": cluster, "labels": labels(Some(cluster))},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": group_subject(&cluster_group(cluster))})
    };
    [
        binding(registration_binding_name(cluster), REGISTRATION_ROLE),
        binding(work_binding_name(cluster), WORK_ROLE),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_role_names_only_its_own_cluster() {
        let role = cluster_role("east");
        for rule in role["rules"].as_array().unwrap() {
            if rule["apiGroups"][0] == "cluster.open-cluster-management.io" {
                // list and watch too, but only through `metadata.name=east`, which the API
                // server authorizes against resourceNames as kube-apiserver does.
                assert_eq!(rule["resourceNames"], json!(["east"]));
                assert!(!rule["verbs"].as_array().unwrap().contains(&json!("delete")));
            }
        }
        let [reg, work] = namespace_bindings("east");
        assert_eq!(reg["metadata"]["namespace"], "east");
        assert_eq!(
            work["subjects"][0]["name"],
            "system:open-cluster-management:east"
        );
    }

    #[test]
    fn bootstrap_rights_are_create_and_follow_only() {
        let shared = shared_objects();
        let boot = &shared[0];
        let verbs: Vec<&str> = boot["rules"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| {
                r["verbs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap())
            })
            .collect();
        for forbidden in ["update", "patch", "delete", "*"] {
            assert!(!verbs.contains(&forbidden), "{forbidden}");
        }
        assert_eq!(shared[1]["subjects"][0]["name"], BOOTSTRAP_GROUP);
    }
}
