//! Garrison's policy engine, pure library code with no I/O but reading suite files and the
//! compliance history's store:
//!
//! - [`rego`]: Rego compiled and evaluated with regorus, bounded in time;
//! - [`gatekeeper`]: Gatekeeper ConstraintTemplates and Constraints as upstream writes them:
//!   templates compiled, constraints' parameters checked against the template's schema,
//!   `match` applied, reviews shaped as AdmissionRequests, and the inventory as `data.inventory`;
//! - [`gofmt`]: OPA's `sprintf`, Go's formatting, where regorus's differs;
//! - [`cel`]: Gatekeeper's K8sNativeValidation engine, CEL validations;
//! - [`quantity`]: Kubernetes resource quantities, for CEL's `quantity` library;
//! - [`config_policy`]: ConfigurationPolicy judged without I/O: comparison, enforcement and
//!   upstream's messages;
//! - [`dependencies`]: policy dependencies, and the Pending message of a template that waits;
//! - [`suite`]: Gatekeeper's `gator verify` test suites, run with this engine;
//! - [`history`]: the compliance history: its hash chain and signed checkpoints, their
//!   verification naming the first record altered, removed, inserted or reordered, its
//!   storage, queries and reports, and the export auditors verify offline.

pub mod cel;
pub mod config_policy;
pub mod dependencies;
pub mod gatekeeper;
pub mod gofmt;
#[cfg(feature = "history")]
pub mod history;
mod opa;
pub mod quantity;
pub mod rego;
pub mod suite;
