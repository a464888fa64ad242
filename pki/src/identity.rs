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
        let own: Vec<String> = groups
            .iter()
            .filter(|g| g.as_str() != "system:authenticated")
            .cloned()
            .collect();
        Self::from_subject(name, &own)
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
}
