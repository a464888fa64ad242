//! RBAC authorization with kube-apiserver's semantics: ClusterRoleBindings grant everywhere,
//! RoleBindings grant only in their namespace (even when they reference a ClusterRole),
//! aggregated ClusterRoles carry the rules of the roles they select, `system:masters` is the
//! superuser, and creating roles or bindings cannot grant more than the creator holds.
//!
//! The authorizer works from an in-memory snapshot of the four RBAC kinds, loaded once and then
//! updated object by object as they are written; ClusterRoleBindings are indexed by subject, so
//! a decision looks only at the bindings that name the user or one of its groups.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use serde_json::Value;

use super::authn::UserInfo;
use crate::error::ApiResult;
use crate::selectors::labels_of;
use crate::store::Store;

/// One policy rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    /// Verbs, or `*`.
    pub verbs: Vec<String>,
    /// API groups, or `*`.
    pub api_groups: Vec<String>,
    /// Resources (`pods`, `pods/status`, `*`, `*/status`).
    pub resources: Vec<String>,
    /// Names the rule is limited to; empty means all.
    pub resource_names: Vec<String>,
    /// Non-resource URLs (`/healthz`, `/api/*`).
    pub non_resource_urls: Vec<String>,
}

fn strs(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

impl Rule {
    /// Reads a rule from its JSON form.
    pub fn from_json(v: &Value) -> Self {
        Rule {
            verbs: strs(v, "verbs"),
            api_groups: strs(v, "apiGroups"),
            resources: strs(v, "resources"),
            resource_names: strs(v, "resourceNames"),
            non_resource_urls: strs(v, "nonResourceURLs"),
        }
    }
    /// The rule's JSON form.
    pub fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("verbs".into(), serde_json::json!(self.verbs));
        if !self.api_groups.is_empty() || !self.resources.is_empty() {
            m.insert("apiGroups".into(), serde_json::json!(self.api_groups));
            m.insert("resources".into(), serde_json::json!(self.resources));
        }
        if !self.resource_names.is_empty() {
            m.insert(
                "resourceNames".into(),
                serde_json::json!(self.resource_names),
            );
        }
        if !self.non_resource_urls.is_empty() {
            m.insert(
                "nonResourceURLs".into(),
                serde_json::json!(self.non_resource_urls),
            );
        }
        Value::Object(m)
    }

    fn allows_verb(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == "*" || v == verb)
    }

    fn allows_resource(&self, attrs: &Attributes) -> bool {
        if !self
            .api_groups
            .iter()
            .any(|g| g == "*" || *g == attrs.api_group)
        {
            return false;
        }
        let combined = if attrs.subresource.is_empty() {
            attrs.resource.clone()
        } else {
            format!("{}/{}", attrs.resource, attrs.subresource)
        };
        let res_ok = self.resources.iter().any(|r| {
            r == "*"
                || *r == combined
                || (!attrs.subresource.is_empty() && *r == format!("*/{}", attrs.subresource))
                || (*r == format!("{}/*", attrs.resource) && !attrs.subresource.is_empty())
        });
        if !res_ok {
            return false;
        }
        self.resource_names.is_empty()
            || (!attrs.name.is_empty() && self.resource_names.contains(&attrs.name))
    }

    fn allows_path(&self, path: &str) -> bool {
        self.non_resource_urls.iter().any(|u| {
            u == "*"
                || u == path
                || u.strip_suffix('*')
                    .is_some_and(|prefix| path.starts_with(prefix))
        })
    }

    /// Whether this rule allows the request.
    pub fn allows(&self, attrs: &Attributes) -> bool {
        if !self.allows_verb(&attrs.verb) {
            return false;
        }
        if attrs.resource_request {
            self.allows_resource(attrs)
        } else {
            self.allows_path(&attrs.path)
        }
    }
}

/// What a request asks to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    /// The verb: get, list, watch, create, update, patch, delete, deletecollection, or a custom verb.
    pub verb: String,
    /// Whether this is a resource request (otherwise `path` is set).
    pub resource_request: bool,
    /// The namespace ("" for cluster-scoped or all namespaces).
    pub namespace: String,
    /// The API group.
    pub api_group: String,
    /// The resource plural.
    pub resource: String,
    /// The subresource, if any.
    pub subresource: String,
    /// The object name, if any.
    pub name: String,
    /// The path, for non-resource requests.
    pub path: String,
}

/// The answer to an authorization question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request is allowed.
    pub allowed: bool,
    /// Which binding allowed it, in kube-apiserver's words, or empty.
    pub reason: String,
}

#[derive(Debug)]
struct Binding {
    name: String,
    namespace: String,
    role_kind: String,
    role_name: String,
    subjects: Vec<(String, String, String)>,
}

/// What aggregation needs of a stored ClusterRole.
#[derive(Debug)]
struct ClusterRoleDef {
    labels: BTreeMap<String, String>,
    /// Its own `rules`.
    own: Vec<Rule>,
    /// `aggregationRule.clusterRoleSelectors`, for a role that aggregates others.
    selectors: Option<Vec<Value>>,
}

/// Whether any of an aggregating role's selectors selects `labels`. A selector with neither
/// `matchLabels` nor `matchExpressions` selects nothing, as in kube-controller-manager.
fn aggregates(selectors: &[Value], labels: &BTreeMap<String, String>) -> bool {
    selectors.iter().any(|sel| {
        let has_rules = sel.get("matchLabels").and_then(Value::as_object).is_some()
            || sel.get("matchExpressions").is_some();
        has_rules && crate::selectors::label_selector_json_matches(sel, labels)
    })
}

#[derive(Debug, Default)]
struct Snapshot {
    /// Effective rules of each ClusterRole, aggregation applied.
    cluster_roles: HashMap<String, Vec<Rule>>,
    /// ClusterRoles as stored (their labels, rules and selectors), for aggregation.
    cluster_role_defs: BTreeMap<String, ClusterRoleDef>,
    /// ClusterRoles that aggregate others.
    aggregators: BTreeSet<String>,
    roles: HashMap<(String, String), Vec<Rule>>,
    cluster_bindings: BTreeMap<String, Binding>,
    /// ClusterRoleBinding names by subject key (`User:n`, `Group:n`, `ServiceAccount:ns/n`).
    cluster_binding_index: HashMap<String, BTreeSet<String>>,
    bindings: HashMap<String, BTreeMap<String, Binding>>,
}

fn subject_key((kind, name, ns): &(String, String, String), binding_ns: &str) -> String {
    match kind.as_str() {
        "ServiceAccount" => {
            let ns = if ns.is_empty() {
                binding_ns
            } else {
                ns.as_str()
            };
            format!("ServiceAccount:{ns}/{name}")
        }
        other => format!("{other}:{name}"),
    }
}

fn user_keys(user: &UserInfo) -> Vec<String> {
    let mut keys = vec![format!("User:{}", user.name)];
    keys.extend(user.groups.iter().map(|g| format!("Group:{g}")));
    if let Some(rest) = user.name.strip_prefix("system:serviceaccount:")
        && let Some((ns, name)) = rest.split_once(':')
    {
        keys.push(format!("ServiceAccount:{ns}/{name}"));
    }
    keys
}

fn own_rules(cr: &Value) -> Vec<Rule> {
    cr.get("rules")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(Rule::from_json).collect())
        .unwrap_or_default()
}

fn name_of(v: &Value) -> &str {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn namespace_of(v: &Value) -> &str {
    v.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn binding_of(v: &Value) -> Binding {
    Binding {
        name: v
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .into(),
        namespace: v
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .into(),
        role_kind: v
            .pointer("/roleRef/kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .into(),
        role_name: v
            .pointer("/roleRef/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .into(),
        subjects: v
            .get("subjects")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|s| {
                        (
                            s["kind"].as_str().unwrap_or_default().to_string(),
                            s["name"].as_str().unwrap_or_default().to_string(),
                            s["namespace"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn subject_matches(
    user: &UserInfo,
    binding_ns: &str,
    (kind, name, ns): &(String, String, String),
) -> bool {
    match kind.as_str() {
        "User" => user.name == *name,
        "Group" => user.groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            let ns = if ns.is_empty() {
                binding_ns
            } else {
                ns.as_str()
            };
            user.name == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

fn all_items(store: &Store, key: &str) -> ApiResult<Vec<Value>> {
    Ok(store.list(key, None, None, 0)?.items)
}

impl Snapshot {
    fn load(store: &Store) -> ApiResult<Self> {
        let mut snap = Snapshot::default();
        for cr in all_items(store, "rbac.authorization.k8s.io/clusterroles")? {
            snap.put_cluster_role(&cr);
        }
        let names: Vec<String> = snap.cluster_role_defs.keys().cloned().collect();
        for name in names {
            snap.rebuild_cluster_role(&name);
        }
        for r in all_items(store, "rbac.authorization.k8s.io/roles")? {
            snap.apply("rbac.authorization.k8s.io/roles", &r, false);
        }
        for b in all_items(store, "rbac.authorization.k8s.io/clusterrolebindings")? {
            snap.apply("rbac.authorization.k8s.io/clusterrolebindings", &b, false);
        }
        for b in all_items(store, "rbac.authorization.k8s.io/rolebindings")? {
            snap.apply("rbac.authorization.k8s.io/rolebindings", &b, false);
        }
        Ok(snap)
    }

    /// Records a ClusterRole's definition; its effective rules are rebuilt by the caller.
    fn put_cluster_role(&mut self, cr: &Value) {
        let name = name_of(cr).to_string();
        let selectors = cr
            .pointer("/aggregationRule/clusterRoleSelectors")
            .and_then(Value::as_array)
            .cloned();
        if selectors.is_some() {
            self.aggregators.insert(name.clone());
        } else {
            self.aggregators.remove(&name);
        }
        let def = ClusterRoleDef {
            labels: labels_of(cr),
            own: own_rules(cr),
            selectors,
        };
        self.cluster_role_defs.insert(name, def);
    }

    /// Recomputes the effective rules of one ClusterRole: its own, and for an aggregating
    /// role those of every role it selects.
    fn rebuild_cluster_role(&mut self, name: &str) {
        let Some(def) = self.cluster_role_defs.get(name) else {
            self.cluster_roles.remove(name);
            return;
        };
        let mut rules = def.own.clone();
        if let Some(selectors) = &def.selectors {
            for (other_name, other) in &self.cluster_role_defs {
                if other_name != name && aggregates(selectors, &other.labels) {
                    rules.extend(other.own.iter().cloned());
                }
            }
        }
        self.cluster_roles.insert(name.to_string(), rules);
    }

    /// A ClusterRole written or deleted: rebuilds it, and the aggregating roles that selected
    /// it before or select it now. A write costs the aggregators it concerns, not a pass over
    /// every role.
    fn change_cluster_role(&mut self, name: &str, written: Option<&Value>) {
        let before = self.cluster_role_defs.remove(name).map(|d| d.labels);
        self.aggregators.remove(name);
        if let Some(cr) = written {
            self.put_cluster_role(cr);
        }
        let after = self.cluster_role_defs.get(name).map(|d| &d.labels);
        let concerned: Vec<String> = self
            .aggregators
            .iter()
            .filter(|a| a.as_str() != name)
            .filter(|a| {
                let selectors = self.cluster_role_defs[a.as_str()]
                    .selectors
                    .as_deref()
                    .unwrap_or_default();
                before
                    .iter()
                    .chain(after)
                    .any(|labels| aggregates(selectors, labels))
            })
            .cloned()
            .collect();
        self.rebuild_cluster_role(name);
        for a in concerned {
            self.rebuild_cluster_role(&a);
        }
    }

    /// Applies one stored write (or deletion) of an RBAC object.
    fn apply(&mut self, key: &str, obj: &Value, deleted: bool) {
        let name = name_of(obj).to_string();
        let ns = namespace_of(obj).to_string();
        match key {
            "rbac.authorization.k8s.io/clusterroles" => {
                self.change_cluster_role(&name, (!deleted).then_some(obj));
            }
            "rbac.authorization.k8s.io/roles" => {
                if deleted {
                    self.roles.remove(&(ns, name));
                } else {
                    self.roles.insert((ns, name), own_rules(obj));
                }
            }
            "rbac.authorization.k8s.io/clusterrolebindings" => {
                if let Some(old) = self.cluster_bindings.remove(&name) {
                    for s in &old.subjects {
                        let k = subject_key(s, "");
                        if let Some(set) = self.cluster_binding_index.get_mut(&k) {
                            set.remove(&name);
                            if set.is_empty() {
                                self.cluster_binding_index.remove(&k);
                            }
                        }
                    }
                }
                if !deleted {
                    let b = binding_of(obj);
                    for s in &b.subjects {
                        self.cluster_binding_index
                            .entry(subject_key(s, ""))
                            .or_default()
                            .insert(name.clone());
                    }
                    self.cluster_bindings.insert(name, b);
                }
            }
            "rbac.authorization.k8s.io/rolebindings" => {
                let list = self.bindings.entry(ns.clone()).or_default();
                if deleted {
                    list.remove(&name);
                    if list.is_empty() {
                        self.bindings.remove(&ns);
                    }
                } else {
                    list.insert(name, binding_of(obj));
                }
            }
            _ => {}
        }
    }

    /// Rules granted to `user` in `namespace` (cluster-wide rules included), each with the
    /// binding and subject that grant it.
    fn rules_for<'a>(&'a self, user: &UserInfo, namespace: &str) -> Vec<Grant<'a>> {
        let mut out = Vec::new();
        let mut candidates: BTreeSet<&String> = BTreeSet::new();
        for k in user_keys(user) {
            if let Some(set) = self.cluster_binding_index.get(&k) {
                candidates.extend(set.iter());
            }
        }
        for b in candidates
            .into_iter()
            .filter_map(|n| self.cluster_bindings.get(n))
        {
            if let Some(s) = b.subjects.iter().find(|s| subject_matches(user, "", s))
                && b.role_kind == "ClusterRole"
                && let Some(rules) = self.cluster_roles.get(&b.role_name)
            {
                out.extend(rules.iter().map(|rule| Grant {
                    rule,
                    binding: b,
                    subject: s,
                    cluster_wide: true,
                }));
            }
        }
        if !namespace.is_empty()
            && let Some(list) = self.bindings.get(namespace)
        {
            for b in list.values() {
                let Some(s) = b
                    .subjects
                    .iter()
                    .find(|s| subject_matches(user, &b.namespace, s))
                else {
                    continue;
                };
                let rules = match b.role_kind.as_str() {
                    "ClusterRole" => self.cluster_roles.get(&b.role_name),
                    "Role" => self
                        .roles
                        .get(&(namespace.to_string(), b.role_name.clone())),
                    _ => None,
                };
                if let Some(rules) = rules {
                    // Rules reached through a RoleBinding never grant non-resource URLs.
                    out.extend(rules.iter().filter(|r| r.non_resource_urls.is_empty()).map(
                        |rule| Grant {
                            rule,
                            binding: b,
                            subject: s,
                            cluster_wide: false,
                        },
                    ));
                }
            }
        }
        out
    }
}

/// One rule a user holds, and the binding and subject that grant it.
struct Grant<'a> {
    rule: &'a Rule,
    binding: &'a Binding,
    subject: &'a (String, String, String),
    /// Granted by a ClusterRoleBinding, not a RoleBinding.
    cluster_wide: bool,
}

impl Grant<'_> {
    /// The sentence kube-apiserver uses to name the grant's source.
    fn why(&self) -> String {
        let (b, s) = (self.binding, self.subject);
        if self.cluster_wide {
            format!(
                "RBAC: allowed by ClusterRoleBinding \"{}\" of ClusterRole \"{}\" to {} \"{}\"",
                b.name, b.role_name, s.0, s.1
            )
        } else {
            format!(
                "RBAC: allowed by RoleBinding \"{}/{}\" of {} \"{}\" to {} \"{}\"",
                b.name, b.namespace, b.role_kind, b.role_name, s.0, s.1
            )
        }
    }
}

/// The RBAC authorizer.
pub struct Authorizer {
    store: Arc<Store>,
    /// Updated in place under the write lock by every RBAC write; a decision holds the read
    /// lock only while it looks at the rules.
    snapshot: RwLock<Option<Snapshot>>,
}

/// Storage keys of the RBAC kinds; a write to any of them invalidates the snapshot.
pub const RBAC_KEYS: [&str; 4] = [
    "rbac.authorization.k8s.io/roles",
    "rbac.authorization.k8s.io/clusterroles",
    "rbac.authorization.k8s.io/rolebindings",
    "rbac.authorization.k8s.io/clusterrolebindings",
];

impl Authorizer {
    /// An authorizer over the RBAC objects in `store`.
    pub fn new(store: Arc<Store>) -> Arc<Self> {
        // Loaded before the hook is installed; no writer runs while a server is being built.
        let initial = Snapshot::load(&store).ok();
        let authz = Arc::new(Authorizer {
            store: store.clone(),
            snapshot: RwLock::new(initial),
        });
        let weak = Arc::downgrade(&authz);
        // Each RBAC write updates the snapshot in place, so a write costs one object: never a
        // reload, and never a copy of the whole snapshot.
        store.on_write(Arc::new(move |event| {
            if RBAC_KEYS.contains(&event.key.as_str())
                && let Some(a) = weak.upgrade()
            {
                let mut guard = a.snapshot.write().unwrap_or_else(|e| e.into_inner());
                if let Some(snap) = guard.as_mut() {
                    snap.apply(
                        &event.key,
                        &event.object,
                        event.kind == crate::store::watch::EventType::Deleted,
                    );
                }
            }
        }));
        authz
    }

    /// Runs `f` on the snapshot under the read lock, loading the snapshot first if it could
    /// not be loaded when the authorizer was made.
    fn with_snapshot<R>(&self, f: impl FnOnce(&Snapshot) -> R) -> ApiResult<R> {
        {
            let guard = self.snapshot.read().unwrap_or_else(|e| e.into_inner());
            if let Some(snap) = guard.as_ref() {
                return Ok(f(snap));
            }
        }
        // Loaded without the lock: the store's writers run the hook, which takes it.
        let fresh = Snapshot::load(&self.store)?;
        let mut guard = self.snapshot.write().unwrap_or_else(|e| e.into_inner());
        Ok(f(guard.get_or_insert(fresh)))
    }

    /// Decides whether `user` may do what `attrs` describe.
    pub fn authorize(&self, user: &UserInfo, attrs: &Attributes) -> ApiResult<Decision> {
        if user.is_superuser() {
            return Ok(Decision {
                allowed: true,
                reason: "system:masters is the superuser group".into(),
            });
        }
        self.with_snapshot(|snap| {
            let grant = snap
                .rules_for(user, &attrs.namespace)
                .into_iter()
                .find(|g| g.rule.allows(attrs));
            match grant {
                Some(g) => Decision {
                    allowed: true,
                    reason: g.why(),
                },
                None => Decision {
                    allowed: false,
                    reason: String::new(),
                },
            }
        })
    }

    /// Every rule `user` holds in `namespace`, including cluster-wide ones.
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> ApiResult<Vec<Rule>> {
        self.with_snapshot(|snap| {
            snap.rules_for(user, namespace)
                .into_iter()
                .map(|g| g.rule.clone())
                .collect()
        })
    }

    /// The rules of a referenced role, for escalation checks on bindings.
    pub fn role_rules(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> ApiResult<Option<Vec<Rule>>> {
        self.with_snapshot(|snap| match kind {
            "ClusterRole" => snap.cluster_roles.get(name).cloned(),
            "Role" => snap
                .roles
                .get(&(namespace.to_string(), name.to_string()))
                .cloned(),
            _ => None,
        })
    }
}

/// Whether `owned` covers every permission in `requested`, with kube-apiserver's escalation
/// semantics: a wildcard in the request is covered only by a wildcard.
pub fn covers(owned: &[Rule], requested: &Rule) -> bool {
    let covered = |pick: &dyn Fn(&Rule) -> bool| owned.iter().any(pick);
    if !requested.non_resource_urls.is_empty() {
        return requested.verbs.iter().all(|v| {
            requested.non_resource_urls.iter().all(|u| {
                covered(&|o: &Rule| {
                    o.verbs.iter().any(|ov| ov == "*" || ov == v)
                        && o.non_resource_urls.iter().any(|ou| {
                            ou == "*"
                                || ou == u
                                || ou.strip_suffix('*').is_some_and(|p| u.starts_with(p))
                        })
                })
            })
        });
    }
    let names: Vec<Option<&String>> = if requested.resource_names.is_empty() {
        vec![None]
    } else {
        requested.resource_names.iter().map(Some).collect()
    };
    requested.verbs.iter().all(|v| {
        requested.api_groups.iter().all(|g| {
            requested.resources.iter().all(|r| {
                names.iter().all(|n| {
                    covered(&|o: &Rule| {
                        o.verbs.iter().any(|ov| ov == "*" || ov == v)
                            && o.api_groups.iter().any(|og| og == "*" || og == g)
                            && o.resources.iter().any(|or| {
                                or == "*"
                                    || or == r
                                    || r.split_once('/').is_some_and(|(base, sub)| {
                                        *or == format!("{base}/*") || *or == format!("*/{sub}")
                                    })
                            })
                            && (o.resource_names.is_empty()
                                || n.is_some_and(|n| o.resource_names.contains(n)))
                    })
                })
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Mutation;
    use serde_json::json;

    fn put(store: &Store, key: &str, ns: &str, obj: Value) {
        let name = obj["metadata"]["name"].as_str().unwrap().to_string();
        store
            .mutate(key, ns, &name, |_, _| Ok(Mutation::Put(obj)))
            .unwrap();
    }

    fn attrs(verb: &str, ns: &str, resource: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource_request: true,
            namespace: ns.into(),
            resource: resource.into(),
            ..Default::default()
        }
    }

    fn setup() -> (Arc<Store>, Arc<Authorizer>) {
        let store = Store::in_memory(100);
        let authz = Authorizer::new(store.clone());
        put(
            &store,
            RBAC_KEYS[0],
            "a",
            json!({"metadata": {"name": "cm-reader", "namespace": "a"}, "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]}),
        );
        put(
            &store,
            RBAC_KEYS[2],
            "a",
            json!({"metadata": {"name": "alice-reads", "namespace": "a"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-reader"}, "subjects": [{"kind": "User", "name": "alice"}]}),
        );
        (store, authz)
    }

    #[test]
    fn a_role_in_one_namespace_grants_nothing_in_another() {
        let (_s, authz) = setup();
        let alice = UserInfo::new("alice", vec![], "x509");
        assert!(
            authz
                .authorize(&alice, &attrs("get", "a", "configmaps"))
                .unwrap()
                .allowed
        );
        assert!(
            !authz
                .authorize(&alice, &attrs("get", "b", "configmaps"))
                .unwrap()
                .allowed
        );
        assert!(
            !authz
                .authorize(&alice, &attrs("get", "", "configmaps"))
                .unwrap()
                .allowed
        );
        assert!(
            !authz
                .authorize(&alice, &attrs("delete", "a", "configmaps"))
                .unwrap()
                .allowed
        );
    }

    #[test]
    fn aggregated_cluster_roles_follow_the_roles_they_select() {
        let store = Store::in_memory(100);
        let authz = Authorizer::new(store.clone());
        let alice = UserInfo::new("alice", vec![], "x509");
        let can = |verb: &str| {
            authz
                .authorize(&alice, &attrs(verb, "a", "pods"))
                .unwrap()
                .allowed
        };
        let role = |name: &str, selected: bool, verbs: &[&str]| {
            let labels = if selected {
                json!({"example.com/aggregate-to-agg": "true"})
            } else {
                json!({})
            };
            json!({"metadata": {"name": name, "labels": labels},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": verbs}]})
        };
        put(
            &store,
            RBAC_KEYS[1],
            "",
            json!({"metadata": {"name": "agg"}, "aggregationRule": {"clusterRoleSelectors":
                [{"matchLabels": {"example.com/aggregate-to-agg": "true"}}]}, "rules": []}),
        );
        put(
            &store,
            RBAC_KEYS[3],
            "",
            json!({"metadata": {"name": "alice-agg"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "agg"}, "subjects": [{"kind": "User", "name": "alice"}]}),
        );
        assert!(!can("get"));
        put(&store, RBAC_KEYS[1], "", role("r1", true, &["get"]));
        assert!(can("get"), "a selected role's rules join the aggregate");
        put(&store, RBAC_KEYS[1], "", role("other", false, &["delete"]));
        assert!(!can("delete"), "an unselected role's rules do not");
        put(&store, RBAC_KEYS[1], "", role("r1", true, &["list"]));
        assert!(
            can("list") && !can("get"),
            "a selected role's new rules replace its old"
        );
        put(&store, RBAC_KEYS[1], "", role("r1", false, &["list"]));
        assert!(
            !can("list"),
            "a role that loses the label leaves the aggregate"
        );
        put(&store, RBAC_KEYS[1], "", role("other", true, &["delete"]));
        assert!(can("delete"), "a role that gains the label joins it");
        store
            .mutate(RBAC_KEYS[1], "", "agg", |_, _| Ok(Mutation::Delete))
            .unwrap();
        assert!(!can("delete"), "a deleted aggregate grants nothing");
        // A fresh load agrees with the updates made in place.
        put(
            &store,
            RBAC_KEYS[1],
            "",
            json!({"metadata": {"name": "agg"}, "aggregationRule": {"clusterRoleSelectors":
                [{"matchLabels": {"example.com/aggregate-to-agg": "true"}}]}, "rules": []}),
        );
        let reloaded = Authorizer::new(store.clone());
        for verb in ["get", "list", "delete"] {
            assert_eq!(
                reloaded
                    .authorize(&alice, &attrs(verb, "a", "pods"))
                    .unwrap()
                    .allowed,
                can(verb),
                "{verb}"
            );
        }
        assert!(can("delete") && !can("list"));
    }

    #[test]
    fn a_user_with_no_binding_is_denied() {
        let (_s, authz) = setup();
        let bob = UserInfo::new("bob", vec![], "x509");
        assert!(
            !authz
                .authorize(&bob, &attrs("get", "a", "configmaps"))
                .unwrap()
                .allowed
        );
    }

    #[test]
    fn a_new_binding_takes_effect_at_once() {
        let (store, authz) = setup();
        let bob = UserInfo::new("bob", vec!["devs".into()], "x509");
        assert!(
            !authz
                .authorize(&bob, &attrs("list", "a", "configmaps"))
                .unwrap()
                .allowed
        );
        put(
            &store,
            RBAC_KEYS[2],
            "a",
            json!({"metadata": {"name": "devs", "namespace": "a"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-reader"}, "subjects": [{"kind": "Group", "name": "devs"}]}),
        );
        let d = authz
            .authorize(&bob, &attrs("list", "a", "configmaps"))
            .unwrap();
        assert!(d.allowed);
        assert!(d.reason.contains("RoleBinding \"devs/a\""), "{}", d.reason);
    }

    #[test]
    fn resource_names_limit_a_rule_to_named_objects() {
        let rule = Rule {
            verbs: vec!["get".into()],
            api_groups: vec!["".into()],
            resources: vec!["secrets".into()],
            resource_names: vec!["one".into()],
            ..Default::default()
        };
        let mut a = attrs("get", "a", "secrets");
        a.name = "one".into();
        assert!(rule.allows(&a));
        a.name = "two".into();
        assert!(!rule.allows(&a));
        a.name.clear();
        assert!(
            !rule.allows(&a),
            "a list is not limited to a name, so it is not allowed"
        );
    }

    #[test]
    fn subresources_need_their_own_grant() {
        let rule = Rule {
            verbs: vec!["update".into()],
            api_groups: vec!["*".into()],
            resources: vec!["managedclusters".into()],
            ..Default::default()
        };
        let mut a = attrs("update", "", "managedclusters");
        assert!(rule.allows(&a));
        a.subresource = "status".into();
        assert!(!rule.allows(&a));
    }

    #[test]
    fn escalation_check_needs_a_wildcard_to_grant_a_wildcard() {
        let owned = vec![Rule {
            verbs: vec!["get".into(), "list".into()],
            api_groups: vec!["".into()],
            resources: vec!["configmaps".into()],
            ..Default::default()
        }];
        let narrow = Rule {
            verbs: vec!["get".into()],
            api_groups: vec!["".into()],
            resources: vec!["configmaps".into()],
            ..Default::default()
        };
        let wide = Rule {
            verbs: vec!["*".into()],
            api_groups: vec!["".into()],
            resources: vec!["configmaps".into()],
            ..Default::default()
        };
        assert!(covers(&owned, &narrow));
        assert!(!covers(&owned, &wide));
    }

    #[test]
    fn non_resource_urls_match_by_prefix() {
        let rule = Rule {
            verbs: vec!["get".into()],
            non_resource_urls: vec!["/api/*".into(), "/version".into()],
            ..Default::default()
        };
        let a = |p: &str| Attributes {
            verb: "get".into(),
            path: p.into(),
            ..Default::default()
        };
        assert!(rule.allows(&a("/api/v1")));
        assert!(rule.allows(&a("/version")));
        assert!(!rule.allows(&a("/metrics")));
    }
}
