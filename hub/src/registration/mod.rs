//! Cluster registration on the hub.

pub mod csr_signer;
