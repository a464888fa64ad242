//! Garrison's PKI, a pure library (no network, no files): the CA that signs agent client
//! certificates, parsing and checking of agents' CSRs, the agent identity types, and the
//! certificate rotation policy.
//!
//! Module by concern: [`identity`] (who), [`csr`] (what is asked, checked), [`ca`] (issuance),
//! [`rotation`] (when to renew). Errors in [`error`] say who is at fault and never carry keys.

pub mod agent;
pub mod ca;
pub mod csr;
pub mod custom;
pub mod error;
pub mod identity;
pub mod jws;
pub mod rotation;
pub mod secret;

pub use agent::{CertInfo, KeyAndRequest, cert_info, new_request};
pub use ca::ClusterCa;
pub use csr::{ParsedCsr, parse as parse_csr};
pub use custom::{CustomCsr, CustomSubject};
pub use error::{CsrError, PkiError};
pub use identity::{AddonIdentity, AgentIdentity, ClusterName, Identity};
pub use rotation::RotationPolicy;
pub use secret::SecretString;

/// A uniformly random string of lowercase letters and digits, from the system's secure random
/// source (bootstrap token parts, agent ids).
pub fn random_alphanumeric(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = vec![0u8; len];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("system randomness");
    // 252 = 7 * 36: rejecting bytes above it keeps the choice uniform.
    let mut out = String::with_capacity(len);
    let mut i = 0;
    while out.len() < len {
        if i == bytes.len() {
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
                .expect("system randomness");
            i = 0;
        }
        let b = bytes[i];
        i += 1;
        if b < 252 {
            out.push(ALPHABET[(b % 36) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn random_alphanumerics_are_lowercase_alphanumeric_and_differ() {
        let id = super::random_alphanumeric(10);
        assert_eq!(id.len(), 10);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
        assert_ne!(super::random_alphanumeric(10), id);
    }
}
