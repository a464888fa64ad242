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
    /// The compliance history is kept in PostgreSQL once the Secret garrison-history-database
    /// in the hub's namespace holds its URL under `url` (see the YAML's header).
    Hub(InstallHubArgs),
    /// Print the YAML that runs the agent in a managed cluster: Namespace, ServiceAccount and
    /// its ClusterRole, a volume for the agent's identity, and a Deployment that joins the hub
    /// on first start and resumes afterwards. The bootstrap token goes into a Secret only when
    /// given; otherwise create it yourself (see the YAML's header).
    Klusterlet(InstallKlusterletArgs),
}

/// Arguments of `garrison install klusterlet`.
#[derive(Args, Debug)]
pub struct InstallKlusterletArgs {
    /// The hub's URL, as printed by `garrison init` or `garrison token create`.
    #[arg(long, value_name = "URL")]
    pub hub: String,
    /// The pin of the hub CA (`sha256:...`).
    #[arg(long, value_name = "sha256:HEX")]
    pub ca_cert_hash: String,
    /// This cluster's name on the hub: a lowercase DNS label.
    #[arg(long, value_name = "NAME")]
    pub cluster_name: String,
    /// A bootstrap token, to include as a Secret. Without it, the YAML expects the Secret
    /// `garrison-join` (key `token`) to be created separately, so the token stays out of files.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "GARRISON_JOIN_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<garrison_pki::SecretString>,
    /// The container image holding the garrison binary.
    #[arg(long, value_name = "IMAGE", default_value_t = default_image())]
    pub image: String,
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
        InstallCommand::Klusterlet(a) => {
            garrison_pki::ClusterName::parse(&a.cluster_name)
                .map_err(|e| anyhow::anyhow!("--cluster-name: {e}"))?;
            garrison_klusterlet::hub::parse_pin(&a.ca_cert_hash)?;
            garrison_klusterlet::hub::host_port(&a.hub)?;
            if let Some(t) = &a.token {
                garrison_klusterlet::agent::check_token_shape(t.expose())?;
            }
            print!("{}", klusterlet_yaml(&a)?);
            Ok(())
        }
    }
}

/// The Secret (key `url`) whose PostgreSQL URL turns the installed hub's compliance history on.
pub const HISTORY_DATABASE_SECRET: &str = "garrison-history-database";

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
        // The add-on manager: built-in add-ons' registrations, ClusterPermission delivery.
        {"apiGroups": ["addon.open-cluster-management.io"],
         "resources": ["clustermanagementaddons", "managedclusteraddons"], "verbs": rw},
        {"apiGroups": ["addon.open-cluster-management.io"],
         "resources": ["clustermanagementaddons/status", "managedclusteraddons/status"],
         "verbs": ["get", "update", "patch"]},
        {"apiGroups": ["addon.open-cluster-management.io"], "resources": ["addontemplates"],
         "verbs": ["get", "list", "watch"]},
        // The policy propagator: replicas in cluster namespaces, root status.
        {"apiGroups": ["policy.open-cluster-management.io"], "resources": ["policies"], "verbs": rw},
        {"apiGroups": ["policy.open-cluster-management.io"],
         "resources": ["placementbindings", "policysets"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["policy.open-cluster-management.io"],
         "resources": ["policies/status", "policysets/status", "placementbindings/status"],
         "verbs": ["get", "update", "patch"]},
        // One PolicyReport per cluster, in its namespace.
        {"apiGroups": ["wgpolicyk8s.io"], "resources": ["policyreports"], "verbs": rw},
        {"apiGroups": ["rbac.open-cluster-management.io"], "resources": ["clusterpermissions"],
         "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["rbac.open-cluster-management.io"], "resources": ["clusterpermissions/status"],
         "verbs": ["get", "update", "patch"]},
        {"apiGroups": ["authentication.open-cluster-management.io"],
         "resources": ["managedserviceaccounts"], "verbs": ["get", "list", "watch", "delete"]},
        {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch", "update"]},
        {"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests"],
         "verbs": ["get", "list", "watch", "delete"]},
        // The approver patches the approval subresource (renewals and add-on certificates).
        {"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests/approval"],
         "verbs": ["update", "patch"]},
        // Add-on custom signers write the certificates they issue. Kubernetes also wants
        // `approve` and `sign` on each custom signer's name, which the admin grants per signer.
        {"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests/status"],
         "verbs": ["update", "patch"]},
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
    // Secrets only where the hub needs them: bootstrap tokens in kube-system (the cleaner
    // deletes expired ones), and CAs in the hub's namespace.
    for (ns, rules) in [
        (
            "kube-system",
            json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch", "delete"]}]),
        ),
        (
            HUB_NAMESPACE,
            json!([
                {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
                // The webhooks' CA, the compliance history's key, and add-on custom
                // signers' CAs (their `signingCA` Secrets live here unless a template names
                // another namespace).
                {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
                // The compliance history's public key and newest checkpoint, in the ConfigMap
                // this YAML makes.
                {"apiGroups": [""], "resources": ["configmaps"],
                 "resourceNames": [garrison_hub::compliance::HISTORY_CONFIGMAP], "verbs": ["get", "patch"]},
            ]),
        ),
    ] {
        out.push(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "garrison:hub", "namespace": ns, "labels": labels()},
            "rules": rules,
        }));
        out.push(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "garrison:hub", "namespace": ns, "labels": labels()},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "garrison:hub"},
            "subjects": [{"kind": "ServiceAccount", "name": HUB_SERVICE_ACCOUNT, "namespace": HUB_NAMESPACE}],
        }));
    }
    // Filled by the hub when it keeps the compliance history; auditors read it.
    out.push(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": garrison_hub::compliance::HISTORY_CONFIGMAP, "namespace": HUB_NAMESPACE, "labels": labels()},
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
                        // The compliance history is kept when this Secret gives a
                        // PostgreSQL URL (its password stays out of the manifest).
                        "env": [{"name": "GARRISON_HISTORY_DATABASE", "valueFrom": {"secretKeyRef": {
                            "name": HISTORY_DATABASE_SECRET, "key": "url", "optional": true}}}],
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
    // Registered from the start so that no OCM object is written unreviewed: until a hub serves
    // them (and the leader writes the caBundle here), these writes fail closed.
    let service = |path: &str| json!({"service": {"namespace": HUB_NAMESPACE, "name": WEBHOOK_SERVICE, "port": 443, "path": path}});
    use garrison_hub::admission::{CsrScope, webhook_configuration};
    out.push(webhook_configuration(true, CsrScope::Labelled, &service));
    out.push(webhook_configuration(false, CsrScope::Labelled, &service));
    out
}

/// `hub_objects` as YAML documents, with a header saying what they are.
pub fn hub_yaml(image: &str, replicas: u32) -> Result<String> {
    let mut out = format!(
        "# Garrison hub {}: generated by `garrison install hub`; apply with `kubectl apply -f -`.\n\
         # The hub replicas elect a leader with the Lease {HUB_NAMESPACE}/{LEASE_NAME}.\n\
         # To keep the compliance history (in PostgreSQL), once applied (HOST is loopback or a Unix\n\
         # socket directory, e.g. a TLS proxy beside the hub: the connection is not encrypted yet):\n\
         #   kubectl -n {HUB_NAMESPACE} create secret generic {HISTORY_DATABASE_SECRET} --from-literal=url=postgres://USER:PASSWORD@HOST/DB\n\
         #   kubectl -n {HUB_NAMESPACE} rollout restart deployment garrison-hub\n",
        env!("CARGO_PKG_VERSION")
    );
    for obj in hub_objects(image, replicas) {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&obj)?);
    }
    Ok(out)
}

/// The agent's namespace in a managed cluster.
pub const AGENT_NAMESPACE: &str = "open-cluster-management-agent";

/// The agent's objects for `kubectl apply`.
pub fn klusterlet_objects(a: &InstallKlusterletArgs) -> Vec<Value> {
    let labels = json!({"app.kubernetes.io/name": "garrison-klusterlet", "app.kubernetes.io/part-of": "garrison"});
    let mut out = vec![json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": AGENT_NAMESPACE, "labels": labels},
    })];
    if let Some(token) = &a.token {
        out.push(json!({
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "garrison-join", "namespace": AGENT_NAMESPACE, "labels": labels},
            "stringData": {"token": token.expose()},
        }));
    }
    out.push(json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "klusterlet", "namespace": AGENT_NAMESPACE, "labels": labels},
    }));
    // The work agent applies whatever ManifestWorks ask for, so its own rights are wide; each
    // work is held to its executor's rights by SubjectAccessReview before anything is applied.
    out.push(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "garrison:klusterlet", "labels": labels},
        "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
    }));
    out.push(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "garrison:klusterlet", "labels": labels},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "garrison:klusterlet"},
        "subjects": [{"kind": "ServiceAccount", "name": "klusterlet", "namespace": AGENT_NAMESPACE}],
    }));
    out.push(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "garrison-klusterlet-metrics", "namespace": AGENT_NAMESPACE, "labels": labels},
        "spec": {
            "selector": {"app.kubernetes.io/name": "garrison-klusterlet"},
            "ports": [{"name": "metrics", "port": 8443, "targetPort": "metrics", "protocol": "TCP"}],
        },
    }));
    out.push(json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "garrison-klusterlet", "namespace": AGENT_NAMESPACE, "labels": labels},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "64Mi"}}},
    }));
    out.push(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "garrison-klusterlet", "namespace": AGENT_NAMESPACE, "labels": labels},
        "spec": {
            // One agent per cluster: the old pod stops before a new one starts.
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": {"app.kubernetes.io/name": "garrison-klusterlet"}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": "klusterlet",
                    "securityContext": {"runAsNonRoot": true, "fsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "klusterlet",
                        "image": a.image,
                        "args": [
                            "join", "--resume", "--in-cluster",
                            "--hub", a.hub, "--ca-cert-hash", a.ca_cert_hash,
                            "--cluster-name", a.cluster_name,
                            "--data-dir", "/var/lib/garrison/agent",
                            "--log-format", "json",
                            // Metrics for callers this cluster allows `get` on /metrics.
                            "--metrics-listen", "0.0.0.0:8443",
                            "--metrics-cert-host", format!("garrison-klusterlet-metrics.{AGENT_NAMESPACE}.svc"),
                            "--metrics-cert-host", format!("garrison-klusterlet-metrics.{AGENT_NAMESPACE}.svc.cluster.local"),
                        ],
                        "ports": [{"name": "metrics", "containerPort": 8443, "protocol": "TCP"}],
                        "env": [{"name": "GARRISON_JOIN_TOKEN",
                                 "valueFrom": {"secretKeyRef": {"name": "garrison-join", "key": "token"}}},
                                // The metrics certificate names the pod's address too.
                                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/garrison"}],
                        "resources": {
                            "requests": {"cpu": "50m", "memory": "64Mi"},
                            "limits": {"memory": "256Mi"},
                        },
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "capabilities": {"drop": ["ALL"]},
                        },
                    }],
                    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "garrison-klusterlet"}}],
                },
            },
        },
    }));
    out
}

/// `klusterlet_objects` as YAML documents, with a header.
pub fn klusterlet_yaml(a: &InstallKlusterletArgs) -> Result<String> {
    let mut out = format!(
        "# Garrison klusterlet {} for cluster {}: generated by `garrison install klusterlet`.\n",
        env!("CARGO_PKG_VERSION"),
        a.cluster_name
    );
    if a.token.is_none() {
        out.push_str(&format!(
            "# Create the bootstrap token Secret first:\n#   kubectl -n {AGENT_NAMESPACE} create secret generic garrison-join --from-literal=token=TOKEN\n"
        ));
    }
    for obj in klusterlet_objects(a) {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&obj)?);
    }
    Ok(out)
}

/// The arguments `deploy/klusterlet.yaml` is generated with.
#[cfg(test)]
fn example_klusterlet_args() -> InstallKlusterletArgs {
    InstallKlusterletArgs {
        hub: "https://hub.example.com:6443".into(),
        ca_cert_hash: format!("sha256:{}", "0".repeat(64)),
        cluster_name: "cluster1".into(),
        token: None,
        image: default_image(),
    }
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

    /// `deploy/klusterlet.yaml` is what `garrison install klusterlet` prints for the example.
    #[test]
    fn the_committed_klusterlet_yaml_matches_the_binary() {
        let committed = include_str!("../../deploy/klusterlet.yaml");
        let printed = klusterlet_yaml(&example_klusterlet_args()).unwrap();
        assert!(
            committed == printed,
            "deploy/klusterlet.yaml is stale: regenerate it with `cargo run -- install klusterlet --hub https://hub.example.com:6443 --ca-cert-hash sha256:0000000000000000000000000000000000000000000000000000000000000000 --cluster-name cluster1 > deploy/klusterlet.yaml`"
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
