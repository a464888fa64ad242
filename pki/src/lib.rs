//! Garrison's PKI, a pure library (no network, no files): the CA that signs agent client
//! certificates, parsing and checking of agents' CSRs, the agent identity types, and the
//! certificate rotation policy.
//!
//! Module by concern: [`identity`] (who), [`csr`] (what is asked, checked), [`ca`] (issuance),
//! [`rotation`] (when to renew). Errors in [`error`] say who is at fault and never carry keys.

pub mod agent;
pub mod ca;
pub mod csr;
pub mod error;
pub mod identity;
pub mod rotation;

pub use agent::{CertInfo, KeyAndRequest, cert_info, new_request};
pub use ca::ClusterCa;
pub use csr::{ParsedCsr, parse as parse_csr};
pub use error::{CsrError, PkiError};
pub use identity::{AgentIdentity, ClusterName};
pub use rotation::RotationPolicy;
