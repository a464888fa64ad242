//! Identities of managed clusters and their agents. They can only be built by parsing, so code
//! holding one never re-checks it.
//!
//! An agent's certificate subject is
//! `CN=system:open-cluster-management:<cluster>:<agent-id>` with
//! `O=system:open-cluster-management:<cluster>` and
//! `O=system:open-cluster-management:managed-clusters`, as upstream OCM's registration uses.

use std::fmt;

use crate::error::CsrError;

/// Prefix of every agent user and group.
pub const PREFIX: &str = "system:open-cluster-management:";
/// The group every managed-cluster agent is in.
pub const MANAGED_CLUSTERS_GROUP: &str = "system:open-cluster-management:managed-clusters";

/// A managed cluster's name: an RFC 1123 DNS label (it names the cluster's namespace on the hub).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterName(String);

impl ClusterName {
    /// Parses a cluster name.
    pub fn parse(s: &str) -> Result<Self, CsrError> {
        let ok = !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if ok {
            Ok(ClusterName(s.to_string()))
        } else {
            Err(CsrError::BadClusterName(s.chars().take(80).collect()))
        }
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The cluster's own group, `system:open-cluster-management:<cluster>`.
    pub fn group(&self) -> String {
        format!("{PREFIX}{}", self.0)
    }
}

impl fmt::Display for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A user's groups without `system:authenticated`, which every authenticated user has and no
/// certificate names.
fn own_groups(groups: &[String]) -> Vec<String> {
    groups
        .iter()
        .filter(|g| g.as_str() != "system:authenticated")
        .cloned()
        .collect()
}

/// An agent's identity: its cluster and its agent id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AgentIdentity {
    cluster: ClusterName,
    agent_id: String,
}

fn valid_agent_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl AgentIdentity {
    /// Builds the identity an agent of `cluster` with `agent_id` should request.
    pub fn new(cluster: ClusterName, agent_id: &str) -> Result<Self, CsrError> {
        if !valid_agent_id(agent_id) {
            return Err(CsrError::BadCommonName(format!(
                "{PREFIX}{cluster}:{agent_id}"
            )));
        }
        Ok(AgentIdentity {
            cluster,
            agent_id: agent_id.into(),
        })
    }

    /// Parses an identity from a certificate's or CSR's common name and organizations. The
    /// organizations must be exactly the cluster's group and the managed-clusters group.
    pub fn from_subject(common_name: &str, organizations: &[String]) -> Result<Self, CsrError> {
        let rest = common_name
            .strip_prefix(PREFIX)
            .ok_or_else(|| CsrError::BadCommonName(common_name.chars().take(120).collect()))?;
        let (cluster, agent_id) = rest
            .split_once(':')
            .ok_or_else(|| CsrError::BadCommonName(common_name.chars().take(120).collect()))?;
        let cluster = ClusterName::parse(cluster)?;
        if !valid_agent_id(agent_id) {
            return Err(CsrError::BadCommonName(
                common_name.chars().take(120).collect(),
            ));
        }
        let mut want = vec![cluster.group(), MANAGED_CLUSTERS_GROUP.to_string()];
        let mut got = organizations.to_vec();
        want.sort();
        got.sort();
        if got != want {
            return Err(CsrError::BadOrganizations {
                cluster: cluster.to_string(),
                got: organizations.to_vec(),
            });
        }
        Ok(AgentIdentity {
            cluster,
            agent_id: agent_id.into(),
        })
    }

    /// Parses an authenticated user (its name and groups, as an API server reports them) as an
    /// agent identity. The `system:authenticated` group every user has is ignored; any other
    /// group beyond the agent's two makes it fail.
    pub fn from_user(name: &str, groups: &[String]) -> Result<Self, CsrError> {
        Self::from_subject(name, &own_groups(groups))
    }

    /// The cluster.
    pub fn cluster(&self) -> &ClusterName {
        &self.cluster
    }
    /// The agent id.
    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }
    /// The user name (the certificate's CN).
    pub fn user(&self) -> String {
        format!("{PREFIX}{}:{}", self.cluster, self.agent_id)
    }
    /// The groups (the certificate's O values).
    pub fn groups(&self) -> [String; 2] {
        [self.cluster.group(), MANAGED_CLUSTERS_GROUP.to_string()]
    }
}

/// The prefix of every add-on user and of the per-cluster add-on group:
/// `system:open-cluster-management:cluster:<cluster>:addon:<addon>`.
pub const ADDON_PREFIX: &str = "system:open-cluster-management:cluster:";
/// The prefix of the fleet-wide group of an add-on: `system:open-cluster-management:addon:<addon>`.
pub const ADDON_GROUP_PREFIX: &str = "system:open-cluster-management:addon:";

/// The hub identity of one add-on on one managed cluster, as upstream OCM names it: user
/// `system:open-cluster-management:cluster:<c>:addon:<a>:agent:<agent>`, groups
/// `system:open-cluster-management:cluster:<c>:addon:<a>` and `system:open-cluster-management:addon:<a>`.
///
/// Nothing else is an add-on identity: a subject with other groups (`system:masters`, a
/// cluster's agent group) is refused, so an add-on certificate holds only add-on RBAC.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AddonIdentity {
    cluster: ClusterName,
    addon: String,
    agent: String,
}

fn bad_addon_subject(cn: &str) -> CsrError {
    CsrError::BadCommonName(cn.chars().take(160).collect())
}

impl AddonIdentity {
    /// The identity of add-on `addon`'s agent `agent` on `cluster`.
    pub fn new(cluster: ClusterName, addon: &str, agent: &str) -> Result<Self, CsrError> {
        if !valid_agent_id(addon) || !valid_agent_id(agent) {
            return Err(bad_addon_subject(&format!(
                "{ADDON_PREFIX}{cluster}:addon:{addon}:agent:{agent}"
            )));
        }
        Ok(AddonIdentity {
            cluster,
            addon: addon.into(),
            agent: agent.into(),
        })
    }

    /// Parses a CSR subject or certificate user: the common name and the organizations, which
    /// must be exactly the add-on's two groups (`system:authenticated` may be listed too, as
    /// upstream's agents list it).
    pub fn from_subject(common_name: &str, organizations: &[String]) -> Result<Self, CsrError> {
        let rest = common_name
            .strip_prefix(ADDON_PREFIX)
            .ok_or_else(|| bad_addon_subject(common_name))?;
        let parts: Vec<&str> = rest.split(':').collect();
        let [cluster, "addon", addon, "agent", agent] = parts.as_slice() else {
            return Err(bad_addon_subject(common_name));
        };
        let id = AddonIdentity::new(ClusterName::parse(cluster)?, addon, agent)
            .map_err(|_| bad_addon_subject(common_name))?;
        let mut want = id.groups().to_vec();
        let mut got: Vec<String> = organizations
            .iter()
            .filter(|g| g.as_str() != "system:authenticated")
            .cloned()
            .collect();
        want.sort();
        got.sort();
        got.dedup();
        if got != want {
            return Err(CsrError::BadAddonOrganizations {
                want: want.join(", "),
                got: organizations.to_vec(),
            });
        }
        Ok(id)
    }

    /// The cluster.
    pub fn cluster(&self) -> &ClusterName {
        &self.cluster
    }
    /// The add-on's name.
    pub fn addon(&self) -> &str {
        &self.addon
    }
    /// The agent's name within the add-on.
    pub fn agent(&self) -> &str {
        &self.agent
    }
    /// The user name.
    pub fn user(&self) -> String {
        format!(
            "{ADDON_PREFIX}{}:addon:{}:agent:{}",
            self.cluster, self.addon, self.agent
        )
    }
    /// The per-cluster group (bound by the add-on's RoleBindings in the cluster namespace) and
    /// the fleet-wide group of the add-on.
    pub fn groups(&self) -> [String; 2] {
        [
            addon_cluster_group(self.cluster.as_str(), &self.addon),
            format!("{ADDON_GROUP_PREFIX}{}", self.addon),
        ]
    }
}

/// `system:open-cluster-management:cluster:<cluster>:addon:<addon>`.
pub fn addon_cluster_group(cluster: &str, addon: &str) -> String {
    format!("{ADDON_PREFIX}{cluster}:addon:{addon}")
}

/// A subject the hub's client signer issues certificates for: a managed cluster's agent, or an
/// add-on on a managed cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// A managed cluster's agent.
    Agent(AgentIdentity),
    /// An add-on's agent on a managed cluster.
    Addon(AddonIdentity),
}

impl From<AgentIdentity> for Identity {
    fn from(id: AgentIdentity) -> Self {
        Identity::Agent(id)
    }
}

impl From<AddonIdentity> for Identity {
    fn from(id: AddonIdentity) -> Self {
        Identity::Addon(id)
    }
}

impl Identity {
    /// Parses a subject as an add-on identity when its common name has the add-on prefix, else
    /// as an agent identity.
    pub fn from_subject(common_name: &str, organizations: &[String]) -> Result<Self, CsrError> {
        // By shape, not by prefix: the agent of a cluster named `cluster` has the CN
        // `system:open-cluster-management:cluster:<agent-id>`, and agent ids hold no `:`.
        let addon_shaped = common_name
            .strip_prefix(ADDON_PREFIX)
            .is_some_and(|rest| rest.contains(":addon:"));
        if addon_shaped {
            AddonIdentity::from_subject(common_name, organizations).map(Identity::Addon)
        } else {
            AgentIdentity::from_subject(common_name, organizations).map(Identity::Agent)
        }
    }
    /// Parses an authenticated user (its groups include `system:authenticated`).
    pub fn from_user(name: &str, groups: &[String]) -> Result<Self, CsrError> {
        Self::from_subject(name, &own_groups(groups))
    }
    /// The cluster.
    pub fn cluster(&self) -> &ClusterName {
        match self {
            Identity::Agent(a) => a.cluster(),
            Identity::Addon(a) => a.cluster(),
        }
    }
    /// The user name.
    pub fn user(&self) -> String {
        match self {
            Identity::Agent(a) => a.user(),
            Identity::Addon(a) => a.user(),
        }
    }
    /// The groups, in the order they are written into certificates.
    pub fn groups(&self) -> [String; 2] {
        match self {
            Identity::Agent(a) => a.groups(),
            Identity::Addon(a) => a.groups(),
        }
    }
    /// The agent identity, if this is one.
    pub fn agent(&self) -> Option<&AgentIdentity> {
        match self {
            Identity::Agent(a) => Some(a),
            Identity::Addon(_) => None,
        }
    }
    /// The add-on identity, if this is one.
    pub fn addon(&self) -> Option<&AddonIdentity> {
        match self {
            Identity::Agent(_) => None,
            Identity::Addon(a) => Some(a),
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.user())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orgs(cluster: &str) -> Vec<String> {
        vec![
            format!("{PREFIX}{cluster}"),
            MANAGED_CLUSTERS_GROUP.to_string(),
        ]
    }

    #[test]
    fn a_well_formed_subject_parses() {
        let id =
            AgentIdentity::from_subject("system:open-cluster-management:c1:agent-7", &orgs("c1"))
                .unwrap();
        assert_eq!(id.cluster().as_str(), "c1");
        assert_eq!(id.agent_id(), "agent-7");
        assert_eq!(id.user(), "system:open-cluster-management:c1:agent-7");
    }

    #[test]
    fn a_common_name_without_the_prefix_is_rejected() {
        assert!(matches!(
            AgentIdentity::from_subject("c1:agent", &orgs("c1")),
            Err(CsrError::BadCommonName(_))
        ));
        assert!(matches!(
            AgentIdentity::from_subject("system:open-cluster-management:c1", &orgs("c1")),
            Err(CsrError::BadCommonName(_))
        ));
        assert!(matches!(
            AgentIdentity::from_subject("system:open-cluster-management:c1:Agent", &orgs("c1")),
            Err(CsrError::BadCommonName(_))
        ));
        assert!(matches!(
            AgentIdentity::from_subject("system:open-cluster-management:C1:a", &orgs("c1")),
            Err(CsrError::BadClusterName(_))
        ));
    }

    #[test]
    fn organizations_must_name_the_same_cluster_and_nothing_else() {
        let e = AgentIdentity::from_subject("system:open-cluster-management:c1:a", &orgs("c2"))
            .unwrap_err();
        assert!(matches!(e, CsrError::BadOrganizations { .. }), "{e}");
        let mut extra = orgs("c1");
        extra.push("system:masters".into());
        assert!(
            AgentIdentity::from_subject("system:open-cluster-management:c1:a", &extra).is_err()
        );
        assert!(
            AgentIdentity::from_subject("system:open-cluster-management:c1:a", &orgs("c1")[..1])
                .is_err()
        );
    }

    #[test]
    fn cluster_names_are_dns_labels() {
        for bad in ["", "-a", "a-", "A", "a.b", "a_b", &"a".repeat(64)] {
            assert!(ClusterName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(ClusterName::parse("cluster-1").is_ok());
    }

    #[test]
    fn from_user_ignores_only_the_authenticated_group() {
        let name = "system:open-cluster-management:c1:agent";
        let mut groups = vec![
            "system:open-cluster-management:c1".to_string(),
            MANAGED_CLUSTERS_GROUP.to_string(),
            "system:authenticated".to_string(),
        ];
        assert!(AgentIdentity::from_user(name, &groups).is_ok());
        groups.push("system:masters".into());
        assert!(matches!(
            AgentIdentity::from_user(name, &groups),
            Err(CsrError::BadOrganizations { .. })
        ));
    }

    fn addon_orgs(cluster: &str, addon: &str) -> Vec<String> {
        vec![
            format!("system:open-cluster-management:cluster:{cluster}:addon:{addon}"),
            format!("system:open-cluster-management:addon:{addon}"),
            "system:authenticated".into(),
        ]
    }

    #[test]
    fn an_upstream_addon_subject_parses_and_nothing_near_it_does() {
        let cn = "system:open-cluster-management:cluster:c1:addon:managed-serviceaccount:agent:managed-serviceaccount";
        let id = Identity::from_subject(cn, &addon_orgs("c1", "managed-serviceaccount")).unwrap();
        let a = id.addon().unwrap();
        assert_eq!(a.cluster().as_str(), "c1");
        assert_eq!(a.addon(), "managed-serviceaccount");
        assert_eq!(id.user(), cn);
        // Another cluster's group, an extra group, a missing group: refused.
        for orgs in [
            addon_orgs("c2", "managed-serviceaccount"),
            [
                addon_orgs("c1", "managed-serviceaccount"),
                vec!["system:masters".into()],
            ]
            .concat(),
            vec![addon_orgs("c1", "managed-serviceaccount")[0].clone()],
            [addon_orgs("c1", "managed-serviceaccount"), orgs("c1")].concat(),
        ] {
            assert!(Identity::from_subject(cn, &orgs).is_err(), "{orgs:?}");
        }
        for cn in [
            "system:open-cluster-management:cluster:c1:addon:x",
            "system:open-cluster-management:cluster:c1:addon:x:agent:",
            "system:open-cluster-management:cluster:c1:addon:x:agent:y:z",
            "system:open-cluster-management:cluster:C1:addon:x:agent:y",
            "system:open-cluster-management:cluster:c1:notaddon:x:agent:y",
        ] {
            assert!(
                Identity::from_subject(cn, &addon_orgs("c1", "x")).is_err(),
                "{cn}"
            );
        }
        // The agent form still parses as an agent, even for a cluster named `cluster`.
        let odd = Identity::from_subject(
            "system:open-cluster-management:cluster:agent-1",
            &orgs("cluster"),
        )
        .unwrap();
        assert_eq!(odd.cluster().as_str(), "cluster");
        assert!(odd.agent().is_some());
        let agent =
            Identity::from_subject("system:open-cluster-management:c1:agent-7", &orgs("c1"))
                .unwrap();
        assert!(agent.agent().is_some());
    }
}
