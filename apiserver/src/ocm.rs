//! Open Cluster Management's rules inside the API server:
//!
//! - the acceptance gate: a managed cluster's agent certificate authenticates only while the
//!   cluster exists, is accepted (`hubAcceptsClient: true`) and is not being deleted, so `deny`
//!   or deletion cuts access at once, before the certificate expires;
//! - `hubAcceptsClient` can be set to true, or changed, only by users allowed to `update`
//!   `managedclusters/accept`, as upstream's admission webhook requires;
//! - a CSR for the `kubernetes.io/kube-apiserver-client` signer from an agent may only ask for
//!   that agent's own cluster, and one from a bootstrap token only for a well-formed agent
//!   identity. Anything else is refused with the reason;
//! - ManifestWorks are validated as upstream's webhook does: manifests present, at most 500 KiB
//!   in all, each named (no `generateName`), no two for the same object, and an `executor` only
//!   from users allowed to `execute-as` that service account;
//! - cluster sets, as upstream's webhooks: a ManagedCluster without a set label joins `default`;
//!   putting a cluster into a set or taking it out needs `create` on `managedclustersets/join`
//!   for that set (old and new); a ManagedClusterSetBinding must be named after its set, and
//!   creating one needs `create` on `managedclustersets/bind` for the set.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use serde_json::Value;

use crate::auth::UserInfo;
use crate::auth::rbac::{Attributes, Authorizer};
use crate::error::{ApiError, ApiResult, Cause};
use crate::resources::Resource;
use crate::store::Store;
use crate::store::watch::{EventType, WatchEvent};

/// The OCM cluster API group.
pub const CLUSTER_GROUP: &str = "cluster.open-cluster-management.io";
/// Storage key of ManagedClusters.
pub const MANAGED_CLUSTERS_KEY: &str = "cluster.open-cluster-management.io/managedclusters";
/// The signer agents' client certificates are issued by.
pub const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";
/// Group every bootstrap-token user is in.
pub const BOOTSTRAPPERS: &str = "system:bootstrappers";

fn accepted(obj: &Value) -> bool {
    obj.pointer("/spec/hubAcceptsClient")
        .and_then(Value::as_bool)
        == Some(true)
        && obj
            .pointer("/metadata/deletionTimestamp")
            .is_none_or(Value::is_null)
}

/// The set of accepted clusters, kept current by a store hook that runs before each write is
/// acknowledged: once a `deny` returns, the cluster's certificates are already refused.
#[derive(Debug)]
pub struct AcceptedClusters {
    names: RwLock<HashSet<String>>,
    /// Bumped each time a cluster stops being accepted, so open connections re-check their
    /// certificate at once instead of at their next request.
    revoked: tokio::sync::watch::Sender<u64>,
}

impl Default for AcceptedClusters {
    fn default() -> Self {
        AcceptedClusters {
            names: RwLock::default(),
            revoked: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl AcceptedClusters {
    /// Loads the accepted clusters from `store` and follows its writes.
    pub fn follow(store: &Store) -> ApiResult<Arc<Self>> {
        let me = Arc::new(AcceptedClusters::default());
        let this = me.clone();
        store.on_write(Arc::new(move |ev: &WatchEvent| {
            if ev.key != MANAGED_CLUSTERS_KEY {
                return;
            }
            let Some(name) = ev.object.pointer("/metadata/name").and_then(Value::as_str) else {
                return;
            };
            let mut names = this.names.write().expect("accepted clusters lock");
            if ev.kind != EventType::Deleted && accepted(&ev.object) {
                names.insert(name.to_string());
            } else if names.remove(name) {
                drop(names);
                this.revoked.send_modify(|n| *n += 1);
            }
        }));
        // Loaded after the hook is installed, so no write falls between the two.
        let mut after: Option<(String, String)> = None;
        loop {
            let page = store.list(
                MANAGED_CLUSTERS_KEY,
                None,
                after.as_ref().map(|(n, m)| (n.as_str(), m.as_str())),
                1000,
            )?;
            let mut names = me.names.write().expect("accepted clusters lock");
            for obj in &page.items {
                if let Some(name) = obj.pointer("/metadata/name").and_then(Value::as_str)
                    && accepted(obj)
                {
                    names.insert(name.to_string());
                }
            }
            drop(names);
            match page.items.last() {
                Some(last) if page.items.len() == 1000 => {
                    let name = last["metadata"]["name"].as_str().unwrap_or_default();
                    after = Some((String::new(), name.to_string()));
                }
                _ => break,
            }
        }
        Ok(me)
    }

    /// Whether `cluster` is accepted now.
    pub fn is_accepted(&self, cluster: &str) -> bool {
        self.names
            .read()
            .expect("accepted clusters lock")
            .contains(cluster)
    }

    /// Changes each time a cluster stops being accepted.
    pub fn revocations(&self) -> tokio::sync::watch::Receiver<u64> {
        self.revoked.subscribe()
    }

    /// Whether a certificate user may authenticate. Users outside the managed-cluster namespace
    /// of names pass; agent users pass only while their cluster is accepted. A user that claims
    /// the namespace but is not a well-formed agent identity is refused.
    pub fn allows(&self, user: &UserInfo) -> bool {
        if !user.name.starts_with(garrison_pki::identity::PREFIX) {
            return true;
        }
        match garrison_pki::AgentIdentity::from_user(&user.name, &user.groups) {
            Ok(id) => self.is_accepted(id.cluster().as_str()),
            Err(_) => false,
        }
    }
}

fn is_managed_clusters(res: &Resource) -> bool {
    res.group == CLUSTER_GROUP && res.plural == "managedclusters"
}

fn may_accept(user: &UserInfo, authz: &Authorizer, name: &str) -> ApiResult<bool> {
    let attrs = Attributes {
        verb: "update".into(),
        resource_request: true,
        api_group: CLUSTER_GROUP.into(),
        resource: "managedclusters".into(),
        subresource: "accept".into(),
        name: name.into(),
        ..Default::default()
    };
    Ok(authz.authorize(user, &attrs)?.allowed)
}

fn accept_forbidden(user: &UserInfo, name: &str) -> ApiError {
    ApiError::forbidden(format!(
        "managedclusters.{CLUSTER_GROUP} \"{name}\" is forbidden: user \"{}\" cannot update the HubAcceptsClient field (it needs update on managedclusters/accept)",
        user.name
    ))
    .with_subject(CLUSTER_GROUP, "managedclusters", name)
}

/// The OCM work API group.
pub const WORK_GROUP: &str = "work.open-cluster-management.io";
/// Largest total size of a ManifestWork's manifests, in bytes.
pub const MAX_MANIFESTS_SIZE: usize = 500 * 1024;
/// Name of upstream's ManifestWork validating webhook, which denials name.
const WORK_WEBHOOK: &str = "manifestworkvalidators.admission.work.open-cluster-management.io";

fn is_manifest_works(res: &Resource) -> bool {
    res.group == WORK_GROUP && res.plural == "manifestworks"
}

fn work_denied(message: String) -> ApiError {
    ApiError::bad_request(format!(
        "admission webhook \"{WORK_WEBHOOK}\" denied the request: {message}"
    ))
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

/// Checks a ManifestWork's manifests. Each error names the manifest by index.
pub fn validate_manifests(work: &Value) -> ApiResult<()> {
    let manifests = work
        .pointer("/spec/workload/manifests")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if manifests.is_empty() {
        return Err(work_denied("manifests should not be empty".into()));
    }
    let size: usize = manifests
        .iter()
        .map(|m| serde_json::to_vec(m).map(|v| v.len()).unwrap_or(0))
        .sum();
    if size > MAX_MANIFESTS_SIZE {
        return Err(work_denied(format!(
            "the size of manifests is {size} bytes which exceeds the {MAX_MANIFESTS_SIZE} limit"
        )));
    }
    let mut seen: Vec<(String, String, String, String)> = Vec::with_capacity(manifests.len());
    for (i, m) in manifests.iter().enumerate() {
        if !m.is_object() {
            return Err(work_denied(format!(
                "spec.workload.manifests[{i}]: a manifest must be an object"
            )));
        }
        let key = manifest_key(m);
        if m.pointer("/metadata/generateName")
            .and_then(Value::as_str)
            .is_some_and(|g| !g.is_empty())
        {
            return Err(work_denied(format!(
                "spec.workload.manifests[{i}] ({}): generateName must not be set in manifest",
                key.1
            )));
        }
        if key.3.is_empty() {
            return Err(work_denied(format!(
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
            return Err(work_denied(format!(
                "spec.workload.manifests[{i}] duplicates spec.workload.manifests[{j}]: both are {} {ns}{}",
                key.1, key.3
            )));
        }
        seen.push(key);
    }
    Ok(())
}

/// Checks that `user` may set the work's executor: `execute-as` on the service account, as a
/// SubjectAccessReview would ask.
fn check_executor(user: &UserInfo, authz: &Authorizer, work: &Value) -> ApiResult<()> {
    let ns = work
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some((sa_ns, sa_name)) = executor_of(work.pointer("/spec/executor"))? else {
        return Ok(());
    };
    if may_execute_as(user, authz, ns, &sa_ns, &sa_name)? {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "admission webhook \"{WORK_WEBHOOK}\" denied the request: user {} cannot manipulate the Manifestwork with executor {sa_ns}/{sa_name} in namespace {ns}",
        user.name
    )))
}

/// Checks a ManifestWorkReplicaSet's template executor against its author. Its works land in
/// whichever cluster namespaces the placement picks, now or later, so the author needs
/// `execute-as` on the service account in every namespace; without this check anyone who may
/// create a replica set could make agents act as any service account.
fn check_replica_set_executor(user: &UserInfo, authz: &Authorizer, mwrs: &Value) -> ApiResult<()> {
    let Some((sa_ns, sa_name)) = executor_of(mwrs.pointer("/spec/manifestWorkTemplate/executor"))?
    else {
        return Ok(());
    };
    if may_execute_as(user, authz, "", &sa_ns, &sa_name)? {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "admission webhook \"{WORK_WEBHOOK}\" denied the request: user {} cannot manipulate the ManifestWorkReplicaSet with executor {sa_ns}/{sa_name}: its works may land in any cluster namespace, so execute-as on manifestworks is needed in all namespaces",
        user.name
    )))
}

/// The executor's service account (namespace, name), None without an executor.
fn executor_of(executor: Option<&Value>) -> ApiResult<Option<(String, String)>> {
    let Some(executor) = executor.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let Some(sa) = executor
        .pointer("/subject/serviceAccount")
        .filter(|v| !v.is_null())
    else {
        return Err(work_denied(
            "executor service account can not be nil".into(),
        ));
    };
    Ok(Some((
        sa["namespace"].as_str().unwrap_or_default().to_string(),
        sa["name"].as_str().unwrap_or_default().to_string(),
    )))
}

/// Whether `user` may `execute-as` the service account in namespace `ns` ("" for all).
fn may_execute_as(
    user: &UserInfo,
    authz: &Authorizer,
    ns: &str,
    sa_ns: &str,
    sa_name: &str,
) -> ApiResult<bool> {
    let attrs = Attributes {
        verb: "execute-as".into(),
        resource_request: true,
        api_group: WORK_GROUP.into(),
        resource: "manifestworks".into(),
        namespace: ns.into(),
        name: format!("system:serviceaccount:{sa_ns}:{sa_name}"),
        ..Default::default()
    };
    Ok(authz.authorize(user, &attrs)?.allowed)
}

fn is_replica_sets(res: &Resource) -> bool {
    res.group == WORK_GROUP && res.plural == "manifestworkreplicasets"
}

/// The replica set's template seen as a work, for the manifest rules.
fn template_as_work(mwrs: &Value) -> Value {
    serde_json::json!({"spec": mwrs.pointer("/spec/manifestWorkTemplate").cloned().unwrap_or(Value::Null)})
}

/// The set every cluster without a set label is in.
pub const DEFAULT_CLUSTER_SET: &str = "default";

fn cluster_set_of(obj: &Value) -> &str {
    obj.pointer("/metadata/labels")
        .and_then(|l| l.get(garrison_api::labels::CLUSTER_SET))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Gives a cluster without a set label (or an empty one) the `default` set, as upstream's
/// mutating webhook does.
fn default_cluster_set(obj: &mut Value) {
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
fn stamp_taints(old: Option<&Value>, new: &mut Value) {
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
    for t in taints.iter_mut() {
        if t.get("timeAdded").is_some_and(|v| !v.is_null()) || !t.is_object() {
            continue;
        }
        let recorded = old_taints
            .and_then(|ts| ts.iter().find(|o| same(o, t)))
            .and_then(|o| o.get("timeAdded"))
            .filter(|v| !v.is_null())
            .cloned();
        t["timeAdded"] = recorded.unwrap_or_else(|| Value::String(crate::admission::now_rfc3339()));
    }
}

/// Whether `user` may `create` the `managedclustersets/<sub>` subresource of set `set`.
fn may_use_set(user: &UserInfo, authz: &Authorizer, sub: &str, set: &str) -> ApiResult<bool> {
    let attrs = Attributes {
        verb: "create".into(),
        resource_request: true,
        api_group: CLUSTER_GROUP.into(),
        resource: "managedclustersets".into(),
        subresource: sub.into(),
        name: set.into(),
        ..Default::default()
    };
    Ok(authz.authorize(user, &attrs)?.allowed)
}

/// Checks a change of a cluster's set, from `old` to `new` (empty: none): the user must be
/// allowed to join both, old first, as upstream's webhook asks.
fn check_join(user: &UserInfo, authz: &Authorizer, old: &str, new: &str) -> ApiResult<()> {
    if old == new {
        return Ok(());
    }
    for set in [old, new] {
        if !set.is_empty() && !may_use_set(user, authz, "join", set)? {
            return Err(ApiError::forbidden(format!(
                "managedclustersets.{CLUSTER_GROUP} \"{set}\" is forbidden: user \"{}\" cannot add/remove a ManagedCluster to/from ManagedClusterSet \"{set}\" (it needs create on managedclustersets/join)",
                user.name
            ))
            .with_subject(CLUSTER_GROUP, "managedclustersets", set));
        }
    }
    Ok(())
}

fn is_set_bindings(res: &Resource) -> bool {
    res.group == CLUSTER_GROUP && res.plural == "managedclustersetbindings"
}

/// A binding's name must be its set's, as the CRD's validation rule says.
fn check_binding_name(obj: &Value) -> ApiResult<()> {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let set = obj
        .pointer("/spec/clusterSet")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if name == set {
        return Ok(());
    }
    Err(ApiError::invalid(
        CLUSTER_GROUP,
        "ManagedClusterSetBinding",
        name,
        vec![Cause::invalid(
            "<nil>",
            format!(
                "Invalid value: \"object\": {}",
                garrison_api::cluster::v1beta2::BINDING_NAME_RULE_MESSAGE
            ),
        )],
    ))
}

/// Creating a binding needs `create` on `managedclustersets/bind` for its set.
fn check_bind(user: &UserInfo, authz: &Authorizer, obj: &Value) -> ApiResult<()> {
    let set = obj
        .pointer("/spec/clusterSet")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if may_use_set(user, authz, "bind", set)? {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "managedclustersets/bind.{CLUSTER_GROUP} \"{set}\" is forbidden: user \"{}\" is not allowed to bind cluster set \"{set}\" (it needs create on managedclustersets/bind)",
        user.name
    ))
    .with_subject(CLUSTER_GROUP, "managedclustersets", set))
}

/// Admission of a new custom-resource object: ManagedClusters get the default set and need the
/// join permission for their set, and the accept permission if created already accepted;
/// bindings are checked; ManifestWorks are validated.
pub fn admit_create(
    res: &Resource,
    user: &UserInfo,
    authz: &Authorizer,
    obj: &mut Value,
) -> ApiResult<()> {
    if is_manifest_works(res) {
        validate_manifests(obj)?;
        return check_executor(user, authz, obj);
    }
    if is_replica_sets(res) {
        validate_manifests(&template_as_work(obj))?;
        return check_replica_set_executor(user, authz, obj);
    }
    if is_set_bindings(res) {
        check_binding_name(obj)?;
        return check_bind(user, authz, obj);
    }
    if is_managed_clusters(res) {
        default_cluster_set(obj);
        stamp_taints(None, obj);
        check_join(user, authz, "", cluster_set_of(obj))?;
    }
    if is_managed_clusters(res)
        && obj
            .pointer("/spec/hubAcceptsClient")
            .and_then(Value::as_bool)
            == Some(true)
    {
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !may_accept(user, authz, name)? {
            return Err(accept_forbidden(user, name));
        }
    }
    Ok(())
}

/// Admission of an update of a custom-resource object: changing `hubAcceptsClient` needs the
/// accept permission, changing a cluster's set the join permission for both sets.
pub fn admit_update(
    res: &Resource,
    user: &UserInfo,
    authz: &Authorizer,
    old: &Value,
    new: &mut Value,
) -> ApiResult<()> {
    if is_set_bindings(res) {
        return check_binding_name(new);
    }
    if is_managed_clusters(res) {
        default_cluster_set(new);
        stamp_taints(Some(old), new);
        check_join(user, authz, cluster_set_of(old), cluster_set_of(new))?;
    }
    if is_manifest_works(res) {
        if old.get("spec") == new.get("spec") {
            return Ok(());
        }
        validate_manifests(new)?;
        if old.pointer("/spec/executor") != new.pointer("/spec/executor") {
            return check_executor(user, authz, new);
        }
        return Ok(());
    }
    if is_replica_sets(res) {
        if old.get("spec") == new.get("spec") {
            return Ok(());
        }
        validate_manifests(&template_as_work(new))?;
        if old.pointer("/spec/manifestWorkTemplate/executor")
            != new.pointer("/spec/manifestWorkTemplate/executor")
        {
            return check_replica_set_executor(user, authz, new);
        }
        return Ok(());
    }
    let flag =
        |v: &Value| v.pointer("/spec/hubAcceptsClient").and_then(Value::as_bool) == Some(true);
    if is_managed_clusters(res) && flag(old) != flag(new) {
        let name = old
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !may_accept(user, authz, name)? {
            return Err(accept_forbidden(user, name));
        }
    }
    Ok(())
}

/// Admission of a new CSR for the client signer, by agents and bootstrap tokens. Other requesters
/// and signers are not restricted here.
pub fn admit_csr(user: &UserInfo, csr: &Value) -> ApiResult<()> {
    if csr.pointer("/spec/signerName").and_then(Value::as_str) != Some(CLIENT_SIGNER) {
        return Ok(());
    }
    let is_agent = user.name.starts_with(garrison_pki::identity::PREFIX);
    let is_bootstrap = user.groups.iter().any(|g| g == BOOTSTRAPPERS);
    if !is_agent && !is_bootstrap {
        return Ok(());
    }
    let name = csr
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let refuse = |why: String| {
        ApiError::forbidden(format!(
            "certificatesigningrequests.certificates.k8s.io \"{name}\" is forbidden: {why}"
        ))
        .with_subject("certificates.k8s.io", "certificatesigningrequests", name)
    };
    let request = csr
        .pointer("/spec/request")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, request)
        .map_err(|_| refuse("spec.request is not base64".into()))?;
    let parsed = garrison_pki::csr::parse(&der).map_err(|e| refuse(e.to_string()))?;
    if is_agent {
        let requester = garrison_pki::AgentIdentity::from_user(&user.name, &user.groups)
            .map_err(|e| refuse(format!("the requester is not a valid agent identity: {e}")))?;
        parsed
            .require_cluster(requester.cluster())
            .map_err(|e| refuse(e.to_string()))?;
    }
    Ok(())
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
        assert!(e.message.contains(WORK_WEBHOOK));
    }

    fn agent(cluster: &str) -> UserInfo {
        UserInfo::new(
            format!("system:open-cluster-management:{cluster}:agent1"),
            vec![
                format!("system:open-cluster-management:{cluster}"),
                "system:open-cluster-management:managed-clusters".into(),
            ],
            "x509",
        )
    }

    fn csr_for(cluster: &str) -> Value {
        let id = garrison_pki::AgentIdentity::new(
            garrison_pki::ClusterName::parse(cluster).unwrap(),
            "agent1",
        )
        .unwrap();
        let req = garrison_pki::new_request(&id).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(req.csr_pem.as_bytes()).unwrap();
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &pem.contents);
        json!({"metadata": {"name": "c1"}, "spec": {"signerName": CLIENT_SIGNER, "request": b64}})
    }

    #[test]
    fn the_gate_follows_acceptance_and_refuses_malformed_agent_names() {
        let store = Store::in_memory(100);
        let gate = AcceptedClusters::follow(&store).unwrap();
        assert!(!gate.allows(&agent("a")));
        gate.names.write().unwrap().insert("a".into());
        assert!(gate.allows(&agent("a")));
        assert!(!gate.allows(&agent("b")));
        // Claims the prefix but is not an agent identity: refused.
        let odd = UserInfo::new("system:open-cluster-management:a", vec![], "x509");
        assert!(!gate.allows(&odd));
        // Right name, wrong groups: refused.
        let mut forged = agent("a");
        forged.groups = vec!["system:open-cluster-management:b".into()];
        assert!(!gate.allows(&forged));
        // Not an agent at all: not this gate's business.
        assert!(gate.allows(&UserInfo::new("alice", vec![], "x509")));
    }

    #[test]
    fn an_agent_may_only_ask_for_its_own_cluster() {
        admit_csr(&agent("a"), &csr_for("a")).unwrap();
        let err = admit_csr(&agent("a"), &csr_for("b")).unwrap_err();
        assert_eq!(err.code, 403);
        assert!(err.message.contains("\"b\""), "{}", err.message);
    }

    #[test]
    fn a_bootstrap_token_may_only_ask_for_an_agent_identity() {
        let boot = UserInfo::new(
            "system:bootstrap:abcdef",
            vec![BOOTSTRAPPERS.into(), "system:authenticated".into()],
            "token",
        );
        admit_csr(&boot, &csr_for("new-cluster")).unwrap();
        let mut bad = csr_for("x");
        bad["spec"]["request"] = json!("bm90IGEgY3Ny");
        assert_eq!(admit_csr(&boot, &bad).unwrap_err().code, 403);
        let mut not_b64 = csr_for("x");
        not_b64["spec"]["request"] = json!("%%%");
        assert_eq!(admit_csr(&boot, &not_b64).unwrap_err().code, 403);
        // Other signers are not restricted here.
        let mut other = bad.clone();
        other["spec"]["signerName"] = json!("example.com/other");
        admit_csr(&boot, &other).unwrap();
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
        let stamped = new["spec"]["taints"][0]["timeAdded"].clone();
        assert!(stamped.is_string());
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
