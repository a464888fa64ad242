//! A string that must never reach a log: bootstrap tokens and other credentials handed around
//! as text. `Debug` and `Display` print only that something is there, so a struct holding one
//! can derive `Debug` safely.

use std::fmt;
use std::str::FromStr;

/// Secret text. Read it with [`SecretString::expose`], at the one place it is used.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps `s`.
    pub fn new(s: impl Into<String>) -> Self {
        SecretString(s.into())
    }
    /// The secret itself, for the place that sends or stores it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl FromStr for SecretString {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(SecretString(s.to_string()))
    }
}

impl From<String> for SecretString {
    fn from(s: String) -> Self {
        SecretString(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    #[allow(dead_code)]
    struct Holder {
        token: SecretString,
    }

    #[test]
    fn debug_and_display_never_show_the_secret() {
        let h = Holder {
            token: "abcdef.0123456789abcdef".parse().unwrap(),
        };
        assert!(!format!("{h:?}").contains("0123456789abcdef"));
        assert!(!format!("{h:#?}").contains("0123456789abcdef"));
        assert!(!h.token.to_string().contains("0123456789abcdef"));
        assert_eq!(h.token.expose(), "abcdef.0123456789abcdef");
    }
}
