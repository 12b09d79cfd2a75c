//! Secrets: values that came from the environment or from files for credentials.
//!
//! Every value interpolated into a header, read with `${file:...}`, or taken from an
//! environment variable whose name looks like a credential is registered here. Anything that
//! leaves the process as text (logs, error details, reports, labels) passes through
//! [`redact`], which replaces every registered value with `***`.

use std::sync::RwLock;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Shortest value treated as a secret; shorter ones would redact ordinary words.
const MIN_SECRET_LEN: usize = 4;

/// Registers a secret value (and its `Bearer`-less form when it is a bearer header).
pub fn register(value: &str) {
    let value = value.trim();
    let mut candidates = vec![value.to_string()];
    for prefix in ["Bearer ", "bearer ", "Basic ", "basic ", "Token ", "token "] {
        if let Some(rest) = value.strip_prefix(prefix) {
            candidates.push(rest.trim().to_string());
        }
    }
    let Ok(mut all) = SECRETS.write() else { return };
    for c in candidates {
        if c.len() >= MIN_SECRET_LEN && !all.contains(&c) {
            all.push(c);
        }
    }
    // Longest first so that a secret containing another is replaced whole.
    all.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// True when an environment variable name suggests a credential.
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    [
        "KEY",
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "CREDENTIAL",
        "AUTH",
        "COOKIE",
        "SESSION",
    ]
    .iter()
    .any(|w| upper.contains(w))
}

/// Replaces every registered secret in `text` with `***`.
pub fn redact(text: &str) -> String {
    let Ok(all) = SECRETS.read() else {
        return text.to_string();
    };
    let mut out = text.to_string();
    for s in all.iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "***");
        }
    }
    out
}

/// Header names whose values are always secret, wherever they came from.
pub fn is_sensitive_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "authorization"
        || n == "proxy-authorization"
        || n == "cookie"
        || n.contains("api-key")
        || n.contains("apikey")
        || n.contains("token")
        || n.contains("secret")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_values_are_redacted_including_bearer_form() {
        register("Bearer sk-test-redact-me-123");
        let out = redact("GET failed with header sk-test-redact-me-123 in it");
        assert_eq!(out, "GET failed with header *** in it");
        assert!(!redact("auth: Bearer sk-test-redact-me-123").contains("sk-test"));
    }

    #[test]
    fn short_values_are_not_registered() {
        register("ab");
        assert_eq!(redact("abc ab"), "abc ab");
    }

    #[test]
    fn secret_names() {
        assert!(is_secret_name("OPENAI_API_KEY"));
        assert!(is_secret_name("hf_token"));
        assert!(!is_secret_name("MAPPER_URL"));
        assert!(is_sensitive_header("Authorization"));
        assert!(is_sensitive_header("x-api-key"));
        assert!(!is_sensitive_header("content-type"));
    }
}
