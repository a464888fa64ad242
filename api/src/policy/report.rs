//! `wgpolicyk8s.io/v1alpha2` PolicyReport, as the Kubernetes Policy WG defines it: the hub keeps
//! one per cluster (`<cluster>-policyreport` in the cluster's namespace) so that tools reading
//! PolicyReports (Policy Reporter) show Garrison's compliance.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::json;

/// The API group.
pub const GROUP: &str = "wgpolicyk8s.io";
/// The version served.
pub const VERSION: &str = "v1alpha2";

/// The PolicyReport CRD, written by hand: the kind has no `spec`.
pub fn policy_report_crd() -> CustomResourceDefinition {
    let object_ref = json!({"type": "object", "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "name": {"type": "string"},
        "namespace": {"type": "string"}, "uid": {"type": "string"},
        "resourceVersion": {"type": "string"}, "fieldPath": {"type": "string"}}});
    let selector = json!({"type": "object", "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {"type": "array", "items": {"type": "object",
            "required": ["key", "operator"], "properties": {
                "key": {"type": "string"}, "operator": {"type": "string"},
                "values": {"type": "array", "items": {"type": "string"}}}}}}});
    let result = json!({"type": "object", "required": ["policy"], "properties": {
        "source": {"type": "string"},
        "policy": {"type": "string"},
        "rule": {"type": "string"},
        "category": {"type": "string"},
        "severity": {"type": "string", "enum": ["critical", "high", "low", "medium", "info"]},
        "timestamp": {"type": "object", "properties": {
            "seconds": {"type": "integer", "format": "int64"},
            "nanos": {"type": "integer", "format": "int32"}}},
        "result": {"type": "string", "enum": ["pass", "fail", "warn", "error", "skip"]},
        "scored": {"type": "boolean"},
        "resources": {"type": "array", "items": object_ref},
        "resourceSelector": selector,
        "message": {"type": "string"},
        "properties": {"type": "object", "additionalProperties": {"type": "string"}},
    }});
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "policyreports.wgpolicyk8s.io"},
        "spec": {
            "group": GROUP,
            "names": {"kind": "PolicyReport", "listKind": "PolicyReportList",
                "plural": "policyreports", "singular": "policyreport", "shortNames": ["polr"]},
            "scope": "Namespaced",
            "versions": [{"name": VERSION, "served": true, "storage": true,
                "additionalPrinterColumns": [
                    {"name": "Pass", "type": "integer", "jsonPath": ".summary.pass"},
                    {"name": "Fail", "type": "integer", "jsonPath": ".summary.fail"},
                    {"name": "Warn", "type": "integer", "jsonPath": ".summary.warn"},
                    {"name": "Error", "type": "integer", "jsonPath": ".summary.error"},
                    {"name": "Skip", "type": "integer", "jsonPath": ".summary.skip"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}],
                "schema": {"openAPIV3Schema": {
                    "description": "Results of policies evaluated for a scope.",
                    "type": "object",
                    "properties": {
                        "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "scope": object_ref,
                        "scopeSelector": selector,
                        "summary": {"type": "object", "properties": {
                            "pass": {"type": "integer"}, "fail": {"type": "integer"},
                            "warn": {"type": "integer"}, "error": {"type": "integer"},
                            "skip": {"type": "integer"}}},
                        "results": {"type": "array", "items": result},
                    },
                }},
            }],
        },
    }))
    .expect("the PolicyReport CRD is a CRD")
}
