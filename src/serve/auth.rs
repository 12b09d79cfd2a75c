//! Who may call `serve`'s API: the bearer token (`--token-file FILE` or `CANARY_TOKEN`), its
//! constant-time check, the startup rule that a costly route is never open to the network
//! without one, and the axum layer that closes the read-only routes under `--private`.
//! The threat model is in docs/reliability.md ("The serve API").

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use subtle::ConstantTimeEq;

/// The environment variable holding the token when no `--token-file` is given.
pub const TOKEN_ENV: &str = "CANARY_TOKEN";
/// The shortest token accepted (bytes): 16 random bytes in hex are 32.
pub const MIN_TOKEN: usize = 16;
/// The largest token file read.
const MAX_TOKEN_FILE: u64 = 4096;

/// Why the API's access settings are refused at startup.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AuthError {
    #[error("--token-file {path}: {message}")]
    File { path: String, message: String },
    #[error("{source_name}: the token is {len} bytes; use at least {MIN_TOKEN} (e.g. `openssl rand -hex 32`)")]
    Short { source_name: String, len: usize },
    #[error("--allow-gate on {addr}, which is not a loopback address, needs a token: give --token-file FILE or set CANARY_TOKEN (or listen on 127.0.0.1 only). The gate sends the suite's requests, credentials included, to URLs its callers choose")]
    OpenGate { addr: SocketAddr },
    #[error("--private closes the read-only routes behind the token, but no token is set: give --token-file FILE or set CANARY_TOKEN")]
    PrivateWithoutToken,
}

/// The API token. Never printed: `Debug` shows its length only.
#[derive(Clone)]
pub struct Token(Arc<[u8]>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({} bytes)", self.0.len())
    }
}

impl Token {
    fn new(text: &str, source_name: &str) -> Result<Token, AuthError> {
        let t = text.trim();
        if t.len() < MIN_TOKEN {
            return Err(AuthError::Short {
                source_name: source_name.to_string(),
                len: t.len(),
            });
        }
        Ok(Token(Arc::from(t.as_bytes())))
    }

    /// Whether `given` is the token, in time that does not depend on where they differ.
    /// (Only the length can show through timing; the token's length is not a secret worth
    /// keeping once it is long enough.)
    pub fn matches(&self, given: &[u8]) -> bool {
        bool::from(self.0.as_ref().ct_eq(given))
    }
}

/// Reads the token: the file when given (surrounding whitespace trimmed), else `CANARY_TOKEN`
/// from `env`, else none.
pub fn load_token(file: Option<&Path>, env: Option<String>) -> Result<Option<Token>, AuthError> {
    if let Some(path) = file {
        let err = |message: String| AuthError::File {
            path: path.display().to_string(),
            message,
        };
        let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
        if meta.len() > MAX_TOKEN_FILE {
            return Err(err(format!(
                "{} bytes; a token file holds one token (at most {MAX_TOKEN_FILE} bytes)",
                meta.len()
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| err("not UTF-8 text; write the token as text".into()))?;
        return Token::new(&text, &format!("--token-file {}", path.display())).map(Some);
    }
    match env.filter(|v| !v.is_empty()) {
        Some(v) => Token::new(&v, TOKEN_ENV).map(Some),
        None => Ok(None),
    }
}

/// How the API is guarded.
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub token: Option<Token>,
    /// The read-only routes need the token too (`/healthz` and `/readyz` stay open).
    pub private: bool,
}

impl Access {
    /// The startup rule: a costly route (the gate) is open without a token only on loopback;
    /// `--private` needs a token.
    pub fn check(&self, listen: SocketAddr, allow_gate: bool) -> Result<(), AuthError> {
        if self.token.is_none() {
            if self.private {
                return Err(AuthError::PrivateWithoutToken);
            }
            if allow_gate && !listen.ip().is_loopback() {
                return Err(AuthError::OpenGate { addr: listen });
            }
        }
        Ok(())
    }

    /// Whether a request may pass: no token configured, or `Authorization: Bearer TOKEN`,
    /// or (for a caller that cannot set headers, Flagger's webhooks) `body_token`.
    pub fn allows(&self, headers: &HeaderMap, body_token: Option<&str>) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        if let Some(given) = bearer(headers) {
            return token.matches(given);
        }
        body_token.is_some_and(|t| token.matches(t.as_bytes()))
    }
}

/// The credentials of `Authorization: Bearer X` (the scheme in any case).
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let v = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = v.split_at(v.iter().position(|b| *b == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let rest = rest.trim_ascii();
    (!rest.is_empty()).then_some(rest)
}

/// The 401 answer: JSON like every error of the API, with the challenge.
pub fn unauthorized() -> Response {
    let mut r = (
        StatusCode::UNAUTHORIZED,
        Json(serde_json::json!({
            "error": "this route needs `Authorization: Bearer TOKEN` (the token of serve's --token-file or CANARY_TOKEN)"
        })),
    )
        .into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"canary\""),
    );
    r
}

/// The layer of the routes that need the token (the read-only ones under `--private`).
pub async fn require(State(access): State<Arc<Access>>, req: Request, next: Next) -> Response {
    if access.allows(req.headers(), None) {
        next.run(req).await
    } else {
        unauthorized()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "0123456789abcdef0123456789abcdef";

    fn access(private: bool) -> Access {
        Access {
            token: load_token(None, Some(T.into())).unwrap(),
            private,
        }
    }

    fn auth(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, v.parse().unwrap());
        h
    }

    #[test]
    fn only_the_exact_bearer_token_passes() {
        let a = access(false);
        assert!(a.allows(&auth(&format!("Bearer {T}")), None));
        assert!(a.allows(&auth(&format!("bearer  {T} ")), None));
        assert!(!a.allows(&HeaderMap::new(), None));
        assert!(!a.allows(&auth(&format!("Basic {T}")), None));
        assert!(!a.allows(&auth(&format!("Bearer {T}x")), None));
        assert!(!a.allows(&auth(&format!("Bearer {}", &T[1..])), None));
        assert!(!a.allows(&auth("Bearer"), None));
        // A body token only counts without an Authorization header.
        assert!(a.allows(&HeaderMap::new(), Some(T)));
        assert!(!a.allows(&auth("Bearer wrong"), Some(T)));
        // Without a token, everything passes (the startup rule keeps that to loopback).
        assert!(Access::default().allows(&HeaderMap::new(), None));
    }

    #[test]
    fn the_startup_rule_keeps_an_open_gate_on_loopback() {
        let open = Access::default();
        let lo: SocketAddr = "127.0.0.1:9464".parse().unwrap();
        let lo6: SocketAddr = "[::1]:9464".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:9464".parse().unwrap();
        assert!(open.check(lo, true).is_ok());
        assert!(open.check(lo6, true).is_ok());
        assert!(
            open.check(any, false).is_ok(),
            "read-only routes may be public"
        );
        assert_eq!(
            open.check(any, true),
            Err(AuthError::OpenGate { addr: any })
        );
        assert!(access(false).check(any, true).is_ok());
        let private = Access {
            token: None,
            private: true,
        };
        assert_eq!(
            private.check(lo, false),
            Err(AuthError::PrivateWithoutToken)
        );
    }

    #[test]
    fn tokens_are_read_trimmed_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        std::fs::write(&f, format!("{T}\n")).unwrap();
        let t = load_token(Some(&f), Some("ignored-when-a-file-is-given".into()))
            .unwrap()
            .unwrap();
        assert!(t.matches(T.as_bytes()));
        assert!(!format!("{t:?}").contains(T), "never printed");
        std::fs::write(&f, "short\n").unwrap();
        assert!(matches!(
            load_token(Some(&f), None),
            Err(AuthError::Short { len: 5, .. })
        ));
        let e = load_token(Some(&dir.path().join("absent")), None).unwrap_err();
        assert!(e.to_string().contains("absent"), "{e}");
        assert!(load_token(None, Some(String::new())).unwrap().is_none());
        assert!(load_token(None, None).unwrap().is_none());
    }
}
