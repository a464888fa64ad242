//! Parsing a request path into what it addresses, with kube-apiserver's rules.

/// What a path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A non-resource path: discovery, OpenAPI, health, version.
    NonResource,
    /// A resource path.
    Resource(ResourcePath),
}

/// The parts of a resource path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourcePath {
    /// API group, "" for core.
    pub group: String,
    /// Version.
    pub version: String,
    /// Namespace from the path, if any.
    pub namespace: Option<String>,
    /// Resource plural.
    pub resource: String,
    /// Object name, if any.
    pub name: Option<String>,
    /// Subresource, if any.
    pub subresource: Option<String>,
}

/// Namespace subresources; anything else after `namespaces/<ns>/` is a namespaced resource.
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

/// Parses a request path.
pub fn parse(path: &str) -> Result<Target, String> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] if !rest.is_empty() => ("", *v, rest),
        ["apis", g, v, rest @ ..] if !rest.is_empty() => (*g, *v, rest),
        _ => return Ok(Target::NonResource),
    };
    let mut parts: Vec<&str> = rest.to_vec();
    let mut namespace = None;
    if parts.first() == Some(&"watch") {
        return Err(
            "watch paths (/watch/...) are deprecated and not served; use ?watch=true".into(),
        );
    }
    if parts[0] == "namespaces" && parts.len() > 1 {
        namespace = Some(parts[1].to_string());
        if parts.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&parts[2]) {
            parts.drain(..2);
        } else {
            // The namespace object itself: /namespaces/<name>[/status|/finalize].
            namespace = None;
        }
    }
    if parts.len() > 3 {
        return Err(format!("the path {path:?} has too many segments"));
    }
    for p in &parts {
        if p.is_empty() || *p == "." || *p == ".." {
            return Err(format!("invalid path segment {p:?}"));
        }
    }
    Ok(Target::Resource(ResourcePath {
        group: group.to_string(),
        version: version.to_string(),
        namespace,
        resource: parts[0].to_string(),
        name: parts.get(1).map(|s| s.to_string()),
        subresource: parts.get(2).map(|s| s.to_string()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(path: &str) -> ResourcePath {
        match parse(path).unwrap() {
            Target::Resource(r) => r,
            Target::NonResource => panic!("{path} is a resource path"),
        }
    }

    #[test]
    fn namespaced_paths_split_into_their_parts() {
        let r = res("/api/v1/namespaces/a/configmaps/x");
        assert_eq!(
            (
                r.group.as_str(),
                r.namespace.as_deref(),
                r.resource.as_str(),
                r.name.as_deref()
            ),
            ("", Some("a"), "configmaps", Some("x"))
        );
        let r =
            res("/apis/work.open-cluster-management.io/v1/namespaces/c1/manifestworks/w/status");
        assert_eq!(r.subresource.as_deref(), Some("status"));
    }

    #[test]
    fn a_namespace_and_its_subresources_are_the_namespaces_resource() {
        let r = res("/api/v1/namespaces/a");
        assert_eq!(
            (r.resource.as_str(), r.name.as_deref(), r.namespace),
            ("namespaces", Some("a"), None)
        );
        let r = res("/api/v1/namespaces/a/finalize");
        assert_eq!(
            (r.resource.as_str(), r.subresource.as_deref()),
            ("namespaces", Some("finalize"))
        );
    }

    #[test]
    fn discovery_paths_are_not_resources() {
        for p in [
            "/api",
            "/api/v1",
            "/apis",
            "/apis/g",
            "/apis/g/v1",
            "/healthz",
            "/openapi/v2",
        ] {
            assert_eq!(parse(p).unwrap(), Target::NonResource, "{p}");
        }
    }

    #[test]
    fn too_many_segments_are_refused() {
        assert!(parse("/api/v1/namespaces/a/configmaps/x/status/extra").is_err());
    }
}
