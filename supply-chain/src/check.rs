//! What the work agent (and `garrison image verify`) decides for one image: which policies
//! cover it, its digest now, its signatures, each policy's verdict, and the reference to run,
//! pinned to the verified digest. Verdicts that passed are cached by (policy content, digest),
//! never by tag.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::policy::{Mode, Policies};
use crate::reference::{Digest, Reference};
use crate::registry::Registry;
use crate::verify::{Verdict, verify_with};

/// What to do with an image that no policy covers, on a cluster that has image policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoMatch {
    /// Refuse it (upstream's default).
    Deny,
    /// Apply it and report.
    Warn,
    /// Apply it.
    Allow,
}

impl std::str::FromStr for NoMatch {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "deny" => Ok(NoMatch::Deny),
            "warn" => Ok(NoMatch::Warn),
            "allow" => Ok(NoMatch::Allow),
            other => Err(format!("{other:?} is not deny, warn or allow")),
        }
    }
}

/// The decision for one image.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The image as written.
    pub image: String,
    /// The verified digest, when the image resolved.
    pub digest: Option<Digest>,
    /// The reference to apply: pinned to the digest when every covering policy passed.
    pub pinned: Option<Reference>,
    /// Each covering policy's verdict.
    pub verdicts: Vec<Verdict>,
    /// Whether the image is refused.
    pub refused: bool,
    /// Why it is refused, or what was warned about, one line each.
    pub reasons: Vec<String>,
}

/// Verdicts that passed, by (policy content hash, digest), bounded and expiring.
pub struct Cache {
    entries: std::sync::Mutex<HashMap<(String, Digest), (Verdict, Instant)>>,
    ttl: Duration,
    capacity: usize,
}

impl Cache {
    /// A cache of at most `capacity` verdicts, each kept for `ttl`.
    pub fn new(capacity: usize, ttl: Duration) -> Cache {
        Cache {
            entries: Default::default(),
            ttl,
            capacity: capacity.max(1),
        }
    }

    /// The passed verdict of `policy` (its content hash) for `digest`, if still fresh.
    pub fn get(&self, policy: &str, digest: &Digest) -> Option<Verdict> {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let key = (policy.to_string(), digest.clone());
        match map.get(&key) {
            Some((v, at)) if at.elapsed() < self.ttl => Some(v.clone()),
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Keeps a passed verdict.
    pub fn put(&self, policy: &str, digest: &Digest, verdict: Verdict) {
        if !verdict.passed {
            return;
        }
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.capacity {
            let ttl = self.ttl;
            map.retain(|_, (_, at)| at.elapsed() < ttl);
        }
        if map.len() >= self.capacity
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            (policy.to_string(), digest.clone()),
            (verdict, Instant::now()),
        );
    }

    /// How many verdicts are kept.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The longest one decision may take, all its registry requests together.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Decides `image` (as written in a container spec) against `policies`, within [`DEADLINE`]: a
/// decision that takes longer refuses the image.
pub async fn check_image(
    policies: &Policies,
    registry: &Registry,
    cache: &Cache,
    image: &str,
    no_match: NoMatch,
) -> Decision {
    match tokio::time::timeout(DEADLINE, decide(policies, registry, cache, image, no_match)).await {
        Ok(d) => d,
        Err(_) => Decision {
            image: image.to_string(),
            digest: None,
            pinned: None,
            verdicts: vec![],
            refused: true,
            reasons: vec![format!(
                "verification did not finish within {} s",
                DEADLINE.as_secs()
            )],
        },
    }
}

async fn decide(
    policies: &Policies,
    registry: &Registry,
    cache: &Cache,
    image: &str,
    no_match: NoMatch,
) -> Decision {
    let mut d = Decision {
        image: image.to_string(),
        digest: None,
        pinned: None,
        verdicts: vec![],
        refused: false,
        reasons: vec![],
    };
    let reference = match Reference::parse(image) {
        Ok(r) => r,
        Err(e) => {
            d.refused = true;
            d.reasons.push(e.to_string());
            return d;
        }
    };
    // A policy that cannot be read refuses what it would cover (everything, when even its
    // globs cannot be read).
    for (globs, e) in &policies.broken {
        let covers = match globs {
            None => true,
            Some(g) => g.iter().any(|g| g.matches(&reference, image)),
        };
        if covers {
            d.refused = true;
            d.reasons
                .push(format!("a policy covering it cannot be used: {e}"));
        }
    }
    let covering: Vec<_> = policies
        .policies
        .iter()
        .filter(|p| p.images.iter().any(|g| g.matches(&reference, image)))
        .collect();
    if covering.is_empty() {
        if !d.refused {
            match no_match {
                NoMatch::Allow => {}
                NoMatch::Warn => d.reasons.push("no image policy covers it".into()),
                NoMatch::Deny => {
                    d.refused = true;
                    d.reasons.push("no image policy covers it".into());
                }
            }
        }
        return d;
    }
    let digest = match registry.resolve(&reference).await {
        Ok(x) => x,
        Err(e) => {
            d.refused = true;
            d.reasons.push(format!("cannot resolve its digest: {e}"));
            return d;
        }
    };
    let mut layers = None;
    let mut attestations: Option<Vec<crate::verify::SignatureLayer>> = None;
    for p in covering {
        let verdict = match cache.get(&p.content_hash, &digest) {
            Some(v) => v,
            None => {
                if layers.is_none() {
                    match registry.signatures(&reference, &digest).await {
                        Ok(l) => layers = Some(l),
                        Err(e) => {
                            d.refused = true;
                            d.reasons.push(format!("cannot read its signatures: {e}"));
                            return d;
                        }
                    }
                }
                if p.needs_attestations() && attestations.is_none() {
                    match registry.attestations(&reference, &digest).await {
                        Ok(a) => attestations = Some(a),
                        Err(e) => {
                            d.refused = true;
                            d.reasons.push(format!("cannot read its attestations: {e}"));
                            return d;
                        }
                    }
                }
                let v = verify_with(
                    p,
                    &policies.roots,
                    &digest,
                    layers.as_deref().unwrap_or_default(),
                    attestations.as_deref().unwrap_or_default(),
                );
                cache.put(&p.content_hash, &digest, v.clone());
                v
            }
        };
        if !verdict.passed {
            if p.mode == Mode::Enforce {
                d.refused = true;
            }
            d.reasons.push(verdict.summary());
        }
        d.verdicts.push(verdict);
    }
    if !d.refused {
        d.pinned = Some(reference.pinned(&digest));
    }
    d.digest = Some(digest);
    d
}
