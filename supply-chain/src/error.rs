//! Why verification could not decide or did not pass, grouped by who is at fault. No variant
//! carries key material or credentials.

/// A ClusterImagePolicy or TrustRoot that cannot be used: its author's fault. An image that
/// such a policy would cover is refused (fail closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A field is missing, of the wrong type, or has a value upstream does not accept.
    #[error("{object}: {field}: {message}")]
    Invalid {
        /// `ClusterImagePolicy/<name>` or `TrustRoot/<name>`.
        object: String,
        /// The field's path, e.g. `spec.authorities[0].key.data`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A feature of upstream's shape that Garrison does not verify offline.
    #[error("{object}: {field}: {message}")]
    Unsupported {
        /// The object.
        object: String,
        /// The field.
        field: String,
        /// What to use instead.
        message: String,
    },
}

impl PolicyError {
    /// The object at fault: `ClusterImagePolicy/<name>` or `TrustRoot/<name>`.
    pub fn object(&self) -> &str {
        match self {
            PolicyError::Invalid { object, .. } | PolicyError::Unsupported { object, .. } => object,
        }
    }
}

/// A failure to read what the registry holds: the registry's or the network's fault (or the
/// pull secret's). Verification fails closed on any of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The registry could not be reached or did not answer in time.
    #[error("{registry}: {message}")]
    Unreachable {
        /// The registry host.
        registry: String,
        /// Why.
        message: String,
    },
    /// The registry refused the credentials, or asked for some and none were given.
    #[error("{registry}: authentication failed: {message}")]
    Unauthorized {
        /// The registry host.
        registry: String,
        /// Why.
        message: String,
    },
    /// The registry answered with an unexpected status or content.
    #[error("{registry}: {message}")]
    Protocol {
        /// The registry host.
        registry: String,
        /// What was unexpected.
        message: String,
    },
    /// A blob or manifest does not have the digest it was asked for by.
    #[error("{registry}: {what} does not have digest {digest}")]
    DigestMismatch {
        /// The registry host.
        registry: String,
        /// What was fetched.
        what: String,
        /// The digest asked for.
        digest: String,
    },
    /// Plain HTTP to a registry no policy marks insecure.
    #[error("{0}: plain HTTP is allowed only to registries marked insecure")]
    InsecureRefused(String),
}
