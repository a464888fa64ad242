//! Garrison's image supply chain: what the work agent checks before it applies any image.
//!
//! - [`reference`]: image references parsed into registry, repository, tag and digest.
//! - [`glob`]: ClusterImagePolicy image globs, as sigstore's policy-controller matches them.
//! - [`policy`]: ClusterImagePolicy and TrustRoot, read.
//! - [`sct`]: signed certificate timestamps embedded in keyless certificates (RFC 6962).
//! - [`verify`]: a digest's cosign signatures checked against a policy, with no I/O.
//! - [`registry`]: the OCI distribution API: tags to digests, signature manifests and blobs.
//! - [`sign`]: signatures in cosign's format, from a key or a local Fulcio-style CA and log.
//! - [`check`]: the decision for one image, with the verification cache.
//! - [`error`]: why a policy or a registry could not be used.

pub mod check;
pub mod error;
pub mod glob;
pub mod policy;
pub mod reference;
pub mod registry;
pub mod sct;
pub mod sign;
pub mod verify;
