//! The registry of served resources: the built-in kinds, and the kinds that CustomResourceDefinitions
//! add at run time.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde_json::Value;

/// The built-in kinds, which the server validates with their typed Kubernetes definitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Builtin {
    /// core/v1 Namespace
    Namespace,
    /// core/v1 Secret
    Secret,
    /// core/v1 ConfigMap
    ConfigMap,
    /// core/v1 ServiceAccount
    ServiceAccount,
    /// core/v1 Event
    Event,
    /// events.k8s.io/v1 Event, stored as a core Event
    EventV1,
    /// core/v1 Node
    Node,
    /// coordination.k8s.io/v1 Lease
    Lease,
    /// certificates.k8s.io/v1 CertificateSigningRequest
    CertificateSigningRequest,
    /// rbac.authorization.k8s.io/v1 Role
    Role,
    /// rbac.authorization.k8s.io/v1 ClusterRole
    ClusterRole,
    /// rbac.authorization.k8s.io/v1 RoleBinding
    RoleBinding,
    /// rbac.authorization.k8s.io/v1 ClusterRoleBinding
    ClusterRoleBinding,
    /// apiextensions.k8s.io/v1 CustomResourceDefinition
    CustomResourceDefinition,
    /// authorization.k8s.io/v1 SubjectAccessReview (create only, not stored)
    SubjectAccessReview,
    /// authorization.k8s.io/v1 SelfSubjectAccessReview (create only, not stored)
    SelfSubjectAccessReview,
    /// authorization.k8s.io/v1 SelfSubjectRulesReview (create only, not stored)
    SelfSubjectRulesReview,
    /// authentication.k8s.io/v1 SelfSubjectReview (create only, not stored)
    SelfSubjectReview,
    /// authentication.k8s.io/v1 TokenReview (create only, not stored)
    TokenReview,
    /// core/v1 Pod (workload kinds: served by simulated clusters)
    Pod,
    /// core/v1 Service
    Service,
    /// core/v1 PersistentVolumeClaim
    PersistentVolumeClaim,
    /// apps/v1 Deployment
    Deployment,
    /// apps/v1 StatefulSet
    StatefulSet,
    /// apps/v1 DaemonSet
    DaemonSet,
    /// apps/v1 ReplicaSet
    ReplicaSet,
    /// batch/v1 Job
    Job,
    /// batch/v1 CronJob
    CronJob,
    /// admissionregistration.k8s.io/v1 ValidatingWebhookConfiguration
    ValidatingWebhookConfiguration,
    /// admissionregistration.k8s.io/v1 MutatingWebhookConfiguration
    MutatingWebhookConfiguration,
}

/// Which rule an object's name must satisfy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 DNS subdomain, at most 253 characters.
    DnsSubdomain,
    /// RFC 1123 DNS label, at most 63 characters (namespaces).
    DnsLabel,
    /// Any name usable as a path segment (RBAC kinds, CSRs).
    PathSegment,
}

/// An `additionalPrinterColumns` entry.
#[derive(Debug, Clone)]
pub struct PrinterColumn {
    /// Column header.
    pub name: String,
    /// OpenAPI type: string, integer, number, boolean, date.
    pub type_: String,
    /// JSONPath into the object.
    pub json_path: String,
    /// 0 is shown by default; higher only with `-o wide`.
    pub priority: i64,
    /// Column description.
    pub description: String,
}

/// One served resource at one version.
#[derive(Debug, Clone)]
pub struct Resource {
    /// API group ("" for core).
    pub group: String,
    /// Version served at this entry.
    pub version: String,
    /// The version objects are stored at.
    pub storage_version: String,
    /// The group objects are stored under: the resource's own group, except for kinds
    /// kube-apiserver serves from another group's storage (events.k8s.io Events are core
    /// Events).
    pub storage_group: String,
    /// Plural resource name.
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Kind.
    pub kind: String,
    /// Kind of lists.
    pub list_kind: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Short names for kubectl.
    pub short_names: Vec<String>,
    /// Categories, e.g. `all`.
    pub categories: Vec<String>,
    /// Subresources served, e.g. `status`.
    pub subresources: Vec<&'static str>,
    /// Which built-in kind this is, if any.
    pub builtin: Option<Builtin>,
    /// The OpenAPI v3 schema objects must satisfy (custom resources).
    pub schema: Option<Arc<Value>>,
    /// Extra printer columns.
    pub columns: Vec<PrinterColumn>,
    /// Name validation rule.
    pub name_rule: NameRule,
    /// Create-only kinds that are answered and never stored.
    pub virtual_only: bool,
}

impl Resource {
    /// The storage key shared by every version: `group/plural`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.storage_group, self.plural)
    }
    /// `apiVersion` of stored objects.
    pub fn storage_api_version(&self) -> String {
        if self.storage_group.is_empty() {
            self.storage_version.clone()
        } else {
            format!("{}/{}", self.storage_group, self.storage_version)
        }
    }
    /// `apiVersion` as written in objects.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
    /// Whether this is a custom resource.
    pub fn is_custom(&self) -> bool {
        self.builtin.is_none()
    }
    /// Whether the `status` subresource is served.
    pub fn has_status(&self) -> bool {
        self.subresources.contains(&"status")
    }
    /// The verbs served, as discovery lists them.
    pub fn verbs(&self) -> Vec<&'static str> {
        if self.virtual_only {
            vec!["create"]
        } else {
            vec![
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ]
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn builtin(
    group: &str,
    plural: &str,
    kind: &str,
    namespaced: bool,
    short: &[&str],
    subresources: &[&'static str],
    b: Builtin,
    name_rule: NameRule,
) -> Resource {
    Resource {
        group: group.into(),
        version: "v1".into(),
        storage_version: "v1".into(),
        storage_group: group.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        kind: kind.into(),
        list_kind: format!("{kind}List"),
        namespaced,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories: vec![],
        subresources: subresources.to_vec(),
        builtin: Some(b),
        schema: None,
        columns: vec![],
        name_rule,
        virtual_only: matches!(
            b,
            Builtin::SubjectAccessReview
                | Builtin::SelfSubjectAccessReview
                | Builtin::SelfSubjectRulesReview
                | Builtin::SelfSubjectReview
                | Builtin::TokenReview
        ),
    }
}

/// Every built-in resource.
pub fn builtins() -> Vec<Resource> {
    use Builtin as B;
    use NameRule::*;
    vec![
        builtin(
            "",
            "namespaces",
            "Namespace",
            false,
            &["ns"],
            &["status", "finalize"],
            B::Namespace,
            DnsLabel,
        ),
        builtin(
            "",
            "secrets",
            "Secret",
            true,
            &[],
            &[],
            B::Secret,
            DnsSubdomain,
        ),
        builtin(
            "",
            "configmaps",
            "ConfigMap",
            true,
            &["cm"],
            &[],
            B::ConfigMap,
            DnsSubdomain,
        ),
        builtin(
            "",
            "serviceaccounts",
            "ServiceAccount",
            true,
            &["sa"],
            &["token"],
            B::ServiceAccount,
            DnsSubdomain,
        ),
        builtin(
            "",
            "events",
            "Event",
            true,
            &["ev"],
            &[],
            B::Event,
            DnsSubdomain,
        ),
        Resource {
            storage_group: String::new(),
            ..builtin(
                "events.k8s.io",
                "events",
                "Event",
                true,
                &["ev"],
                &[],
                B::EventV1,
                DnsSubdomain,
            )
        },
        builtin(
            "",
            "nodes",
            "Node",
            false,
            &["no"],
            &["status"],
            B::Node,
            DnsSubdomain,
        ),
        builtin(
            "coordination.k8s.io",
            "leases",
            "Lease",
            true,
            &[],
            &[],
            B::Lease,
            DnsSubdomain,
        ),
        builtin(
            "certificates.k8s.io",
            "certificatesigningrequests",
            "CertificateSigningRequest",
            false,
            &["csr"],
            &["status", "approval"],
            B::CertificateSigningRequest,
            PathSegment,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "roles",
            "Role",
            true,
            &[],
            &[],
            B::Role,
            PathSegment,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "clusterroles",
            "ClusterRole",
            false,
            &[],
            &[],
            B::ClusterRole,
            PathSegment,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "rolebindings",
            "RoleBinding",
            true,
            &[],
            &[],
            B::RoleBinding,
            PathSegment,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "clusterrolebindings",
            "ClusterRoleBinding",
            false,
            &[],
            &[],
            B::ClusterRoleBinding,
            PathSegment,
        ),
        builtin(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
            &["status"],
            B::CustomResourceDefinition,
            DnsSubdomain,
        ),
        builtin(
            "authorization.k8s.io",
            "subjectaccessreviews",
            "SubjectAccessReview",
            false,
            &[],
            &[],
            B::SubjectAccessReview,
            DnsSubdomain,
        ),
        builtin(
            "authorization.k8s.io",
            "selfsubjectaccessreviews",
            "SelfSubjectAccessReview",
            false,
            &[],
            &[],
            B::SelfSubjectAccessReview,
            DnsSubdomain,
        ),
        builtin(
            "authorization.k8s.io",
            "selfsubjectrulesreviews",
            "SelfSubjectRulesReview",
            false,
            &[],
            &[],
            B::SelfSubjectRulesReview,
            DnsSubdomain,
        ),
        builtin(
            "authentication.k8s.io",
            "tokenreviews",
            "TokenReview",
            false,
            &[],
            &[],
            B::TokenReview,
            DnsSubdomain,
        ),
        builtin(
            "authentication.k8s.io",
            "selfsubjectreviews",
            "SelfSubjectReview",
            false,
            &[],
            &[],
            B::SelfSubjectReview,
            DnsSubdomain,
        ),
        builtin(
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations",
            "ValidatingWebhookConfiguration",
            false,
            &[],
            &[],
            B::ValidatingWebhookConfiguration,
            DnsSubdomain,
        ),
        builtin(
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations",
            "MutatingWebhookConfiguration",
            false,
            &[],
            &[],
            B::MutatingWebhookConfiguration,
            DnsSubdomain,
        ),
    ]
}

/// The workload kinds a real cluster serves and a hub does not need: Pods, Services, the apps and
/// batch kinds, and admission webhooks. Simulated clusters serve them.
pub fn workload_builtins() -> Vec<Resource> {
    use Builtin as B;
    use NameRule::*;
    let scaled = &["status"][..];
    vec![
        builtin(
            "",
            "pods",
            "Pod",
            true,
            &["po"],
            &["status"],
            B::Pod,
            DnsSubdomain,
        ),
        builtin(
            "",
            "services",
            "Service",
            true,
            &["svc"],
            &["status"],
            B::Service,
            DnsLabel,
        ),
        builtin(
            "",
            "persistentvolumeclaims",
            "PersistentVolumeClaim",
            true,
            &["pvc"],
            &["status"],
            B::PersistentVolumeClaim,
            DnsSubdomain,
        ),
        builtin(
            "apps",
            "deployments",
            "Deployment",
            true,
            &["deploy"],
            scaled,
            B::Deployment,
            DnsSubdomain,
        ),
        builtin(
            "apps",
            "statefulsets",
            "StatefulSet",
            true,
            &["sts"],
            scaled,
            B::StatefulSet,
            DnsSubdomain,
        ),
        builtin(
            "apps",
            "daemonsets",
            "DaemonSet",
            true,
            &["ds"],
            &["status"],
            B::DaemonSet,
            DnsSubdomain,
        ),
        builtin(
            "apps",
            "replicasets",
            "ReplicaSet",
            true,
            &["rs"],
            scaled,
            B::ReplicaSet,
            DnsSubdomain,
        ),
        builtin(
            "batch",
            "jobs",
            "Job",
            true,
            &[],
            &["status"],
            B::Job,
            DnsSubdomain,
        ),
        builtin(
            "batch",
            "cronjobs",
            "CronJob",
            true,
            &["cj"],
            &["status"],
            B::CronJob,
            DnsSubdomain,
        ),
    ]
}

/// The sort key of an API version in kube-apiserver's priority order: GA before beta before
/// alpha, higher numbers first within each (`v2`, `v1`, `v1beta2`, `v1beta1`, `v1alpha1`), and
/// versions of other forms last, in alphabetical order.
pub fn version_priority(v: &str) -> (u8, std::cmp::Reverse<u64>, std::cmp::Reverse<u64>, String) {
    use std::cmp::Reverse;
    let parsed = v.strip_prefix('v').and_then(|rest| {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let major: u64 = rest[..digits].parse().ok()?;
        let tail = &rest[digits..];
        if tail.is_empty() {
            return Some((0, major, 0));
        }
        let (level, minor) = if let Some(m) = tail.strip_prefix("beta") {
            (1, m)
        } else {
            (2, tail.strip_prefix("alpha")?)
        };
        Some((level, major, minor.parse().ok()?))
    });
    match parsed {
        Some((level, major, minor)) => (level, Reverse(major), Reverse(minor), String::new()),
        None => (3, Reverse(0), Reverse(0), v.to_string()),
    }
}

/// The served resources, keyed by (group, version, plural). Built-ins are fixed; custom resources
/// follow the stored CustomResourceDefinitions.
pub struct Registry {
    inner: RwLock<BTreeMap<(String, String, String), Arc<Resource>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// A registry holding the built-in kinds.
    pub fn new() -> Self {
        Self::with(builtins())
    }

    /// A registry holding the built-in kinds and the workload kinds, as a simulated cluster serves.
    pub fn with_workloads() -> Self {
        let mut all = builtins();
        all.extend(workload_builtins());
        Self::with(all)
    }

    fn with(resources: Vec<Resource>) -> Self {
        let mut map = BTreeMap::new();
        for r in resources {
            map.insert(
                (r.group.clone(), r.version.clone(), r.plural.clone()),
                Arc::new(r),
            );
        }
        Registry {
            inner: RwLock::new(map),
        }
    }

    /// Looks up a resource by group, version and plural.
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<Arc<Resource>> {
        self.inner
            .read()
            .expect("registry lock")
            .get(&(group.into(), version.into(), plural.into()))
            .cloned()
    }

    /// Looks up a resource by group, version and kind.
    pub fn by_kind(&self, group: &str, version: &str, kind: &str) -> Option<Arc<Resource>> {
        self.inner
            .read()
            .expect("registry lock")
            .values()
            .find(|r| r.group == group && r.version == version && r.kind == kind)
            .cloned()
    }

    /// Looks up any served version of a resource by group and kind, preferring the storage version.
    pub fn by_group_kind(&self, group: &str, kind: &str) -> Option<Arc<Resource>> {
        let inner = self.inner.read().expect("registry lock");
        let mut found: Vec<&Arc<Resource>> = inner
            .values()
            .filter(|r| r.group == group && r.kind == kind)
            .collect();
        found.sort_by_key(|r| r.version != r.storage_version);
        found.first().map(|r| (*r).clone())
    }

    /// The storage-version resource with storage key `key` (`group/plural`).
    pub fn by_key(&self, key: &str) -> Option<Arc<Resource>> {
        self.storage_resources()
            .into_iter()
            .find(|r| r.key() == key)
    }

    /// Every served resource.
    pub fn all(&self) -> Vec<Arc<Resource>> {
        self.inner
            .read()
            .expect("registry lock")
            .values()
            .cloned()
            .collect()
    }

    /// One entry per stored resource (the storage version), for controllers that walk everything.
    pub fn storage_resources(&self) -> Vec<Arc<Resource>> {
        self.all()
            .into_iter()
            .filter(|r| {
                r.version == r.storage_version && r.group == r.storage_group && !r.virtual_only
            })
            .collect()
    }

    /// Served groups with their versions, in kube-apiserver's version priority: the preferred
    /// version first.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let inner = self.inner.read().expect("registry lock");
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for r in inner.values() {
            match out.iter_mut().find(|(g, _)| *g == r.group) {
                Some((_, versions)) => {
                    if !versions.contains(&r.version) {
                        versions.push(r.version.clone());
                    }
                }
                None => out.push((r.group.clone(), vec![r.version.clone()])),
            }
        }
        for (_, versions) in &mut out {
            versions.sort_by_key(|v| version_priority(v));
        }
        out
    }

    /// Serves (or re-serves) the kinds a CustomResourceDefinition defines. Only established CRDs are
    /// served; the caller decides that.
    pub fn install_crd(&self, crd: &Value) {
        let Some(name) = crd.pointer("/metadata/name").and_then(Value::as_str) else {
            return;
        };
        let entries = crd_resources(crd);
        let mut inner = self.inner.write().expect("registry lock");
        inner.retain(|_, r| !(r.is_custom() && format!("{}.{}", r.plural, r.group) == name));
        for r in entries {
            inner.insert(
                (r.group.clone(), r.version.clone(), r.plural.clone()),
                Arc::new(r),
            );
        }
    }

    /// Stops serving a CustomResourceDefinition's kinds.
    pub fn remove_crd(&self, name: &str) {
        let mut inner = self.inner.write().expect("registry lock");
        inner.retain(|_, r| !(r.is_custom() && format!("{}.{}", r.plural, r.group) == name));
    }
}

pub use garrison_k8s::json::strings;

/// The resources a CRD object defines, one per served version.
pub fn crd_resources(crd: &Value) -> Vec<Resource> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default().to_string();
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or_default().to_string();
    let kind = names["kind"].as_str().unwrap_or_default().to_string();
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    let storage_version = versions
        .iter()
        .find(|v| v["storage"].as_bool() == Some(true))
        .and_then(|v| v["name"].as_str())
        .unwrap_or_default()
        .to_string();
    versions
        .iter()
        .filter(|v| v["served"].as_bool().unwrap_or(false))
        .map(|v| {
            let mut subresources = vec![];
            if v.pointer("/subresources/status").is_some() {
                subresources.push("status");
            }
            let columns = v["additionalPrinterColumns"]
                .as_array()
                .map(|cols| {
                    cols.iter()
                        .map(|c| PrinterColumn {
                            name: c["name"].as_str().unwrap_or_default().into(),
                            type_: c["type"].as_str().unwrap_or("string").into(),
                            json_path: c["jsonPath"].as_str().unwrap_or_default().into(),
                            priority: c["priority"].as_i64().unwrap_or(0),
                            description: c["description"].as_str().unwrap_or_default().into(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            Resource {
                group: group.clone(),
                version: v["name"].as_str().unwrap_or_default().into(),
                storage_version: storage_version.clone(),
                storage_group: group.clone(),
                plural: plural.clone(),
                singular: names["singular"]
                    .as_str()
                    .map(String::from)
                    .unwrap_or_else(|| kind.to_lowercase()),
                kind: kind.clone(),
                list_kind: names["listKind"]
                    .as_str()
                    .map(String::from)
                    .unwrap_or_else(|| format!("{kind}List")),
                namespaced,
                short_names: strings(names.get("shortNames")),
                categories: strings(names.get("categories")),
                subresources,
                builtin: None,
                schema: v.pointer("/schema/openAPIV3Schema").cloned().map(Arc::new),
                columns,
                name_rule: NameRule::DnsSubdomain,
                virtual_only: false,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [
                    {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                     "schema": {"openAPIV3Schema": {"type": "object"}}},
                    {"name": "v0", "served": false, "storage": false}
                ]}
        })
    }

    #[test]
    fn versions_sort_in_kube_apiservers_priority() {
        let mut v = vec![
            "v1alpha1",
            "v1beta1",
            "foo",
            "v1",
            "v2beta1",
            "v1beta2",
            "v2",
            "v11alpha2",
            "v10",
        ];
        v.sort_by_key(|v| version_priority(v));
        assert_eq!(
            v,
            [
                "v10",
                "v2",
                "v1",
                "v2beta1",
                "v1beta2",
                "v1beta1",
                "v11alpha2",
                "v1alpha1",
                "foo"
            ]
        );
    }

    #[test]
    fn a_crd_serves_only_its_served_versions() {
        let reg = Registry::new();
        reg.install_crd(&crd());
        let r = reg.get("example.com", "v1", "widgets").expect("served");
        assert!(r.has_status() && r.namespaced && r.is_custom());
        assert_eq!(r.key(), "example.com/widgets");
        assert!(reg.get("example.com", "v0", "widgets").is_none());
        reg.remove_crd("widgets.example.com");
        assert!(reg.get("example.com", "v1", "widgets").is_none());
    }

    #[test]
    fn built_ins_are_found_by_kind() {
        let reg = Registry::new();
        assert_eq!(
            reg.by_kind("", "v1", "ConfigMap").unwrap().plural,
            "configmaps"
        );
        assert_eq!(
            reg.by_group_kind("rbac.authorization.k8s.io", "Role")
                .unwrap()
                .plural,
            "roles"
        );
    }
}
