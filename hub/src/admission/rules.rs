//! The rules themselves: pure checks of objects, and the permission checks that ask the API
//! server.

use serde_json::Value;

use super::{Admission, Ask, CLUSTER_GROUP, Denial, Requester, WORK_GROUP};

/// Largest total size of a ManifestWork's manifests, in bytes.
pub const MAX_MANIFESTS_SIZE: usize = 500 * 1024;
/// The set every cluster without a set label is in.
const DEFAULT_CLUSTER_SET: &str = "default";
/// The signer agents' client certificates are issued by.
const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";
/// Group every bootstrap-token user is in.
const BOOTSTRAPPERS: &str = "system:bootstrappers";

fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The object a manifest names: group, kind, namespace, name.
fn manifest_key(m: &Value) -> (String, String, String, String) {
    let api_version = m["apiVersion"].as_str().unwrap_or_default();
    let group = api_version
        .rsplit_once('/')
        .map(|(g, _)| g)
        .unwrap_or_default();
    let meta = |f: &str| {
        m.pointer(&format!("/metadata/{f}"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (
        group.to_string(),
        m["kind"].as_str().unwrap_or_default().to_string(),
        meta("namespace"),
        meta("name"),
    )
}

/// Checks a ManifestWork's manifests. Each refusal names the manifest by index.
pub fn validate_manifests(work: &Value) -> Result<(), Denial> {
    let manifests = work
        .pointer("/spec/workload/manifests")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if manifests.is_empty() {
        return Err(Denial::bad_request("manifests should not be empty"));
    }
    let size: usize = manifests
        .iter()
        .map(|m| serde_json::to_vec(m).map(|v| v.len()).unwrap_or(0))
        .sum();
    if size > MAX_MANIFESTS_SIZE {
        return Err(Denial::bad_request(format!(
            "the size of manifests is {size} bytes which exceeds the {MAX_MANIFESTS_SIZE} limit"
        )));
    }
    let mut seen: Vec<(String, String, String, String)> = Vec::with_capacity(manifests.len());
    for (i, m) in manifests.iter().enumerate() {
        if !m.is_object() {
            return Err(Denial::bad_request(format!(
                "spec.workload.manifests[{i}]: a manifest must be an object"
            )));
        }
        let key = manifest_key(m);
        if m.pointer("/metadata/generateName")
            .and_then(Value::as_str)
            .is_some_and(|g| !g.is_empty())
        {
            return Err(Denial::bad_request(format!(
                "spec.workload.manifests[{i}] ({}): generateName must not be set in manifest",
                key.1
            )));
        }
        if key.3.is_empty() {
            return Err(Denial::bad_request(format!(
                "spec.workload.manifests[{i}] ({}): name must be set in manifest",
                key.1
            )));
        }
        if let Some(j) = seen.iter().position(|k| *k == key) {
            let ns = if key.2.is_empty() {
                String::new()
            } else {
                format!("{}/", key.2)
            };
            return Err(Denial::bad_request(format!(
                "spec.workload.manifests[{i}] duplicates spec.workload.manifests[{j}]: both are {} {ns}{}",
                key.1, key.3
            )));
        }
        seen.push(key);
    }
    Ok(())
}

/// The executor's service account (namespace, name), None without an executor.
fn executor_of(executor: Option<&Value>) -> Result<Option<(String, String)>, Denial> {
    let Some(executor) = executor.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let Some(sa) = executor
        .pointer("/subject/serviceAccount")
        .filter(|v| !v.is_null())
    else {
        return Err(Denial::bad_request(
            "executor service account can not be nil",
        ));
    };
    Ok(Some((
        sa["namespace"].as_str().unwrap_or_default().to_string(),
        sa["name"].as_str().unwrap_or_default().to_string(),
    )))
}

/// The replica set's template seen as a work, for the manifest rules.
fn template_as_work(mwrs: &Value) -> Value {
    serde_json::json!({"spec": mwrs.pointer("/spec/manifestWorkTemplate").cloned().unwrap_or(Value::Null)})
}

fn cluster_set_of(obj: &Value) -> &str {
    obj.pointer("/metadata/labels")
        .and_then(|l| l.get(garrison_api::labels::CLUSTER_SET))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Gives a cluster without a set label (or an empty one) the `default` set, as upstream's
/// mutating webhook does.
pub(super) fn default_cluster_set(obj: &mut Value) {
    if !cluster_set_of(obj).is_empty() {
        return;
    }
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let labels = meta
        .entry("labels")
        .or_insert_with(|| Value::Object(Default::default()));
    if !labels.is_object() {
        *labels = Value::Object(Default::default());
    }
    labels[garrison_api::labels::CLUSTER_SET] = Value::String(DEFAULT_CLUSTER_SET.into());
}

/// Gives each taint without `timeAdded` one, as upstream's mutating webhook does: the time the
/// old object recorded for the same taint (key, value and effect), else now. Placements count
/// `tolerationSeconds` from it.
pub(super) fn stamp_taints(old: Option<&Value>, new: &mut Value) {
    let Some(taints) = new
        .pointer_mut("/spec/taints")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    let same = |a: &Value, b: &Value| {
        ["key", "value", "effect"]
            .iter()
            .all(|k| a.get(*k).filter(|v| !v.is_null()) == b.get(*k).filter(|v| !v.is_null()))
    };
    let old_taints = old
        .and_then(|o| o.pointer("/spec/taints"))
        .and_then(Value::as_array);
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    for t in taints.iter_mut() {
        if t.get("timeAdded").is_some_and(|v| !v.is_null()) || !t.is_object() {
            continue;
        }
        let recorded = old_taints
            .and_then(|ts| ts.iter().find(|o| same(o, t)))
            .and_then(|o| o.get("timeAdded"))
            .filter(|v| !v.is_null())
            .cloned();
        t["timeAdded"] = recorded.unwrap_or_else(|| Value::String(now.clone()));
    }
}

/// A binding's name must be its set's, as the CRD's validation rule says.
pub(super) fn check_binding_name(obj: &Value) -> Result<(), Denial> {
    let set = obj
        .pointer("/spec/clusterSet")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if name_of(obj) == set {
        return Ok(());
    }
    Err(Denial::invalid(
        format!(
            "ManagedClusterSetBinding.{CLUSTER_GROUP} \"{}\" is invalid: <nil>: Invalid value: \"object\": {}",
            name_of(obj),
            garrison_api::cluster::v1beta2::BINDING_NAME_RULE_MESSAGE
        ),
        "<nil>",
    ))
}

/// A CSR for the client signer from an agent may only ask for the agent's own cluster (its own
/// identity, or an add-on's on its cluster); one from a bootstrap token only for a well-formed
/// agent identity. An add-on's certificate may ask for nothing. Other requesters and signers
/// are not restricted here.
pub(super) fn check_agent_csr(who: &Requester, csr: &Value) -> Result<(), Denial> {
    if csr.pointer("/spec/signerName").and_then(Value::as_str) != Some(CLIENT_SIGNER) {
        return Ok(());
    }
    let is_agent = who.name.starts_with(garrison_pki::identity::PREFIX);
    let is_bootstrap = who.groups.iter().any(|g| g == BOOTSTRAPPERS);
    if !is_agent && !is_bootstrap {
        return Ok(());
    }
    let name = name_of(csr);
    let refuse = |why: String| {
        Denial::forbidden(format!(
            "certificatesigningrequests.certificates.k8s.io \"{name}\" is forbidden: {why}"
        ))
    };
    let request = csr
        .pointer("/spec/request")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, request)
        .map_err(|_| refuse("spec.request is not base64".into()))?;
    let parsed = garrison_pki::csr::parse(&der).map_err(|e| refuse(e.to_string()))?;
    // A bootstrap token joins a cluster; it never asks for an add-on's identity.
    if !is_agent && parsed.identity().addon().is_some() {
        return Err(refuse(
            "a bootstrap token may not request an add-on identity".into(),
        ));
    }
    if is_agent {
        let requester = garrison_pki::AgentIdentity::from_user(&who.name, &who.groups)
            .map_err(|e| refuse(format!("the requester is not a valid agent identity: {e}")))?;
        parsed
            .require_cluster(requester.cluster())
            .map_err(|e| refuse(e.to_string()))?;
    }
    Ok(())
}

impl Admission {
    /// Whether `who` may `create` the `managedclustersets/<sub>` subresource of set `set`.
    async fn may_use_set(
        &self,
        who: &Requester,
        sub: &'static str,
        set: &str,
    ) -> Result<bool, Denial> {
        self.may(
            who,
            Ask {
                verb: "create",
                group: CLUSTER_GROUP,
                resource: "managedclustersets",
                subresource: sub,
                name: set.into(),
                ..Default::default()
            },
        )
        .await
    }

    /// A cluster's set may change only for users allowed to join both sets (old first, as
    /// upstream asks); `hubAcceptsClient` may be set or changed only by users allowed to
    /// update `managedclusters/accept`.
    pub(super) async fn check_cluster(
        &self,
        who: &Requester,
        old: Option<&Value>,
        new: &Value,
    ) -> Result<(), Denial> {
        let (old_set, new_set) = (
            old.map(cluster_set_of).unwrap_or_default(),
            cluster_set_of(new),
        );
        if old_set != new_set {
            for set in [old_set, new_set] {
                if !set.is_empty() && !self.may_use_set(who, "join", set).await? {
                    return Err(Denial::forbidden(format!(
                        "user \"{}\" cannot add/remove a ManagedCluster to/from ManagedClusterSet \"{set}\" (it needs create on managedclustersets/join)",
                        who.name
                    )));
                }
            }
        }
        let accepts =
            |v: &Value| v.pointer("/spec/hubAcceptsClient").and_then(Value::as_bool) == Some(true);
        if accepts(new) != old.is_some_and(accepts) {
            let name = name_of(new);
            let allowed = self
                .may(
                    who,
                    Ask {
                        verb: "update",
                        group: CLUSTER_GROUP,
                        resource: "managedclusters",
                        subresource: "accept",
                        name: name.into(),
                        ..Default::default()
                    },
                )
                .await?;
            if !allowed {
                return Err(Denial::forbidden(format!(
                    "user \"{}\" cannot update the HubAcceptsClient field of managed cluster \"{name}\" (it needs update on managedclusters/accept)",
                    who.name
                )));
            }
        }
        Ok(())
    }

    /// Creating a binding needs `create` on `managedclustersets/bind` for its set.
    pub(super) async fn check_bind(&self, who: &Requester, obj: &Value) -> Result<(), Denial> {
        let set = obj
            .pointer("/spec/clusterSet")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if self.may_use_set(who, "bind", set).await? {
            return Ok(());
        }
        Err(Denial::forbidden(format!(
            "user \"{}\" is not allowed to bind cluster set \"{set}\" (it needs create on managedclustersets/bind)",
            who.name
        )))
    }

    /// Whether `who` may `execute-as` the service account in namespace `ns` ("" for all).
    async fn may_execute_as(
        &self,
        who: &Requester,
        ns: &str,
        (sa_ns, sa_name): &(String, String),
    ) -> Result<bool, Denial> {
        self.may(
            who,
            Ask {
                verb: "execute-as",
                group: WORK_GROUP,
                resource: "manifestworks",
                namespace: ns.into(),
                name: format!("system:serviceaccount:{sa_ns}:{sa_name}"),
                ..Default::default()
            },
        )
        .await
    }

    /// A work's manifests follow the rules, and its executor needs `execute-as` on the service
    /// account in the work's namespace. An update that keeps the spec is not checked again.
    pub(super) async fn check_work(
        &self,
        who: &Requester,
        old: Option<&Value>,
        work: &Value,
    ) -> Result<(), Denial> {
        if old.is_some_and(|o| o.get("spec") == work.get("spec")) {
            return Ok(());
        }
        validate_manifests(work)?;
        if old.is_some_and(|o| o.pointer("/spec/executor") == work.pointer("/spec/executor")) {
            return Ok(());
        }
        let Some(sa) = executor_of(work.pointer("/spec/executor"))? else {
            return Ok(());
        };
        let ns = work
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if self.may_execute_as(who, ns, &sa).await? {
            return Ok(());
        }
        Err(Denial::forbidden(format!(
            "user {} cannot manipulate the Manifestwork with executor {}/{} in namespace {ns}",
            who.name, sa.0, sa.1
        )))
    }

    /// A replica set's template follows the work rules. Its works land in whichever cluster
    /// namespaces the placement picks, now or later, so its executor needs `execute-as` in
    /// every namespace; without this anyone who may create a replica set could make agents act
    /// as any service account.
    pub(super) async fn check_replica_set(
        &self,
        who: &Requester,
        old: Option<&Value>,
        mwrs: &Value,
    ) -> Result<(), Denial> {
        if old.is_some_and(|o| o.get("spec") == mwrs.get("spec")) {
            return Ok(());
        }
        validate_manifests(&template_as_work(mwrs))?;
        let executor = |v: &Value| v.pointer("/spec/manifestWorkTemplate/executor").cloned();
        if old.is_some_and(|o| executor(o) == executor(mwrs)) {
            return Ok(());
        }
        let Some(sa) = executor_of(mwrs.pointer("/spec/manifestWorkTemplate/executor"))? else {
            return Ok(());
        };
        if self.may_execute_as(who, "", &sa).await? {
            return Ok(());
        }
        Err(Denial::forbidden(format!(
            "user {} cannot manipulate the ManifestWorkReplicaSet with executor {}/{}: its works may land in any cluster namespace, so execute-as on manifestworks is needed in all namespaces",
            who.name, sa.0, sa.1
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn work(manifests: Vec<Value>) -> Value {
        json!({"metadata": {"name": "w", "namespace": "east"},
            "spec": {"workload": {"manifests": manifests}}})
    }

    fn cm(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}})
    }

    #[test]
    fn manifest_work_rules_name_the_manifest_that_broke_them() {
        assert!(validate_manifests(&work(vec![cm("a"), cm("b")])).is_ok());
        let msg = |w: Value| validate_manifests(&w).unwrap_err().message;
        assert!(msg(work(vec![])).contains("manifests should not be empty"));
        let mut unnamed = cm("");
        unnamed["metadata"]["generateName"] = json!("x-");
        assert!(
            msg(work(vec![cm("a"), unnamed]))
                .contains("manifests[1] (ConfigMap): generateName must not be set")
        );
        assert!(
            msg(work(vec![cm("a"), cm("")]))
                .contains("manifests[1] (ConfigMap): name must be set in manifest")
        );
        let m = msg(work(vec![cm("a"), cm("b"), cm("a")]));
        assert!(
            m.contains(
                "manifests[2] duplicates spec.workload.manifests[0]: both are ConfigMap default/a"
            ),
            "{m}"
        );
        // The same name in another namespace or kind is another object.
        let mut other_ns = cm("a");
        other_ns["metadata"]["namespace"] = json!("prod");
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a", "namespace": "default"}});
        assert!(validate_manifests(&work(vec![cm("a"), other_ns, secret])).is_ok());
        let big = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"},
            "data": {"x": "a".repeat(MAX_MANIFESTS_SIZE)}});
        let e = validate_manifests(&work(vec![big])).unwrap_err();
        assert_eq!(e.code, 400);
        assert!(
            e.message.contains("exceeds the 512000 limit"),
            "{}",
            e.message
        );
    }

    fn agent(cluster: &str) -> Requester {
        Requester {
            name: format!("system:open-cluster-management:{cluster}:agent1"),
            groups: vec![
                format!("system:open-cluster-management:{cluster}"),
                "system:open-cluster-management:managed-clusters".into(),
                "system:authenticated".into(),
            ],
        }
    }

    fn csr_for(cluster: &str) -> Value {
        let id = garrison_pki::AgentIdentity::new(
            garrison_pki::ClusterName::parse(cluster).unwrap(),
            "agent1",
        )
        .unwrap();
        let req = garrison_pki::new_request(&id.clone().into()).unwrap();
        let pem = req
            .csr_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>();
        json!({"metadata": {"name": "c1"}, "spec": {"signerName": CLIENT_SIGNER, "request": pem}})
    }

    #[test]
    fn an_agent_may_only_ask_for_its_own_cluster() {
        check_agent_csr(&agent("a"), &csr_for("a")).unwrap();
        let err = check_agent_csr(&agent("a"), &csr_for("b")).unwrap_err();
        assert_eq!(err.code, 403);
        assert!(err.message.contains("\"b\""), "{}", err.message);
    }

    #[test]
    fn a_bootstrap_token_may_only_ask_for_an_agent_identity() {
        let boot = Requester {
            name: "system:bootstrap:abcdef".into(),
            groups: vec![BOOTSTRAPPERS.into(), "system:authenticated".into()],
        };
        check_agent_csr(&boot, &csr_for("new-cluster")).unwrap();
        let mut bad = csr_for("x");
        bad["spec"]["request"] = json!("bm90IGEgY3Ny");
        assert_eq!(check_agent_csr(&boot, &bad).unwrap_err().code, 403);
        let mut not_b64 = csr_for("x");
        not_b64["spec"]["request"] = json!("%%%");
        assert_eq!(check_agent_csr(&boot, &not_b64).unwrap_err().code, 403);
        // Other signers are not restricted here.
        let mut other = bad.clone();
        other["spec"]["signerName"] = json!("example.com/other");
        check_agent_csr(&boot, &other).unwrap();
    }

    #[test]
    fn clusters_without_a_set_join_default_and_keep_their_own() {
        let mut bare = json!({"metadata": {"name": "c1"}});
        default_cluster_set(&mut bare);
        assert_eq!(cluster_set_of(&bare), "default");
        let mut empty = json!({"metadata": {"name": "c1", "labels": {"cluster.open-cluster-management.io/clusterset": ""}}});
        default_cluster_set(&mut empty);
        assert_eq!(cluster_set_of(&empty), "default");
        let mut own = json!({"metadata": {"name": "c1", "labels": {"cluster.open-cluster-management.io/clusterset": "prod", "a": "b"}}});
        default_cluster_set(&mut own);
        assert_eq!(cluster_set_of(&own), "prod");
        assert_eq!(own["metadata"]["labels"]["a"], "b");
    }

    #[test]
    fn taints_get_their_time_once() {
        let mut new = json!({"spec": {"taints": [{"key": "a", "effect": "NoSelect"}]}});
        stamp_taints(None, &mut new);
        assert!(new["spec"]["taints"][0]["timeAdded"].is_string());
        // The same taint written again without a time keeps the recorded one; a changed one is new.
        let old = json!({"spec": {"taints": [{"key": "a", "effect": "NoSelect", "timeAdded": "2020-01-01T00:00:00Z"}]}});
        let mut again = json!({"spec": {"taints": [
            {"key": "a", "effect": "NoSelect"},
            {"key": "a", "value": "x", "effect": "NoSelect"}]}});
        stamp_taints(Some(&old), &mut again);
        assert_eq!(
            again["spec"]["taints"][0]["timeAdded"],
            "2020-01-01T00:00:00Z"
        );
        assert_ne!(
            again["spec"]["taints"][1]["timeAdded"],
            "2020-01-01T00:00:00Z"
        );
        assert!(again["spec"]["taints"][1]["timeAdded"].is_string());
        // A time the writer gives is kept.
        let mut given = json!({"spec": {"taints": [{"key": "b", "effect": "NoSelect", "timeAdded": "2021-01-01T00:00:00Z"}]}});
        stamp_taints(None, &mut given);
        assert_eq!(
            given["spec"]["taints"][0]["timeAdded"],
            "2021-01-01T00:00:00Z"
        );
    }

    #[test]
    fn a_binding_is_named_after_its_set() {
        let ok = json!({"metadata": {"name": "prod"}, "spec": {"clusterSet": "prod"}});
        check_binding_name(&ok).unwrap();
        let bad = json!({"metadata": {"name": "prod"}, "spec": {"clusterSet": "dev"}});
        let e = check_binding_name(&bad).unwrap_err();
        assert_eq!(e.code, 422);
        assert!(
            e.message
                .contains("must have the same name as the target ManagedClusterSet"),
            "{}",
            e.message
        );
    }
}
