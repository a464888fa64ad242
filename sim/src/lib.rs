//! Simulated managed clusters, run by the real agent.
//!
//! A simulated cluster is an in-memory API server (the apiserver crate) with a few Nodes, the
//! well-known ClusterClaims and a status simulator in the spirit of KWOK ([`simulator`]). The
//! agent reads it through a `kube::Client` as it reads a real cluster, so bootstrap, CSR,
//! acceptance, lease, status and the work agent run their production code against the hub.
//!
//! [`cluster`] makes one; [`fleet`] runs thousands of agents with light clusters in one process
//! against any hub, for `garrison sim` and the fleet benchmark. The agent crate does not depend
//! on this one: a caller hands the agent a [`garrison_klusterlet::agent::Simulator`].

pub mod cluster;
pub mod fleet;
pub mod simulator;
