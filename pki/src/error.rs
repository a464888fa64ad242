//! Why a CSR or a key was refused. Variants are grouped by who is at fault; none carries key
//! material.

/// A refusal of a certificate signing request. Every variant is the requester's fault: the CSR
/// itself is malformed, or asks for something the hub does not grant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    /// The bytes are not a DER or PEM PKCS#10 request.
    #[error("the CSR is not a valid PKCS#10 request: {0}")]
    Malformed(String),
    /// The CSR's self-signature does not verify with its own public key.
    #[error("the CSR's signature does not verify")]
    BadSignature,
    /// The common name is not `system:open-cluster-management:<cluster>:<agent-id>`.
    #[error("common name {0:?} is not system:open-cluster-management:<cluster>:<agent-id>")]
    BadCommonName(String),
    /// The cluster name is not a DNS label.
    #[error("cluster name {0:?} is not a lowercase DNS label")]
    BadClusterName(String),
    /// The organizations are not exactly the cluster's group and the managed-clusters group.
    #[error(
        "organizations {got:?} must be exactly system:open-cluster-management:{cluster} and system:open-cluster-management:managed-clusters"
    )]
    BadOrganizations {
        /// The cluster named in the CN.
        cluster: String,
        /// The organizations found.
        got: Vec<String>,
    },
    /// An add-on subject's organizations are not exactly the add-on's groups.
    #[error("organizations {got:?} must be exactly {want}")]
    BadAddonOrganizations {
        /// The groups required.
        want: String,
        /// The organizations found.
        got: Vec<String>,
    },
    /// A custom-signer subject that cannot be issued.
    #[error("the requested subject cannot be issued: {0}")]
    BadCustomSubject(String),
    /// The CSR asks for another cluster's identity.
    #[error("the CSR is for cluster {requested:?}, but the requester is cluster {expected:?}")]
    WrongCluster {
        /// The cluster the request is for.
        requested: String,
        /// The cluster it had to be for.
        expected: String,
    },
    /// The CSR asks for a different agent identity than the requester's.
    #[error("the CSR is for {requested:?}, but the requester is {expected:?}")]
    WrongIdentity {
        /// The identity requested.
        requested: String,
        /// The identity of the requester.
        expected: String,
    },
    /// The CSR asks for server authentication or another usage a client does not get.
    #[error("usage {0:?} is not allowed: agent certificates are for client authentication only")]
    ForbiddenUsage(String),
    /// The requested lifetime is above the hub's maximum.
    #[error("requested lifetime of {requested_secs}s exceeds the maximum of {max_secs}s")]
    LifetimeTooLong {
        /// Seconds requested.
        requested_secs: u64,
        /// The maximum.
        max_secs: u64,
    },
    /// The key type or size is not accepted.
    #[error("key {0} is not accepted: use ECDSA P-256 or P-384, or RSA of at least 2048 bits")]
    WeakKey(String),
    /// The CSR asks for subject alternative names or other extensions a client does not get.
    #[error("extension {0} is not allowed in an agent CSR")]
    ForbiddenExtension(String),
}

/// A failure of the hub's own PKI: its configuration or the crypto library, not the requester.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// The CA certificate or key could not be loaded.
    #[error("the CA could not be loaded: {0}")]
    BadCa(String),
    /// A certificate could not be read.
    #[error("the certificate could not be read: {0}")]
    BadCertificate(String),
    /// Certificate generation failed.
    #[error("certificate generation failed: {0}")]
    Generation(#[from] rcgen::Error),
}
