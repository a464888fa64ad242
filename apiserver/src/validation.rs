//! Name and metadata validation, and typed validation of the built-in kinds.

use serde_json::Value;

use crate::error::Cause;
use crate::resources::{Builtin, NameRule};

/// Whether `s` is an RFC 1123 DNS label: lowercase alphanumerics and '-', at most 63 characters,
/// starting and ending with an alphanumeric.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Whether `s` is an RFC 1123 DNS subdomain as Kubernetes checks it: dot-separated parts of
/// lowercase alphanumerics and '-', each starting and ending alphanumeric, at most 253 characters
/// in all. Like kube-apiserver, the 63-character limit of DNS labels is not applied to the parts
/// (upstream OCM relies on this for `<64-char hub hash>-<work>` names).
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !p.starts_with('-')
                && !p.ends_with('-')
        })
}

/// Checks a name against a rule, returning what is wrong with it.
pub fn check_name(name: &str, rule: NameRule) -> Result<(), String> {
    if name.is_empty() {
        return Err("name or generateName is required".into());
    }
    match rule {
        NameRule::DnsLabel if !is_dns_label(name) => Err(format!(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (got {name:?})"
        )),
        NameRule::DnsSubdomain if !is_dns_subdomain(name) => Err(format!(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (got {name:?})"
        )),
        NameRule::PathSegment if name == "." || name == ".." => Err(format!("may not be '{name}'")),
        NameRule::PathSegment if name.contains('/') || name.contains('%') => {
            Err(format!("may not contain '/' or '%' (got {name:?})"))
        }
        NameRule::PathSegment if name.len() > 253 => {
            Err("must be no more than 253 characters".into())
        }
        _ => Ok(()),
    }
}

/// Validates labels and annotations, collecting causes.
pub fn check_metadata_maps(meta: &Value, causes: &mut Vec<Cause>) {
    if let Some(labels) = meta.get("labels") {
        match labels.as_object() {
            Some(m) => {
                for (k, v) in m {
                    if !valid_qualified_name(k) {
                        causes.push(Cause::invalid(
                            "metadata.labels",
                            format!("invalid label key {k:?}"),
                        ));
                    }
                    match v.as_str() {
                        Some(s) if valid_label_value(s) => {}
                        _ => causes.push(Cause::invalid(
                            "metadata.labels",
                            format!("invalid label value for {k:?}: must be 63 characters or less, alphanumerics, '-', '_' or '.'"),
                        )),
                    }
                }
            }
            None if labels.is_null() => {}
            None => causes.push(Cause::type_invalid(
                "metadata.labels",
                "must be a map of strings",
            )),
        }
    }
    if let Some(ann) = meta.get("annotations") {
        match ann.as_object() {
            Some(m) => {
                let mut total = 0usize;
                for (k, v) in m {
                    if !valid_qualified_name(k) {
                        causes.push(Cause::invalid(
                            "metadata.annotations",
                            format!("invalid annotation key {k:?}"),
                        ));
                    }
                    match v.as_str() {
                        Some(s) => total += k.len() + s.len(),
                        None => causes.push(Cause::type_invalid(
                            "metadata.annotations",
                            format!("value of {k:?} must be a string"),
                        )),
                    }
                }
                if total > 256 * 1024 {
                    causes.push(Cause::invalid(
                        "metadata.annotations",
                        "Too long: must have at most 262144 bytes",
                    ));
                }
            }
            None if ann.is_null() => {}
            None => causes.push(Cause::type_invalid(
                "metadata.annotations",
                "must be a map of strings",
            )),
        }
    }
    if let Some(f) = meta.get("finalizers") {
        match f.as_array() {
            Some(list) => {
                for item in list {
                    match item.as_str() {
                        Some(s) if valid_qualified_name(s) || s == "kubernetes" => {}
                        _ => causes.push(Cause::invalid(
                            "metadata.finalizers",
                            format!("invalid finalizer {item}"),
                        )),
                    }
                }
            }
            None if f.is_null() => {}
            None => causes.push(Cause::type_invalid(
                "metadata.finalizers",
                "must be a list of strings",
            )),
        }
    }
}

/// A qualified name: an optional DNS-subdomain prefix and '/', then a name of at most 63 characters.
pub fn valid_qualified_name(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if let Some(p) = prefix
        && !is_dns_subdomain(p)
    {
        return false;
    }
    !name.is_empty() && valid_label_value(name)
}

/// A label value: empty, or at most 63 alphanumerics, '-', '_' and '.', starting and ending alphanumeric.
pub fn valid_label_value(v: &str) -> bool {
    v.len() <= 63
        && (v.is_empty()
            || (v
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
                && v.as_bytes()[0].is_ascii_alphanumeric()
                && v.as_bytes()[v.len() - 1].is_ascii_alphanumeric()))
}

fn roundtrip<T: serde::de::DeserializeOwned + serde::Serialize>(
    v: &Value,
) -> Result<Value, String> {
    let typed: T = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(typed).map_err(|e| e.to_string())
}

/// Decodes a built-in object through its typed definition, which checks every field's type and
/// drops fields the kind does not have. Returns the normalised object.
pub fn normalize_builtin(kind: Builtin, v: &Value) -> Result<Value, String> {
    use k8s_openapi::api::*;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
    match kind {
        Builtin::Namespace => roundtrip::<core::v1::Namespace>(v),
        Builtin::Secret => roundtrip::<core::v1::Secret>(v),
        Builtin::ConfigMap => roundtrip::<core::v1::ConfigMap>(v),
        Builtin::ServiceAccount => roundtrip::<core::v1::ServiceAccount>(v),
        Builtin::Event => roundtrip::<core::v1::Event>(v),
        Builtin::EventV1 => roundtrip::<events::v1::Event>(v),
        Builtin::Node => roundtrip::<core::v1::Node>(v),
        Builtin::Lease => roundtrip::<coordination::v1::Lease>(v),
        Builtin::CertificateSigningRequest => {
            roundtrip::<certificates::v1::CertificateSigningRequest>(v)
        }
        Builtin::Role => roundtrip::<rbac::v1::Role>(v),
        Builtin::ClusterRole => roundtrip::<rbac::v1::ClusterRole>(v),
        Builtin::RoleBinding => roundtrip::<rbac::v1::RoleBinding>(v),
        Builtin::ClusterRoleBinding => roundtrip::<rbac::v1::ClusterRoleBinding>(v),
        Builtin::CustomResourceDefinition => roundtrip::<apiext::CustomResourceDefinition>(v),
        Builtin::SubjectAccessReview => roundtrip::<authorization::v1::SubjectAccessReview>(v),
        Builtin::SelfSubjectAccessReview => {
            roundtrip::<authorization::v1::SelfSubjectAccessReview>(v)
        }
        Builtin::SelfSubjectRulesReview => {
            roundtrip::<authorization::v1::SelfSubjectRulesReview>(v)
        }
        Builtin::SelfSubjectReview => roundtrip::<authentication::v1::SelfSubjectReview>(v),
        Builtin::TokenReview => roundtrip::<authentication::v1::TokenReview>(v),
        Builtin::Pod => roundtrip::<core::v1::Pod>(v),
        Builtin::Service => roundtrip::<core::v1::Service>(v),
        Builtin::PersistentVolumeClaim => roundtrip::<core::v1::PersistentVolumeClaim>(v),
        Builtin::Deployment => roundtrip::<apps::v1::Deployment>(v),
        Builtin::StatefulSet => roundtrip::<apps::v1::StatefulSet>(v),
        Builtin::DaemonSet => roundtrip::<apps::v1::DaemonSet>(v),
        Builtin::ReplicaSet => roundtrip::<apps::v1::ReplicaSet>(v),
        Builtin::Job => roundtrip::<batch::v1::Job>(v),
        Builtin::CronJob => roundtrip::<batch::v1::CronJob>(v),
        Builtin::ValidatingWebhookConfiguration => {
            roundtrip::<admissionregistration::v1::ValidatingWebhookConfiguration>(v)
        }
        Builtin::MutatingWebhookConfiguration => {
            roundtrip::<admissionregistration::v1::MutatingWebhookConfiguration>(v)
        }
    }
}

/// Lists the paths present in `input` but missing from `normalized`: the unknown fields.
pub fn unknown_fields(input: &Value, normalized: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk_unknown(input, normalized, String::new(), &mut out);
    out
}

fn walk_unknown(input: &Value, norm: &Value, path: String, out: &mut Vec<String>) {
    match (input, norm) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    Some(nv) => walk_unknown(v, nv, p, out),
                    None if v.is_null() => {}
                    // Empty containers may be dropped by the typed round trip; they carry nothing.
                    None if v.as_object().is_some_and(|m| m.is_empty())
                        || v.as_array().is_some_and(|a| a.is_empty()) => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                walk_unknown(x, y, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Kind-specific checks of built-ins beyond their types, as kube-apiserver's validation does.
pub fn check_builtin(kind: Builtin, obj: &Value, causes: &mut Vec<Cause>) {
    match kind {
        Builtin::Secret | Builtin::ConfigMap => {
            for field in ["data", "binaryData", "stringData"] {
                if let Some(m) = obj.get(field).and_then(Value::as_object) {
                    for k in m.keys() {
                        let ok = !k.is_empty()
                            && k.len() <= 253
                            && k.bytes().all(|b| {
                                b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'
                            })
                            && k != "."
                            && k != "..";
                        if !ok {
                            causes.push(Cause::invalid(format!("{field}[{k}]"), "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"));
                        }
                    }
                }
            }
        }
        Builtin::Role | Builtin::ClusterRole => {
            if let Some(rules) = obj.get("rules").and_then(Value::as_array) {
                for (i, r) in rules.iter().enumerate() {
                    let verbs = r
                        .get("verbs")
                        .and_then(Value::as_array)
                        .map(|a| a.len())
                        .unwrap_or(0);
                    if verbs == 0 {
                        causes.push(Cause::required(format!("rules[{i}].verbs")));
                    }
                    let has_res = r
                        .get("resources")
                        .and_then(Value::as_array)
                        .is_some_and(|a| !a.is_empty());
                    let has_urls = r
                        .get("nonResourceURLs")
                        .and_then(Value::as_array)
                        .is_some_and(|a| !a.is_empty());
                    if has_res && has_urls {
                        causes.push(Cause::invalid(
                            format!("rules[{i}].nonResourceURLs"),
                            "rules cannot apply to both regular resources and non-resource URLs",
                        ));
                    }
                    if kind == Builtin::Role && has_urls {
                        causes.push(Cause::invalid(
                            format!("rules[{i}].nonResourceURLs"),
                            "namespaced rules cannot apply to non-resource URLs",
                        ));
                    }
                    if !has_res && !has_urls && kind == Builtin::Role {
                        causes.push(Cause::required(format!("rules[{i}].resources")));
                    }
                    if has_res && r.get("apiGroups").and_then(Value::as_array).is_none() {
                        causes.push(Cause::required(format!("rules[{i}].apiGroups")));
                    }
                }
            }
        }
        Builtin::RoleBinding | Builtin::ClusterRoleBinding => {
            let rr = &obj["roleRef"];
            if rr["apiGroup"].as_str() != Some("rbac.authorization.k8s.io") {
                causes.push(Cause::not_supported(
                    "roleRef.apiGroup",
                    "supported values: \"rbac.authorization.k8s.io\"",
                ));
            }
            match rr["kind"].as_str() {
                Some("ClusterRole") => {}
                Some("Role") if kind == Builtin::RoleBinding => {}
                _ => causes.push(Cause::not_supported(
                    "roleRef.kind",
                    if kind == Builtin::RoleBinding {
                        "supported values: \"Role\", \"ClusterRole\""
                    } else {
                        "supported values: \"ClusterRole\""
                    },
                )),
            }
            if rr["name"].as_str().is_none_or(str::is_empty) {
                causes.push(Cause::required("roleRef.name"));
            }
            if let Some(subjects) = obj.get("subjects").and_then(Value::as_array) {
                for (i, s) in subjects.iter().enumerate() {
                    match s["kind"].as_str() {
                        Some("User") | Some("Group") => {}
                        Some("ServiceAccount") => {
                            if s["namespace"].as_str().is_none_or(str::is_empty)
                                && kind == Builtin::ClusterRoleBinding
                            {
                                causes.push(Cause::required(format!("subjects[{i}].namespace")));
                            }
                        }
                        _ => causes.push(Cause::not_supported(
                            format!("subjects[{i}].kind"),
                            "supported values: \"ServiceAccount\", \"User\", \"Group\"",
                        )),
                    }
                    if s["name"].as_str().is_none_or(str::is_empty) {
                        causes.push(Cause::required(format!("subjects[{i}].name")));
                    }
                }
            }
        }
        Builtin::CertificateSigningRequest => {
            let spec = &obj["spec"];
            if spec["signerName"].as_str().is_none_or(str::is_empty) {
                causes.push(Cause::required("spec.signerName"));
            }
            if spec["request"].as_str().is_none_or(str::is_empty) {
                causes.push(Cause::required("spec.request"));
            }
            if let Some(s) = spec["expirationSeconds"].as_i64()
                && s < 600
            {
                causes.push(Cause::invalid(
                    "spec.expirationSeconds",
                    "may not specify a duration less than 600 seconds (10 minutes)",
                ));
            }
        }
        Builtin::Lease => {
            if let Some(d) = obj
                .pointer("/spec/leaseDurationSeconds")
                .and_then(Value::as_i64)
                && d <= 0
            {
                causes.push(Cause::invalid(
                    "spec.leaseDurationSeconds",
                    "must be greater than 0",
                ));
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dns_names_are_checked_like_kubernetes() {
        assert!(is_dns_subdomain("a.b-c.d"));
        assert!(!is_dns_subdomain("A"));
        assert!(!is_dns_subdomain("a..b"));
        assert!(!is_dns_subdomain("-a"));
        assert!(!is_dns_label("a.b"));
        assert!(!is_dns_label(&"a".repeat(64)));
        assert!(
            is_dns_subdomain(&format!("{}-work", "a".repeat(64))),
            "parts may exceed 63 characters"
        );
        assert!(!is_dns_subdomain(&"a".repeat(254)));
        assert!(
            check_name(
                "open-cluster-management:managedcluster:c1",
                NameRule::PathSegment
            )
            .is_ok()
        );
        assert!(check_name("a/b", NameRule::PathSegment).is_err());
        assert!(check_name("..", NameRule::PathSegment).is_err());
    }

    #[test]
    fn typed_round_trip_finds_unknown_fields() {
        let input = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}, "bogus": 1});
        let norm = normalize_builtin(Builtin::ConfigMap, &input).unwrap();
        assert_eq!(unknown_fields(&input, &norm), vec!["bogus".to_string()]);
    }

    #[test]
    fn typed_round_trip_rejects_wrong_types() {
        let input = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": 1}});
        assert!(normalize_builtin(Builtin::ConfigMap, &input).is_err());
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a"}, "data": {"k": "not base64!"}});
        assert!(normalize_builtin(Builtin::Secret, &secret).is_err());
    }

    #[test]
    fn a_binding_to_a_role_kind_it_cannot_reference_is_invalid() {
        let crb = json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "x"}, "subjects": [{"kind": "Robot", "name": "r"}]});
        let mut causes = vec![];
        check_builtin(Builtin::ClusterRoleBinding, &crb, &mut causes);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, vec!["roleRef.kind", "subjects[0].kind"]);
    }

    #[test]
    fn label_values_follow_kubernetes_rules() {
        let mut causes = vec![];
        check_metadata_maps(
            &json!({"labels": {"ok": "fine", "bad key": "x", "k": "-bad"}}),
            &mut causes,
        );
        assert_eq!(causes.len(), 2);
    }
}
