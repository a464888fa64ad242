//! Cluster registration on the hub: the shared and per-cluster RBAC, the ManagedCluster
//! controller (accept, deny, delete, lease, taints), the renewal approver, and the embedded
//! client-certificate signer, and the cleaner of old CSRs and expired bootstrap tokens.

pub mod approver;
pub mod cleaner;
pub mod cluster;
pub mod csr_signer;
pub mod rbac;
