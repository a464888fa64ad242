//! Image references, parsed once into types that cannot hold an unparsed string.
//!
//! The grammar is the distribution project's (`registry/repository:tag@digest`), normalised as
//! go-containerregistry and sigstore's policy-controller normalise it, since ClusterImagePolicy
//! globs are matched against that form: Docker Hub is `index.docker.io` (`docker.io` is an
//! alias), and its one-component repositories live under `library/`.

use std::fmt;

/// The registry that a reference without one names.
pub const DOCKER_HUB: &str = "index.docker.io";
/// The tag that a reference without tag or digest names.
pub const DEFAULT_TAG: &str = "latest";
/// The longest repository name accepted.
const MAX_REPOSITORY: usize = 255;
/// The longest tag accepted.
const MAX_TAG: usize = 128;

/// Why a string is not an image reference. Always the fault of whoever wrote the reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The string is empty or has characters no reference may have.
    #[error("{0:?} is not an image reference: {1}")]
    Invalid(String, &'static str),
    /// The digest is not `<algorithm>:<lowercase hex of the algorithm's length>`.
    #[error("{0:?} is not a digest: use sha256:<64 lowercase hex digits> (or sha384, sha512)")]
    Digest(String),
}

/// A digest algorithm the registry API accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, the registries' default.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha384 => "sha384",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha384 => 96,
            Algorithm::Sha512 => 128,
        }
    }
}

/// A content digest such as `sha256:9f86d0…`: a known algorithm and its lowercase hex value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// Parses `<algorithm>:<hex>`.
    pub fn parse(s: &str) -> Result<Digest, ReferenceError> {
        let bad = || ReferenceError::Digest(s.to_string());
        let (alg, hex) = s.split_once(':').ok_or_else(bad)?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha384" => Algorithm::Sha384,
            "sha512" => Algorithm::Sha512,
            _ => return Err(bad()),
        };
        if hex.len() != algorithm.hex_len()
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad());
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }

    /// The SHA-256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        let d = ring::digest::digest(&ring::digest::SHA256, bytes);
        Digest {
            algorithm: Algorithm::Sha256,
            hex: hex(d.as_ref()),
        }
    }

    /// Whether `bytes` have this digest.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        let alg = match self.algorithm {
            Algorithm::Sha256 => &ring::digest::SHA256,
            Algorithm::Sha384 => &ring::digest::SHA384,
            Algorithm::Sha512 => &ring::digest::SHA512,
        };
        hex(ring::digest::digest(alg, bytes).as_ref()) == self.hex
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lowercase hex value.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A parsed image reference: registry, repository, and a tag, a digest or both.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses a reference as a container spec's `image` field holds it.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        let bad = |why| ReferenceError::Invalid(s.to_string(), why);
        if s.is_empty() {
            return Err(bad("it is empty"));
        }
        if s.len() > 4096 {
            return Err(bad("it is longer than 4096 characters"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => (rest, Some(Digest::parse(d)?)),
            None => (s, None),
        };
        // A tag follows the last ':' after the last '/' (a ':' before it is a port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&rest[..at], Some(&rest[at + 1..]))
            }
            None => (rest, None),
        };
        if let Some(t) = tag
            && !valid_tag(t)
        {
            return Err(bad(
                "the tag must be 1-128 of [A-Za-z0-9_.-], not starting with . or -",
            ));
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let registry = normalize_registry(&registry);
        if !valid_registry(&registry) {
            return Err(bad(
                "the registry must be a host name or address, with an optional port",
            ));
        }
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if repository.len() > MAX_REPOSITORY {
            return Err(bad("the repository is longer than 255 characters"));
        }
        if !repository.split('/').all(valid_component) {
            return Err(bad(
                "each repository path component must be lowercase letters and digits, separated by '.', '_', '__' or dashes",
            ));
        }
        Ok(Reference {
            registry,
            repository,
            tag: tag.map(String::from),
            digest,
        })
    }

    /// The registry host, with its port when it has one (`index.docker.io` for Docker Hub).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path within the registry (`library/nginx`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, when the reference has one.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, when the reference has one.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `registry/repository`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What the registry is asked for: the digest when there is one, else the tag (`latest`
    /// when there is neither).
    pub fn target(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }

    /// The form ClusterImagePolicy globs are matched against: `registry/repository:tag`
    /// (`:latest` when untagged), or `registry/repository@digest` for a digest reference.
    pub fn qualified(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => format!("{}@{d}", self.name()),
            (None, t) => format!("{}:{}", self.name(), t.as_deref().unwrap_or(DEFAULT_TAG)),
        }
    }

    /// The same image pinned to `digest`: `registry/repository@digest`, without the tag, so
    /// that what runs is exactly what was verified.
    pub fn pinned(&self, digest: &Digest) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest.clone()),
        }
    }

    /// The reference of cosign's signature tag for `digest` in this repository
    /// (`sha256-<hex>.sig`), or of its attestations (`.att`) when `suffix` is `att`.
    pub fn cosign_tag(&self, digest: &Digest, suffix: &str) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(format!(
                "{}-{}.{suffix}",
                digest.algorithm().name(),
                digest.hex()
            )),
            digest: None,
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// One spelling per registry, so that no spelling of an image escapes a glob: host names are
/// case-insensitive, `:443` is HTTPS's default port, and Docker Hub answers to several names.
fn normalize_registry(r: &str) -> String {
    let lower = r.to_ascii_lowercase();
    let host = lower.strip_suffix(":443").unwrap_or(&lower);
    match host {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DOCKER_HUB.to_string()
        }
        h => h.to_string(),
    }
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_TAG
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn valid_registry(r: &str) -> bool {
    let (host, port) = match r.rsplit_once(':') {
        // A bracketed IPv6 address keeps its colons.
        Some((h, p)) if !h.is_empty() && (!r.starts_with('[') || h.ends_with(']')) => (h, Some(p)),
        _ => (r, None),
    };
    if let Some(p) = port
        && (p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `[a-z0-9]+` separated by `.`, `_`, `__` or runs of `-`.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_digit() || b.is_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn docker_hub_short_names_are_normalised_as_policy_controller_does() {
        let r = Reference::parse("nginx").unwrap();
        assert_eq!(
            (r.registry(), r.repository(), r.tag()),
            (DOCKER_HUB, "library/nginx", None)
        );
        assert_eq!(r.qualified(), "index.docker.io/library/nginx:latest");
        let r = Reference::parse("docker.io/bitnami/redis:7.2").unwrap();
        assert_eq!(r.qualified(), "index.docker.io/bitnami/redis:7.2");
        let r = Reference::parse("myuser/app").unwrap();
        assert_eq!(r.name(), "index.docker.io/myuser/app");
    }

    #[test]
    fn every_spelling_of_a_registry_is_one_registry() {
        let one = Reference::parse("ghcr.io/org/app:1").unwrap();
        for other in [
            "GHCR.IO/org/app:1",
            "ghcr.io:443/org/app:1",
            "Ghcr.Io:443/org/app:1",
        ] {
            assert_eq!(Reference::parse(other).unwrap(), one, "{other}");
        }
        let hub = Reference::parse("nginx").unwrap();
        for other in [
            "registry-1.docker.io/library/nginx",
            "docker.io/nginx",
            "DOCKER.IO/library/nginx:latest",
            "registry.hub.docker.com/library/nginx",
        ] {
            assert_eq!(
                Reference::parse(other).unwrap().name(),
                hub.name(),
                "{other}"
            );
        }
        // Another port is another registry.
        assert_ne!(
            Reference::parse("ghcr.io:5000/org/app:1")
                .unwrap()
                .registry(),
            one.registry()
        );
    }

    #[test]
    fn registries_ports_tags_and_digests_are_told_apart() {
        let r = Reference::parse("127.0.0.1:5000/team/app:v1.2").unwrap();
        assert_eq!(
            (r.registry(), r.repository(), r.tag()),
            ("127.0.0.1:5000", "team/app", Some("v1.2"))
        );
        let r = Reference::parse("localhost:5000/app").unwrap();
        assert_eq!((r.registry(), r.tag()), ("localhost:5000", None));
        assert_eq!(r.target(), "latest");
        let r = Reference::parse(&format!("ghcr.io/o/app:v1@{D}")).unwrap();
        assert_eq!(r.tag(), Some("v1"));
        assert_eq!(r.digest().unwrap().to_string(), D);
        assert_eq!(r.target(), D);
        assert_eq!(r.qualified(), format!("ghcr.io/o/app@{D}"));
        let pinned = r.pinned(r.digest().unwrap());
        assert_eq!(pinned.to_string(), format!("ghcr.io/o/app@{D}"));
        assert_eq!(Reference::parse(&pinned.to_string()).unwrap(), pinned);
        let r = Reference::parse("[::1]:5000/app:1").unwrap();
        assert_eq!(r.registry(), "[::1]:5000");
    }

    #[test]
    fn cosign_tags_are_derived_from_the_digest() {
        let r = Reference::parse("ghcr.io/o/app:v1").unwrap();
        let d = Digest::parse(D).unwrap();
        assert_eq!(
            r.cosign_tag(&d, "sig").to_string(),
            format!("ghcr.io/o/app:sha256-{}.sig", d.hex())
        );
    }

    #[test]
    fn malformed_references_are_refused_with_the_reason() {
        for bad in [
            "",
            "UPPER/case",
            "app:",
            "app:-tag",
            "app@sha256:abc",
            "app@md5:9f86d081884c7d659a2feaa0c55ad015",
            "ghcr.io//app",
            "ghcr.io/app/",
            "a..b/c",
            "host:99999999/app",
            "app:tag with space",
            "ghcr.io/a--b_/c",
            &format!("app@{}", D.to_uppercase()),
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(matches!(
            Reference::parse("app@sha256:xyz"),
            Err(ReferenceError::Digest(_))
        ));
    }

    #[test]
    fn digests_check_content() {
        let d = Digest::sha256_of(b"test");
        assert_eq!(d.to_string(), D);
        assert!(d.matches(b"test"));
        assert!(!d.matches(b"tesT"));
    }
}
