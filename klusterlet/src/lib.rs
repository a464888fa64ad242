//! Garrison's agent, the klusterlet: it joins a hub with a bootstrap token and a pin of the hub
//! CA, holds a client certificate whose key never leaves the managed cluster, rotates it at 80%
//! of its lifetime, renews its lease, and reports the managed cluster's status.
//!
//! Modules by concern: [`state`] (the data directory), [`hub`] (pinned first contact and hub
//! clients), [`spoke`] (the managed cluster, real or simulated), [`agent`] (the loop),
//! [`metrics`] (the metrics endpoint).

pub mod addon;
pub mod agent;
pub mod hub;
pub mod metrics;
pub mod spoke;
pub mod state;
pub mod work;
