//! Garrison's end-to-end tests: each module starts the real `garrison` binary (a hub, agents,
//! simulated clusters) and talks to it with kube-rs, kubectl and the CLI.
//!
//! They are one test binary, not one per file: every binary links the whole hub, agent and API
//! server, so two dozen of them cost gigabytes of disk and minutes of linking for nothing.
//! Run one area with a filter, e.g. `cargo test -p garrison-e2e --test e2e registration::`.

mod addons;
mod bad_input;
mod cli;
mod compliance_history;
mod csr_signer;
mod durability;
mod external;
mod health;
mod image_verify;
mod interop;
mod kube_client;
mod kubectl;
mod metrics;
mod placement;
mod policies;
mod policy_cli;
mod policy_lifecycle;
mod rbac;
mod registration;
mod rollout;
mod service_accounts;
mod sim;
mod traces;
mod work;
