//! Credentials an endpoint obtains per request (`auth:`).

use http::{HeaderName, HeaderValue, Method, Uri};

use super::transport::Net;
use crate::timeline::{ProbeError, Recorder};

/// An endpoint's credential provider.
#[derive(Debug)]
pub enum Auth {}

/// A credential ready for one request.
pub struct Prepared {
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Auth {
    /// Obtains the credential (from the cache, or fetched now).
    pub async fn prepare(
        &self,
        _net: Option<&Net>,
        _rec: &mut Recorder,
    ) -> Result<Prepared, ProbeError> {
        match *self {}
    }
}

impl Prepared {
    /// The headers that carry the credential for this request.
    pub fn headers(
        &self,
        _method: &Method,
        _uri: &Uri,
        _authority: &str,
        _content_type: Option<&str>,
        _body: &[u8],
    ) -> Result<Vec<(HeaderName, HeaderValue)>, ProbeError> {
        Ok(self.headers.clone())
    }
}
