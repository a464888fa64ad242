//! The generated CRDs carry upstream's names, scopes, short names, printer columns,
//! subresources and schema defaults.

use garrison_api::crds;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{Value, json};

struct Expected {
    name: &'static str,
    kind: &'static str,
    version: &'static str,
    scope: &'static str,
    short_names: &'static [&'static str],
    status: bool,
}

const EXPECTED: &[Expected] = &[
    Expected {
        name: "managedclusters.cluster.open-cluster-management.io",
        kind: "ManagedCluster",
        version: "v1",
        scope: "Cluster",
        short_names: &["mcl", "mcls"],
        status: true,
    },
    Expected {
        name: "managedclustersets.cluster.open-cluster-management.io",
        kind: "ManagedClusterSet",
        version: "v1beta2",
        scope: "Cluster",
        short_names: &["mclset", "mclsets"],
        status: true,
    },
    Expected {
        name: "managedclustersetbindings.cluster.open-cluster-management.io",
        kind: "ManagedClusterSetBinding",
        version: "v1beta2",
        scope: "Namespaced",
        short_names: &["mclsetbinding", "mclsetbindings"],
        status: true,
    },
    Expected {
        name: "placements.cluster.open-cluster-management.io",
        kind: "Placement",
        version: "v1beta1",
        scope: "Namespaced",
        short_names: &[],
        status: true,
    },
    Expected {
        name: "placementdecisions.cluster.open-cluster-management.io",
        kind: "PlacementDecision",
        version: "v1beta1",
        scope: "Namespaced",
        short_names: &[],
        status: true,
    },
    Expected {
        name: "addonplacementscores.cluster.open-cluster-management.io",
        kind: "AddOnPlacementScore",
        version: "v1alpha1",
        scope: "Namespaced",
        short_names: &[],
        status: true,
    },
    Expected {
        name: "clusterclaims.cluster.open-cluster-management.io",
        kind: "ClusterClaim",
        version: "v1alpha1",
        scope: "Cluster",
        short_names: &[],
        status: false,
    },
    Expected {
        name: "manifestworks.work.open-cluster-management.io",
        kind: "ManifestWork",
        version: "v1",
        scope: "Namespaced",
        short_names: &[],
        status: true,
    },
    Expected {
        name: "appliedmanifestworks.work.open-cluster-management.io",
        kind: "AppliedManifestWork",
        version: "v1",
        scope: "Cluster",
        short_names: &[],
        status: true,
    },
    Expected {
        name: "manifestworkreplicasets.work.open-cluster-management.io",
        kind: "ManifestWorkReplicaSet",
        version: "v1alpha1",
        scope: "Namespaced",
        short_names: &["mwrs"],
        status: true,
    },
    Expected {
        name: "clustermanagementaddons.addon.open-cluster-management.io",
        kind: "ClusterManagementAddOn",
        version: "v1alpha1",
        scope: "Cluster",
        short_names: &["cma", "cmas"],
        status: true,
    },
    Expected {
        name: "managedclusteraddons.addon.open-cluster-management.io",
        kind: "ManagedClusterAddOn",
        version: "v1alpha1",
        scope: "Namespaced",
        short_names: &["mca", "mcas"],
        status: true,
    },
    Expected {
        name: "addontemplates.addon.open-cluster-management.io",
        kind: "AddOnTemplate",
        version: "v1alpha1",
        scope: "Cluster",
        short_names: &[],
        status: false,
    },
    Expected {
        name: "addondeploymentconfigs.addon.open-cluster-management.io",
        kind: "AddOnDeploymentConfig",
        version: "v1alpha1",
        scope: "Namespaced",
        short_names: &[],
        status: false,
    },
    Expected {
        name: "clusterpermissions.rbac.open-cluster-management.io",
        kind: "ClusterPermission",
        version: "v1alpha1",
        scope: "Namespaced",
        short_names: &[],
        status: true,
    },
    Expected {
        name: "managedserviceaccounts.authentication.open-cluster-management.io",
        kind: "ManagedServiceAccount",
        version: "v1beta1",
        scope: "Namespaced",
        short_names: &[],
        status: true,
    },
    Expected {
        name: "policies.policy.open-cluster-management.io",
        kind: "Policy",
        version: "v1",
        scope: "Namespaced",
        short_names: &["plc"],
        status: true,
    },
    Expected {
        name: "placementbindings.policy.open-cluster-management.io",
        kind: "PlacementBinding",
        version: "v1",
        scope: "Namespaced",
        short_names: &["pb"],
        status: true,
    },
    Expected {
        name: "policyreports.wgpolicyk8s.io",
        kind: "PolicyReport",
        version: "v1alpha2",
        scope: "Namespaced",
        short_names: &["polr"],
        status: false,
    },
    Expected {
        name: "policysets.policy.open-cluster-management.io",
        kind: "PolicySet",
        version: "v1beta1",
        scope: "Namespaced",
        short_names: &["plcset"],
        status: true,
    },
];

fn crd(kind: &str) -> CustomResourceDefinition {
    crds::all()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("no CRD for {kind}"))
}

fn schema(kind: &str) -> Value {
    let crd = crd(kind);
    let schema = crd.spec.versions[0]
        .schema
        .clone()
        .and_then(|s| s.open_api_v3_schema)
        .expect("a schema");
    serde_json::to_value(schema).unwrap()
}

/// The schema node at a dotted path of property names (`[]` steps into array items).
fn at(schema: &Value, path: &str) -> Value {
    path.split('.').fold(schema.clone(), |node, step| {
        if step == "[]" {
            node["items"].clone()
        } else {
            node["properties"][step].clone()
        }
    })
}

#[test]
fn every_kind_has_upstreams_name_version_scope_short_names_and_status() {
    let all = crds::all();
    assert_eq!(all.len(), EXPECTED.len());
    for expected in EXPECTED {
        let crd = crd(expected.kind);
        assert_eq!(crd.metadata.name.as_deref(), Some(expected.name));
        assert_eq!(crd.spec.scope, expected.scope, "{}", expected.kind);
        let short_names = crd.spec.names.short_names.clone().unwrap_or_default();
        assert_eq!(short_names, expected.short_names, "{}", expected.kind);
        assert_eq!(
            crd.spec.names.list_kind.as_deref(),
            Some(format!("{}List", expected.kind).as_str())
        );
        // Upstream serves the add-on kinds at v1beta1 too, stored at v1alpha1.
        let also_served: Vec<&str> = crd.spec.versions[1..]
            .iter()
            .inspect(|v| assert!(v.served && !v.storage, "{}", expected.kind))
            .map(|v| v.name.as_str())
            .collect();
        // Upstream's ManagedServiceAccount is stored at v1beta1 and still served at v1alpha1.
        let expected_also: &[&str] = match expected.kind {
            "ManagedClusterAddOn" | "ClusterManagementAddOn" => &["v1beta1"],
            "ManagedServiceAccount" => &["v1alpha1"],
            _ => &[],
        };
        assert_eq!(also_served, expected_also, "{}", expected.kind);
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, expected.version, "{}", expected.kind);
        assert!(version.served && version.storage);
        let has_status = version
            .subresources
            .as_ref()
            .is_some_and(|s| s.status.is_some());
        assert_eq!(has_status, expected.status, "{}", expected.kind);
    }
}

#[test]
fn printer_columns_match_upstream() {
    let columns = |kind: &str| -> Vec<(String, String, String)> {
        crd(kind).spec.versions[0]
            .additional_printer_columns
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.name, c.type_, c.json_path))
            .collect()
    };
    let owned = |list: &[(&str, &str, &str)]| -> Vec<(String, String, String)> {
        list.iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect()
    };
    assert_eq!(
        columns("ManagedCluster"),
        owned(&[
            ("Hub Accepted", "boolean", ".spec.hubAcceptsClient"),
            (
                "Managed Cluster URLs",
                "string",
                ".spec.managedClusterClientConfigs[*].url"
            ),
            (
                "Joined",
                "string",
                ".status.conditions[?(@.type==\"ManagedClusterJoined\")].status"
            ),
            (
                "Available",
                "string",
                ".status.conditions[?(@.type==\"ManagedClusterConditionAvailable\")].status"
            ),
            ("Age", "date", ".metadata.creationTimestamp"),
        ])
    );
    assert_eq!(
        columns("Placement"),
        owned(&[
            (
                "Succeeded",
                "string",
                ".status.conditions[?(@.type==\"PlacementSatisfied\")].status"
            ),
            (
                "Reason",
                "string",
                ".status.conditions[?(@.type==\"PlacementSatisfied\")].reason"
            ),
            (
                "SelectedClusters",
                "integer",
                ".status.numberOfSelectedClusters"
            ),
        ])
    );
    assert_eq!(columns("ManagedClusterSet").len(), 2);
    assert_eq!(columns("ManifestWorkReplicaSet").len(), 4);
    assert_eq!(columns("ClusterManagementAddOn").len(), 2);
    assert_eq!(columns("ManagedClusterAddOn").len(), 3);
    assert_eq!(columns("AddOnTemplate").len(), 1);
    assert!(columns("ManifestWork").is_empty());
}

#[test]
fn schema_defaults_match_upstream() {
    let cases: &[(&str, &str, Value)] = &[
        ("ManagedCluster", "spec.leaseDurationSeconds", json!(60)),
        (
            "ManagedClusterSet",
            "spec",
            json!({"clusterSelector": {"selectorType": "ExclusiveClusterSetLabel"}}),
        ),
        (
            "ManagedClusterSet",
            "spec.clusterSelector.selectorType",
            json!("ExclusiveClusterSetLabel"),
        ),
        (
            "Placement",
            "spec.prioritizerPolicy.mode",
            json!("Additive"),
        ),
        (
            "Placement",
            "spec.prioritizerPolicy.configurations.[].weight",
            json!(1),
        ),
        (
            "Placement",
            "spec.prioritizerPolicy.configurations.[].scoreCoordinate.type",
            json!("BuiltIn"),
        ),
        ("Placement", "spec.tolerations.[].operator", json!("Equal")),
        (
            "Placement",
            "spec.decisionStrategy.groupStrategy.clustersPerDecisionGroup",
            json!("100%"),
        ),
        (
            "ManifestWork",
            "spec.deleteOption.propagationPolicy",
            json!("Foreground"),
        ),
        (
            "ManifestWork",
            "spec.manifestConfigs.[].updateStrategy.type",
            json!("Update"),
        ),
        (
            "ManifestWork",
            "spec.manifestConfigs.[].updateStrategy.serverSideApply.fieldManager",
            json!("work-agent"),
        ),
        (
            "ManifestWorkReplicaSet",
            "spec.cascadeDeletionPolicy",
            json!("Background"),
        ),
        (
            "ManifestWorkReplicaSet",
            "spec.placementRefs.[].rolloutStrategy",
            json!({"type": "All", "all": {"progressDeadline": "None"}}),
        ),
        (
            "ManifestWorkReplicaSet",
            "spec.placementRefs.[].rolloutStrategy.progressive.maxFailures",
            json!("0"),
        ),
        (
            "ClusterManagementAddOn",
            "spec.installStrategy",
            json!({"type": "Manual"}),
        ),
        (
            "ClusterManagementAddOn",
            "spec.installStrategy.placements.[].rolloutStrategy",
            json!({"type": "All"}),
        ),
        (
            "ManagedClusterAddOn",
            "spec.installNamespace",
            json!("open-cluster-management-agent-addon"),
        ),
        (
            "AddOnDeploymentConfig",
            "spec.agentInstallNamespace",
            json!("open-cluster-management-agent-addon"),
        ),
    ];
    for (kind, path, expected) in cases {
        let node = at(&schema(kind), path);
        assert_eq!(node["default"], *expected, "default of {kind} {path}");
    }
}

#[test]
fn enums_carry_upstreams_values() {
    let cases: &[(&str, &str, Value)] = &[
        (
            "ManagedCluster",
            "spec.taints.[].effect",
            json!(["NoSelect", "PreferNoSelect", "NoSelectIfNew"]),
        ),
        (
            "ManagedClusterSet",
            "spec.clusterSelector.selectorType",
            json!(["ExclusiveClusterSetLabel", "LabelSelector"]),
        ),
        (
            "ManifestWork",
            "spec.deleteOption.propagationPolicy",
            json!(["Foreground", "Orphan", "SelectivelyOrphan"]),
        ),
        (
            "ManifestWork",
            "spec.manifestConfigs.[].updateStrategy.type",
            json!(["Update", "CreateOnly", "ServerSideApply", "ReadOnly"]),
        ),
        (
            "ManifestWork",
            "spec.manifestConfigs.[].feedbackRules.[].type",
            json!(["WellKnownStatus", "JSONPaths"]),
        ),
        (
            "ManifestWork",
            "spec.manifestConfigs.[].conditionRules.[].type",
            json!(["WellKnownConditions", "CEL"]),
        ),
        (
            "ManifestWork",
            "status.resourceStatus.manifests.[].statusFeedback.values.[].fieldValue.type",
            json!(["Integer", "String", "Boolean", "JsonRaw"]),
        ),
        (
            "ManifestWorkReplicaSet",
            "spec.placementRefs.[].rolloutStrategy.type",
            json!(["All", "Progressive", "ProgressivePerGroup"]),
        ),
        (
            "ManagedClusterAddOn",
            "status.healthCheck.mode",
            json!(["Lease", "Customized"]),
        ),
    ];
    for (kind, path, expected) in cases {
        let node = at(&schema(kind), path);
        assert_eq!(node["enum"], *expected, "enum of {kind} {path}");
    }
}

#[test]
fn the_cluster_set_binding_requires_its_name_to_match_the_cluster_set() {
    let rules = &schema("ManagedClusterSetBinding")["x-kubernetes-validations"];
    assert_eq!(
        rules[0]["rule"],
        "self.metadata.name == self.spec.clusterSet"
    );
}

#[test]
fn int_or_string_fields_are_marked_as_such() {
    let node = at(
        &schema("Placement"),
        "spec.decisionStrategy.groupStrategy.clustersPerDecisionGroup",
    );
    assert_eq!(node["x-kubernetes-int-or-string"], true);
    let node = at(&schema("ManagedCluster"), "status.capacity");
    assert_eq!(
        node["additionalProperties"]["x-kubernetes-int-or-string"],
        true
    );
}
