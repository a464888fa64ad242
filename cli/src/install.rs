//! `garrison install hub`: the YAML that runs the hub on a Kubernetes cluster, for
//! `kubectl apply -f -`. The same YAML is committed as `deploy/hub.yaml`.

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::hub_external::{HUB_NAMESPACE, LEASE_NAME};

/// `garrison install` subcommands.
#[derive(Subcommand, Debug)]
pub enum InstallCommand {
    /// Print the YAML that runs the hub in a cluster: Namespace, OCM CRDs, ServiceAccount,
    /// least-privilege ClusterRole and binding, webhook Service, a Deployment of replicas that
    /// elect a leader, and the webhook configurations (failing closed until the hub serves).
    Hub(InstallHubArgs),
}

/// Arguments of `garrison install hub`.
#[derive(Args, Debug)]
pub struct InstallHubArgs {
    /// The container image holding the garrison binary.
    #[arg(long, value_name = "IMAGE", default_value_t = default_image())]
    pub image: String,
    /// Replicas of the hub; one leads, the others wait to take over.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=9))]
    pub replicas: u32,
}

fn default_image() -> String {
    format!(
        "ghcr.io/garrison-ocm/garrison:{}",
        env!("CARGO_PKG_VERSION")
    )
}

/// The ServiceAccount the hub runs as.
pub const HUB_SERVICE_ACCOUNT: &str = "garrison-hub";
/// The Service kube-apiserver reaches the webhooks through.
const WEBHOOK_SERVICE: &str = "garrison-hub-webhook";
/// The port the webhooks listen on in the pod.
const WEBHOOK_PORT: u16 = 9443;

/// Runs `garrison install`.
pub fn run(cmd: InstallCommand) -> Result<()> {
    match cmd {
        InstallCommand::Hub(a) => {
            print!("{}", hub_yaml(&a.image, a.replicas)?);
            Ok(())
        }
    }
}

/// Every permission the hub's controllers and webhooks use, and nothing else. The hub creates
/// each cluster's Roles and bindings for its agent, so it needs `escalate` and `bind` rather
/// than holding what it grants agents on their behalf.
pub fn hub_rules() -> Value {
    let rw = [
        "get", "list", "watch", "create", "update", "patch", "delete",
    ];
    json!([
        {"apiGroups": ["cluster.open-cluster-management.io"],
         "resources": ["managedclusters", "managedclustersets", "managedclustersetbindings",
                       "placements", "placementdecisions"],
         "verbs": rw},
        {"apiGroups": ["cluster.open-cluster-management.io"],
         "resources": ["managedclusters/status", "managedclustersets/status",
                       "managedclustersetbindings/status", "placements/status",
                       "placementdecisions/status"],
         "verbs": ["get", "update", "patch"]},
        {"apiGroups": ["cluster.open-cluster-management.io"],
         "resources": ["addonplacementscores"],
         "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["work.open-cluster-management.io"],
         "resources": ["manifestworks", "manifestworkreplicasets"],
         "verbs": rw},
        {"apiGroups": ["work.open-cluster-management.io"],
         "resources": ["manifestworks/status", "manifestworkreplicasets/status"],
         "verbs": ["get", "update", "patch"]},
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": rw},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch", "delete"]},
        {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch", "update"]},
        {"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests"],
         "verbs": ["get", "list", "watch", "delete"]},
        {"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests/approval"],
         "verbs": ["update"]},
        {"apiGroups": ["certificates.k8s.io"], "resources": ["signers"],
         "resourceNames": ["kubernetes.io/kube-apiserver-client"], "verbs": ["approve"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": rw},
        {"apiGroups": ["rbac.authorization.k8s.io"],
         "resources": ["roles", "rolebindings", "clusterroles", "clusterrolebindings"],
         "verbs": ["get", "list", "watch", "create", "update", "patch", "delete", "escalate", "bind"]},
        {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
        {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
         "verbs": ["get", "list", "watch", "create", "update", "patch"]},
        {"apiGroups": ["admissionregistration.k8s.io"],
         "resources": ["validatingwebhookconfigurations", "mutatingwebhookconfigurations"],
         "verbs": ["get", "list", "watch", "create", "update", "patch"]},
    ])
}

fn labels() -> Value {
    json!({"app.kubernetes.io/name": "garrison-hub", "app.kubernetes.io/part-of": "garrison"})
}

/// The hub's objects, in the order `kubectl apply` should create them.
pub fn hub_objects(image: &str, replicas: u32) -> Vec<Value> {
    let mut out = vec![json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": HUB_NAMESPACE, "labels": labels()},
    })];
    out.extend(garrison_api::crds::all_json());
    out.push(json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": HUB_SERVICE_ACCOUNT, "namespace": HUB_NAMESPACE, "labels": labels()},
    }));
    out.push(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "garrison:hub", "labels": labels()},
        "rules": hub_rules(),
    }));
    out.push(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "garrison:hub", "labels": labels()},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "garrison:hub"},
        "subjects": [{"kind": "ServiceAccount", "name": HUB_SERVICE_ACCOUNT, "namespace": HUB_NAMESPACE}],
    }));
    out.push(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": WEBHOOK_SERVICE, "namespace": HUB_NAMESPACE, "labels": labels()},
        "spec": {
            "selector": {"app.kubernetes.io/name": "garrison-hub"},
            "ports": [{"name": "webhooks", "port": 443, "targetPort": WEBHOOK_PORT, "protocol": "TCP"}],
        },
    }));
    let probe = |path: &str, period: u32| {
        json!({"httpGet": {"path": path, "port": WEBHOOK_PORT, "scheme": "HTTPS"},
               "periodSeconds": period, "timeoutSeconds": 3, "failureThreshold": 3})
    };
    out.push(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "garrison-hub", "namespace": HUB_NAMESPACE, "labels": labels()},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "garrison-hub"}},
            "template": {
                "metadata": {"labels": labels()},
                "spec": {
                    "serviceAccountName": HUB_SERVICE_ACCOUNT,
                    "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "hub",
                        "image": image,
                        "args": [
                            "hub", "--in-cluster",
                            "--webhook-listen", format!("0.0.0.0:{WEBHOOK_PORT}"),
                            "--webhook-service", format!("{HUB_NAMESPACE}/{WEBHOOK_SERVICE}:443"),
                            "--log-format", "json",
                        ],
                        "ports": [{"name": "webhooks", "containerPort": WEBHOOK_PORT, "protocol": "TCP"}],
                        "readinessProbe": probe("/readyz", 5),
                        "livenessProbe": probe("/healthz", 10),
                        "resources": {
                            "requests": {"cpu": "100m", "memory": "128Mi"},
                            "limits": {"memory": "512Mi"},
                        },
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "capabilities": {"drop": ["ALL"]},
                        },
                    }],
                },
            },
        },
    }));
    // Registered from the start so that no OCM object is written unreviewed: until the elected
    // hub serves them (and writes its caBundle here), these writes fail closed.
    let service = |path: &str| json!({"service": {"namespace": HUB_NAMESPACE, "name": WEBHOOK_SERVICE, "port": 443, "path": path}});
    out.push(garrison_hub::admission::webhook_configuration(
        true, &service,
    ));
    out.push(garrison_hub::admission::webhook_configuration(
        false, &service,
    ));
    out
}

/// `hub_objects` as YAML documents, with a header saying what they are.
pub fn hub_yaml(image: &str, replicas: u32) -> Result<String> {
    let mut out = format!(
        "# Garrison hub {}: generated by `garrison install hub`; apply with `kubectl apply -f -`.\n\
         # The hub replicas elect a leader with the Lease {HUB_NAMESPACE}/{LEASE_NAME}.\n",
        env!("CARGO_PKG_VERSION")
    );
    for obj in hub_objects(image, replicas) {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&obj)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed `deploy/hub.yaml` is exactly what `garrison install hub` prints.
    #[test]
    fn the_committed_hub_yaml_matches_the_binary() {
        let committed = include_str!("../../deploy/hub.yaml");
        let printed = hub_yaml(&default_image(), 2).unwrap();
        assert!(
            committed == printed,
            "deploy/hub.yaml is stale: regenerate it with `cargo run -- install hub > deploy/hub.yaml`"
        );
    }

    #[test]
    fn the_hub_never_asks_for_everything() {
        for rule in hub_rules().as_array().unwrap() {
            for key in ["apiGroups", "resources", "verbs"] {
                assert!(
                    !rule[key].as_array().unwrap().iter().any(|v| v == "*"),
                    "{rule}"
                );
            }
        }
    }
}
