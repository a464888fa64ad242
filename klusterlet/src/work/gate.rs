//! Gates: checks that run over a work's manifests before anything of it is applied. Each gate
//! may rewrite the manifests (pinning an image to its digest, say) or refuse the whole work; a
//! refusal stops the work before its first manifest, is reported as `Applied=False` with the
//! gate's reason and message, and deletes nothing that an earlier generation applied.

use futures::future::BoxFuture;
use garrison_api::work::v1::ManifestWork;
use serde_json::Value;

/// Why a gate refused a work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The Applied condition's reason, e.g. `ImageVerificationFailed`.
    pub reason: String,
    /// What failed, naming the manifest and the rule.
    pub message: String,
}

/// A check run before apply. Gates run in order; the first refusal wins.
pub trait Gate: Send + Sync {
    /// The gate's name, for logs.
    fn name(&self) -> &str;
    /// Checks (and may rewrite) the manifests of `work`, in the work's order. A gate that cannot
    /// decide must refuse: gates fail closed.
    fn check<'a>(
        &'a self,
        work: &'a ManifestWork,
        manifests: &'a mut [Value],
    ) -> BoxFuture<'a, Result<(), Refusal>>;
}

/// Runs `gates` in order over the manifests.
pub async fn run_gates(
    gates: &[std::sync::Arc<dyn Gate>],
    work: &ManifestWork,
    manifests: &mut [Value],
) -> Result<(), Refusal> {
    for gate in gates {
        if let Err(r) = gate.check(work, manifests).await {
            tracing::warn!(gate = gate.name(), work = ?work.metadata.name, reason = %r.reason, "a gate refused the work");
            return Err(r);
        }
    }
    Ok(())
}
