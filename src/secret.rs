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
        // Echoed in another form: as a JSON string (a BMC quoting the login body), in an
        // HTML error page, or URL-encoded (a token has `+`, `/` and `=`). The longest forms
        // go first: the raw value may sit inside its own escaped form (`&amp` in `&amp;amp`).
        let mut forms = vec![self.0.clone()];
        if let Ok(quoted) = serde_json::to_string(&self.0) {
            forms.push(quoted[1..quoted.len() - 1].to_owned());
        }
        let html = self
            .0
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;");
        forms.push(html.replace('\'', "&#39;"));
        forms.push(html.replace('\'', "&#x27;"));
        let form: String = url::form_urlencoded::byte_serialize(self.0.as_bytes()).collect();
        forms.push(form.replace('+', "%20"));
        forms.push(form);
        forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
        forms.dedup();
        let mut out = text.to_owned();
        for form in forms {
            out = out.replace(&form, "***");
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
    fn scrub_also_replaces_html_and_url_encoded_forms() {
        let s = Secret::new("a+b/c=d&<e>");
        let page = "<p>token a+b/c=d&amp;&lt;e&gt; refused</p>";
        assert_eq!(s.scrub(page), "<p>token *** refused</p>");
        let url = "/x?token=a%2Bb%2Fc%3Dd%26%3Ce%3E";
        assert_eq!(s.scrub(url), "/x?token=***");
        let spaced = Secret::new("pass word!");
        assert_eq!(
            spaced.scrub("pw=pass+word%21 pw=pass%20word%21"),
            "pw=*** pw=***"
        );
    }

    #[test]
    fn a_secret_inside_its_own_escaped_form_leaves_nothing_behind() {
        let s = Secret::new("&amp");
        assert_eq!(s.scrub("x &amp;amp y &amp z"), "x *** y *** z");
        let s = Secret::new("it's");
        assert_eq!(s.scrub("it&#x27;s it&#39;s"), "*** ***");
    }

    #[test]
    fn scrub_replaces_every_occurrence() {
        let s = Secret::new("hunter22");
        assert_eq!(s.scrub("a hunter22 b hunter22"), "a *** b ***");
    }
}
