//! Admission: what the server does to an object between decoding and storage, per kind.
//!
//! Decoding checks types (built-ins through their typed definitions, custom resources through
//! their CRD's structural schema), prunes or refuses unknown fields, and applies defaults. The
//! kind-specific rules follow kube-apiserver: namespaces get the `kubernetes` finalizer, CSRs are
//! stamped with their requester, Secrets fold `stringData` into `data`, CRDs are checked and
//! marked established, and RBAC objects cannot grant more than their author holds.

use base64::Engine;
use serde_json::{Value, json};

use crate::auth::UserInfo;
use crate::auth::rbac::{Authorizer, Rule, covers};
use crate::error::{ApiError, ApiResult, Cause};
use crate::resources::{Builtin, Resource};
use crate::schema;
use crate::validation;

/// How to treat unknown fields (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them and warn.
    Warn,
    /// Refuse the request.
    Strict,
}

impl FieldValidation {
    /// Parses the query parameter; absent means `Warn`, as kube-apiserver defaults.
    pub fn parse(v: Option<&str>) -> ApiResult<Self> {
        match v {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other:?}: supported values are Ignore, Warn, Strict"
            ))),
        }
    }
}

/// Decodes an object of `res`: checks types, handles unknown fields, applies defaults, and
/// validates. `old` is the object an update replaces, `None` on create: a custom resource's
/// values that the update leaves as they were are not held to its CRD's schema again
/// (kube-apiserver's validation ratcheting, `schema::validate_update`). Returns the object to
/// store and any warnings.
pub fn decode(
    res: &Resource,
    input: Value,
    fv: FieldValidation,
    old: Option<&Value>,
) -> ApiResult<(Value, Vec<String>)> {
    let name = input
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut warnings = Vec::new();
    let (mut obj, unknown) = match (res.builtin, &res.schema) {
        (Some(b), _) => {
            let mut input = input;
            if b == Builtin::Secret {
                fold_string_data(&mut input)?;
            }
            let norm = validation::normalize_builtin(b, &input).map_err(|e| {
                ApiError::bad_request(format!(
                    "{} in version \"{}\" cannot be handled as a {}: {e}",
                    res.kind, res.version, res.kind
                ))
            })?;
            let unknown = validation::unknown_fields(&input, &norm);
            (norm, unknown)
        }
        (None, Some(sch)) => {
            let mut obj = input;
            let mut unknown = Vec::new();
            // The root's apiVersion, kind and metadata are not part of the CRD schema.
            if let Some(map) = obj.as_object_mut() {
                map.retain(|k, v| {
                    !v.is_null()
                        || sch
                            .get("properties")
                            .and_then(|p| p.get(k))
                            .is_none_or(schema::nullable)
                });
                for (k, v) in map.iter_mut() {
                    if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                        continue;
                    }
                    match sch.get("properties").and_then(|p| p.get(k)) {
                        Some(child) => schema::prune(child, v, k, &mut unknown),
                        None if sch
                            .get("x-kubernetes-preserve-unknown-fields")
                            .and_then(Value::as_bool)
                            == Some(true) => {}
                        None => unknown.push(k.clone()),
                    }
                }
                let top_unknown: Vec<String> = unknown
                    .iter()
                    .filter(|u| !u.contains('.') && !u.contains('['))
                    .cloned()
                    .collect();
                for k in top_unknown {
                    map.remove(&k);
                }
            }
            schema::apply_defaults(sch, &mut obj);
            let mut causes = Vec::new();
            if let Some(map) = obj.as_object() {
                for (k, v) in map {
                    if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                        continue;
                    }
                    if let Some(child) = sch.get("properties").and_then(|p| p.get(k)) {
                        let was = old.and_then(|o| o.get(k));
                        schema::validate_update(child, v, was, k, &mut causes);
                    }
                }
                if let Some(req) = sch.get("required").and_then(Value::as_array) {
                    for r in req.iter().filter_map(Value::as_str) {
                        if !map.contains_key(r) {
                            causes.push(Cause::required(r));
                        }
                    }
                }
            }
            if !causes.is_empty() {
                return Err(ApiError::invalid(&res.group, &res.kind, &name, causes));
            }
            (obj, unknown)
        }
        (None, None) => (input, vec![]),
    };
    if !unknown.is_empty() {
        match fv {
            FieldValidation::Strict => {
                let listed: Vec<String> = unknown
                    .iter()
                    .map(|u| format!("unknown field \"{u}\""))
                    .collect();
                return Err(ApiError::bad_request(format!(
                    "strict decoding error: {}",
                    listed.join(", ")
                )));
            }
            FieldValidation::Warn => {
                warnings.extend(unknown.iter().map(|u| format!("unknown field \"{u}\"")))
            }
            FieldValidation::Ignore => {}
        }
    }
    let mut causes = Vec::new();
    if let Some(meta) = obj.get("metadata") {
        validation::check_metadata_maps(meta, &mut causes);
    }
    if let Some(b) = res.builtin {
        validation::check_builtin(b, &obj, &mut causes);
        if b == Builtin::CustomResourceDefinition {
            check_crd(&obj, &mut causes);
        }
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid(&res.group, &res.kind, &name, causes));
    }
    if obj.get("metadata").is_none()
        && let Some(m) = obj.as_object_mut()
    {
        m.insert("metadata".into(), json!({}));
    }
    Ok((obj, warnings))
}

/// Folds a Secret's write-only `stringData` into `data`, as kube-apiserver does.
fn fold_string_data(obj: &mut Value) -> ApiResult<()> {
    let Some(map) = obj.as_object_mut() else {
        return Ok(());
    };
    let Some(sd) = map.remove("stringData") else {
        return Ok(());
    };
    let Value::Object(sd) = sd else {
        return Err(ApiError::bad_request("stringData must be a map of strings"));
    };
    let data = map.entry("data").or_insert_with(|| json!({}));
    if !data.is_object() {
        *data = json!({});
    }
    for (k, v) in sd {
        let s = v
            .as_str()
            .ok_or_else(|| ApiError::bad_request(format!("stringData[{k}] must be a string")))?;
        data[&k] = json!(base64::engine::general_purpose::STANDARD.encode(s));
    }
    Ok(())
}

fn check_crd(crd: &Value, causes: &mut Vec<Cause>) {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let plural = spec
        .pointer("/names/plural")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !group.contains('.') || !validation::is_dns_subdomain(group) {
        causes.push(Cause::invalid(
            "spec.group",
            "should be a domain with at least one dot",
        ));
    }
    if name != format!("{plural}.{group}") {
        causes.push(Cause::invalid(
            "metadata.name",
            format!("must be spec.names.plural+\".\"+spec.group (expected {plural}.{group})"),
        ));
    }
    if !validation::is_dns_label(plural) {
        causes.push(Cause::invalid(
            "spec.names.plural",
            "must be a lowercase DNS label",
        ));
    }
    if spec
        .pointer("/names/kind")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        causes.push(Cause::required("spec.names.kind"));
    }
    if !matches!(spec["scope"].as_str(), Some("Namespaced") | Some("Cluster")) {
        causes.push(Cause::not_supported(
            "spec.scope",
            "supported values: \"Cluster\", \"Namespaced\"",
        ));
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        causes.push(Cause::required("spec.versions"));
    }
    let storage = versions
        .iter()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .count();
    if storage != 1 && !versions.is_empty() {
        causes.push(Cause::invalid(
            "spec.versions",
            "must have exactly one version marked as storage version",
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        match v.pointer("/schema/openAPIV3Schema") {
            Some(s) => {
                let mut bad = vec![];
                schema::non_structural_nodes(s, "", &mut bad);
                for b in bad {
                    causes.push(Cause::required(format!(
                        "spec.versions[{i}].schema.openAPIV3Schema.{b}.type"
                    )));
                }
            }
            None => causes.push(Cause::required(format!(
                "spec.versions[{i}].schema.openAPIV3Schema"
            ))),
        }
    }
}

/// Kind-specific preparation of a new object, before it is stored.
pub fn prepare_create(
    res: &Resource,
    user: &UserInfo,
    authz: &Authorizer,
    namespace: &str,
    obj: &mut Value,
) -> ApiResult<()> {
    let Some(b) = res.builtin else {
        return Ok(());
    };
    match b {
        Builtin::Namespace => {
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
        }
        Builtin::Secret if obj.get("type").is_none_or(|t| t.is_null() || t == "") => {
            obj["type"] = json!("Opaque");
        }
        Builtin::CertificateSigningRequest => {
            // The requester is who created the CSR, whatever the body claims.
            let spec = obj["spec"]
                .as_object_mut()
                .ok_or_else(|| ApiError::bad_request("spec is required"))?;
            spec.insert("username".into(), json!(user.name));
            spec.insert("groups".into(), json!(user.groups));
            spec.remove("uid");
            spec.remove("extra");
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
        }
        Builtin::CustomResourceDefinition => {
            let names = obj["spec"]["names"].clone();
            let meta = obj["metadata"].as_object_mut().expect("metadata");
            let fins = meta.entry("finalizers").or_insert_with(|| json!([]));
            if let Some(list) = fins.as_array_mut()
                && !list.iter().any(|f| f == CRD_CLEANUP_FINALIZER)
            {
                list.push(json!(CRD_CLEANUP_FINALIZER));
            }
            establish_crd(obj, names);
        }
        Builtin::Role | Builtin::ClusterRole => {
            check_role_escalation(b, user, authz, namespace, obj, None, res)?
        }
        Builtin::RoleBinding | Builtin::ClusterRoleBinding => {
            check_binding_escalation(b, user, authz, namespace, obj, res)?
        }
        _ => {}
    }
    Ok(())
}

/// Finalizer that holds a CRD until all its custom resources are gone.
pub const CRD_CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

fn establish_crd(obj: &mut Value, names: Value) {
    let now = now_rfc3339();
    let mut accepted = names.clone();
    if accepted.get("singular").is_none()
        && let Some(k) = names.get("kind").and_then(Value::as_str)
    {
        accepted["singular"] = json!(k.to_lowercase());
    }
    if accepted.get("listKind").is_none()
        && let Some(k) = names.get("kind").and_then(Value::as_str)
    {
        accepted["listKind"] = json!(format!("{k}List"));
    }
    let stored: Vec<Value> = obj["spec"]["versions"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .filter(|v| v["storage"].as_bool() == Some(true))
                .map(|v| v["name"].clone())
                .collect()
        })
        .unwrap_or_default();
    obj["status"] = json!({
        "acceptedNames": accepted,
        "storedVersions": stored,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
        ]
    });
}

/// Kind-specific checks of an update, before it is stored.
pub fn prepare_update(
    res: &Resource,
    user: &UserInfo,
    authz: &Authorizer,
    namespace: &str,
    old: &Value,
    new: &mut Value,
) -> ApiResult<()> {
    let Some(b) = res.builtin else {
        return Ok(());
    };
    match b {
        Builtin::Namespace => {
            // spec.finalizers changes only through the finalize subresource.
            new["spec"] = old["spec"].clone();
            if new.get("status").is_none_or(Value::is_null) {
                new["status"] = old["status"].clone();
            }
        }
        Builtin::CertificateSigningRequest if new["spec"] != old["spec"] => {
            let name = old
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            return Err(ApiError::invalid(
                &res.group,
                &res.kind,
                name,
                vec![Cause::forbidden("spec", "field is immutable")],
            ));
        }
        Builtin::CustomResourceDefinition => {
            if new.pointer("/spec/group") != old.pointer("/spec/group")
                || new.pointer("/spec/names/plural") != old.pointer("/spec/names/plural")
            {
                let name = old
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                return Err(ApiError::invalid(
                    &res.group,
                    &res.kind,
                    name,
                    vec![Cause::forbidden("spec.names.plural", "field is immutable")],
                ));
            }
            let names = new["spec"]["names"].clone();
            establish_crd(new, names);
            // Keep every version ever stored, as kube-apiserver does.
            if let Some(old_stored) = old
                .pointer("/status/storedVersions")
                .and_then(Value::as_array)
            {
                let mut stored = new["status"]["storedVersions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                for v in old_stored {
                    if !stored.contains(v) {
                        stored.push(v.clone());
                    }
                }
                new["status"]["storedVersions"] = json!(stored);
            }
            new["status"]["conditions"] = old
                .pointer("/status/conditions")
                .cloned()
                .unwrap_or_else(|| new["status"]["conditions"].clone());
        }
        Builtin::Role | Builtin::ClusterRole
            if new.get("rules") != old.get("rules")
                || new.get("aggregationRule") != old.get("aggregationRule") =>
        {
            check_role_escalation(b, user, authz, namespace, new, Some(old), res)?;
        }
        Builtin::RoleBinding | Builtin::ClusterRoleBinding => {
            if new.get("roleRef") != old.get("roleRef") {
                let name = old
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                return Err(ApiError::invalid(
                    &res.group,
                    &res.kind,
                    name,
                    vec![Cause::invalid("roleRef", "cannot change roleRef")],
                ));
            }
            if new.get("subjects") != old.get("subjects") {
                check_binding_escalation(b, user, authz, namespace, new, res)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn escalation_forbidden(res: &Resource, name: &str, user: &UserInfo, what: &str) -> ApiError {
    ApiError::forbidden(format!(
        "{} \"{}\" is forbidden: user \"{}\" (groups={:?}) is attempting to grant RBAC permissions not currently held: {}",
        crate::error::qualified(&res.group, &res.plural),
        name,
        user.name,
        user.groups,
        what
    ))
    .with_subject(&res.group, &res.plural, name)
}

fn has_verb(
    authz: &Authorizer,
    user: &UserInfo,
    verb: &str,
    res: &Resource,
    namespace: &str,
    name: &str,
) -> ApiResult<bool> {
    let attrs = crate::auth::rbac::Attributes {
        verb: verb.into(),
        resource_request: true,
        namespace: namespace.into(),
        api_group: res.group.clone(),
        resource: res.plural.clone(),
        subresource: String::new(),
        name: name.into(),
        path: String::new(),
    };
    Ok(authz.authorize(user, &attrs)?.allowed)
}

fn check_role_escalation(
    b: Builtin,
    user: &UserInfo,
    authz: &Authorizer,
    namespace: &str,
    obj: &Value,
    old: Option<&Value>,
    res: &Resource,
) -> ApiResult<()> {
    if user.is_superuser() {
        return Ok(());
    }
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if has_verb(authz, user, "escalate", res, namespace, name)? {
        return Ok(());
    }
    let scope = if b == Builtin::Role { namespace } else { "" };
    let owned = authz.rules_for(user, scope)?;
    let requested: Vec<Rule> = obj
        .get("rules")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(Rule::from_json).collect())
        .unwrap_or_default();
    require_covered(res, name, user, &owned, &requested)?;
    // An aggregation rule gathers the rules of whatever ClusterRoles its selectors match, now
    // and later, so no finite set of held rules covers it: as kube-apiserver does, setting,
    // changing or keeping one needs full authority.
    if b == Builtin::ClusterRole
        && (has_aggregation_rule(obj) || old.is_some_and(has_aggregation_rule))
        && !full_authority(&owned)
    {
        return Err(ApiError::forbidden(format!(
            "{} \"{}\" is forbidden: must have cluster-admin privileges to use the aggregationRule",
            crate::error::qualified(&res.group, &res.plural),
            name
        ))
        .with_subject(&res.group, &res.plural, name));
    }
    Ok(())
}

/// Whether a ClusterRole carries an aggregation rule (an empty one gathers nothing).
fn has_aggregation_rule(obj: &Value) -> bool {
    obj.pointer("/aggregationRule/clusterRoleSelectors")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty())
}

/// Whether `owned` holds every verb on every resource of every group and on every
/// non-resource URL: kube-apiserver's `fullAuthority`.
fn full_authority(owned: &[Rule]) -> bool {
    let all_resources =
        Rule::from_json(&json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}));
    let all_urls = Rule::from_json(&json!({"nonResourceURLs": ["*"], "verbs": ["*"]}));
    covers(owned, &all_resources) && covers(owned, &all_urls)
}

/// Refuses, naming every rule not covered, when `requested` grants more than `owned` holds.
fn require_covered(
    res: &Resource,
    name: &str,
    user: &UserInfo,
    owned: &[Rule],
    requested: &[Rule],
) -> ApiResult<()> {
    let missing: Vec<String> = requested
        .iter()
        .filter(|r| !covers(owned, r))
        .map(|r| r.to_json().to_string())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(escalation_forbidden(res, name, user, &missing.join(", ")))
}

fn check_binding_escalation(
    b: Builtin,
    user: &UserInfo,
    authz: &Authorizer,
    namespace: &str,
    obj: &Value,
    res: &Resource,
) -> ApiResult<()> {
    if user.is_superuser() {
        return Ok(());
    }
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = obj
        .pointer("/roleRef/kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let role = obj
        .pointer("/roleRef/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // The `bind` verb on the referenced role allows binding it without holding its rules.
    let role_res = Resource {
        plural: if kind == "Role" {
            "roles".into()
        } else {
            "clusterroles".into()
        },
        ..res.clone()
    };
    let bind_ns = if kind == "Role" || b == Builtin::RoleBinding {
        namespace
    } else {
        ""
    };
    if has_verb(authz, user, "bind", &role_res, bind_ns, role)? {
        return Ok(());
    }
    let rules = authz.role_rules(kind, namespace, role)?.unwrap_or_default();
    let scope = if b == Builtin::RoleBinding {
        namespace
    } else {
        ""
    };
    let owned = authz.rules_for(user, scope)?;
    require_covered(res, name, user, &owned, &rules)
}

/// Checks the signer permission a CSR approval (`approve`) or certificate issuance (`sign`)
/// needs, as kube-apiserver does: the verb on `signers` in `certificates.k8s.io`, named by the
/// signer or by its domain wildcard (`example.com/*`).
pub fn check_signer_permission(
    user: &UserInfo,
    authz: &Authorizer,
    verb: &str,
    csr: &Value,
) -> ApiResult<()> {
    let signer = csr
        .pointer("/spec/signerName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = csr
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let domain_wildcard = format!("{}/*", signer.split('/').next().unwrap_or_default());
    for candidate in [signer, domain_wildcard.as_str()] {
        let attrs = crate::auth::rbac::Attributes {
            verb: verb.into(),
            resource_request: true,
            api_group: "certificates.k8s.io".into(),
            resource: "signers".into(),
            name: candidate.into(),
            ..Default::default()
        };
        if authz.authorize(user, &attrs)?.allowed {
            return Ok(());
        }
    }
    Err(ApiError::forbidden(format!(
        "certificatesigningrequests.certificates.k8s.io \"{name}\" is forbidden: user not permitted to {verb} requests with signerName \"{signer}\""
    ))
    .with_subject("certificates.k8s.io", "certificatesigningrequests", name))
}

/// The current time in kube's RFC 3339 form, to the second.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Registry;

    #[test]
    fn strict_validation_refuses_unknown_fields_and_warn_reports_them() {
        let reg = Registry::new();
        let cm = reg.get("", "v1", "configmaps").unwrap();
        let input = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "spec": {"x": 1}});
        let err = decode(&cm, input.clone(), FieldValidation::Strict, None).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.message.contains("unknown field \"spec\""),
            "{}",
            err.message
        );
        let (obj, warnings) = decode(&cm, input, FieldValidation::Warn, None).unwrap();
        assert!(obj.get("spec").is_none());
        assert_eq!(warnings, vec!["unknown field \"spec\"".to_string()]);
    }

    #[test]
    fn string_data_is_folded_into_data() {
        let reg = Registry::new();
        let s = reg.get("", "v1", "secrets").unwrap();
        let (obj, _) = decode(&s, json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a"}, "stringData": {"k": "v"}}), FieldValidation::Strict, None).unwrap();
        assert_eq!(obj["data"]["k"], "dg==");
        assert!(obj.get("stringData").is_none());
    }

    #[test]
    fn a_crd_with_a_non_structural_schema_is_invalid() {
        let reg = Registry::new();
        let r = reg
            .get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            .unwrap();
        let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "ws.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced", "names": {"plural": "ws", "kind": "W"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"description": "no type"}}}}}]}});
        let err = decode(&r, crd, FieldValidation::Strict, None).unwrap_err();
        assert_eq!(err.code, 422);
        assert!(err.message.contains("spec.type"), "{}", err.message);
    }
}
