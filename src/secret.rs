//! A string that must never be shown: BMC passwords, session tokens.
//!
//! `Debug` and `Display` print `***`; the only way to the value is [`Secret::expose`], which
//! is greppable. Owns nothing else.

use std::fmt;

/// A secret value. Cloning is cheap enough for credentials; there is no `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that must send it (an HTTP header, a login body).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Replace every occurrence of this secret in `text` (used on body excerpts a BMC might
    /// echo back, before they reach an error message).
    pub fn scrub(&self, text: &str) -> String {
        if self.0.len() < 3 {
            // Too short to scrub without mangling ordinary text; such a password is refused
            // nowhere, but never echoed either since excerpts only come from the BMC.
            return text.to_owned();
        }
        let mut out = text.replace(&self.0, "***");
        // As a JSON string it may be escaped (a BMC echoing the login body back).
        if let Ok(quoted) = serde_json::to_string(&self.0) {
            let escaped = &quoted[1..quoted.len() - 1];
            if escaped != self.0 {
                out = out.replace(escaped, "***");
            }
        }
        out
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = Secret::new("hunter22");
        assert!(!format!("{s:?}").contains("hunter22"));
        assert!(!format!("{s}").contains("hunter22"));
        assert_eq!(s.expose(), "hunter22");
    }

    #[test]
    fn scrub_also_replaces_the_json_escaped_form() {
        let s = Secret::new(r#"pa"ss\w0rd"#);
        let echoed = r#"{"Password":"pa\"ss\\w0rd"}"#;
        assert_eq!(s.scrub(echoed), r#"{"Password":"***"}"#);
    }

    #[test]
    fn scrub_replaces_every_occurrence() {
        let s = Secret::new("hunter22");
        assert_eq!(s.scrub("a hunter22 b hunter22"), "a *** b ***");
    }
}
