//! ClusterImagePolicy `images[].glob`, matched as sigstore's policy-controller matches it: `*`
//! stands for any run of characters other than `/`, `**` for any run at all, and the whole
//! qualified reference must match (`index.docker.io/library/nginx:latest`). A glob of `*` means
//! Docker Hub's official images and `*/*` Docker Hub's user images, as upstream rewrites them.

use crate::reference::Reference;

/// A compiled image glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// `*`: any run without `/`.
    Segment,
    /// `**`: any run.
    Any,
}

/// A glob with characters upstream refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid glob {0:?}: use letters, digits and - _ : / * . only")]
pub struct GlobError(pub String);

impl Glob {
    /// Compiles `glob`.
    pub fn new(glob: &str) -> Result<Glob, GlobError> {
        let expanded = match glob {
            "*" => "index.docker.io/library/*",
            "*/*" => "index.docker.io/*/*",
            g => g,
        };
        if expanded.is_empty()
            || !expanded
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_:/*.".contains(&b))
        {
            return Err(GlobError(glob.to_string()));
        }
        let mut parts = vec![];
        let mut rest = expanded;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("**") {
                parts.push(Part::Any);
                rest = r;
            } else if let Some(r) = rest.strip_prefix('*') {
                parts.push(Part::Segment);
                rest = r;
            } else {
                let end = rest.find('*').unwrap_or(rest.len());
                parts.push(Part::Literal(rest[..end].to_string()));
                rest = &rest[end..];
            }
        }
        Ok(Glob {
            source: glob.to_string(),
            parts,
        })
    }

    /// The glob as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the glob matches `image`: its qualified form, or else the string as written
    /// (upstream still accepts globs written against the short form).
    pub fn matches(&self, image: &Reference, as_written: &str) -> bool {
        let q = image.qualified();
        self.matches_str(&q) || (q != as_written && self.matches_str(as_written))
    }

    fn matches_str(&self, s: &str) -> bool {
        matches_from(&self.parts, s.as_bytes())
    }
}

/// Whether `parts` match all of `s`: dynamic programming over (part, position), so the time
/// is bounded by their product whatever the glob (backtracking is exponential in the number of
/// stars).
fn matches_from(parts: &[Part], s: &[u8]) -> bool {
    // ok[i]: the parts so far can match s[..i].
    let mut ok = vec![false; s.len() + 1];
    ok[0] = true;
    for part in parts {
        let mut next = vec![false; s.len() + 1];
        match part {
            Part::Literal(l) => {
                let l = l.as_bytes();
                for i in 0..=s.len() {
                    if ok[i] && s[i..].starts_with(l) {
                        next[i + l.len()] = true;
                    }
                }
            }
            Part::Segment => {
                // From any reachable i, extend over characters other than '/'.
                let mut reach = false;
                for i in 0..=s.len() {
                    reach = ok[i] || (reach && s[i - 1] != b'/');
                    next[i] = reach;
                }
            }
            Part::Any => {
                let mut reach = false;
                for i in 0..=s.len() {
                    reach = reach || ok[i];
                    next[i] = reach;
                }
            }
        }
        ok = next;
    }
    ok[s.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(glob: &str, image: &str) -> bool {
        Glob::new(glob)
            .unwrap()
            .matches(&Reference::parse(image).unwrap(), image)
    }

    #[test]
    fn stars_stop_at_slashes_and_double_stars_do_not() {
        assert!(m("ghcr.io/org/*", "ghcr.io/org/app:v1"));
        assert!(!m("ghcr.io/org/*", "ghcr.io/org/team/app:v1"));
        assert!(m("ghcr.io/org/**", "ghcr.io/org/team/app:v1"));
        assert!(m("**", "nginx"));
        assert!(m("ghcr.io/org/app:v*", "ghcr.io/org/app:v2"));
        assert!(!m("ghcr.io/org/app", "ghcr.io/org/app:v2"));
        assert!(m("ghcr.io/org/app:**", "ghcr.io/org/app:v2"));
        assert!(!m("ghcr.io/org/*", "ghcr.io/orgx/app"));
    }

    #[test]
    fn docker_hub_images_match_their_qualified_form() {
        assert!(m("*", "nginx"));
        assert!(m("index.docker.io/library/*", "nginx:1.27"));
        assert!(!m("*", "myuser/app"));
        assert!(m("*/*", "myuser/app"));
        // The short form as written still matches, as upstream allows.
        assert!(m("nginx*", "nginx"));
    }

    #[test]
    fn many_stars_cost_no_more_than_the_glob_times_the_image() {
        let glob = "**a".repeat(40) + "b";
        let image = format!("ghcr.io/{}:v1", "a".repeat(200));
        assert!(!m(&glob, &image));
    }

    #[test]
    fn globs_with_other_characters_are_refused() {
        for bad in ["", "ghcr.io/(a|b)", "a b", "ghcr.io/app?"] {
            assert!(Glob::new(bad).is_err(), "{bad:?}");
        }
    }
}
