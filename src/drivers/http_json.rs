//! The `http-json` driver: one JSON request (the case's `input.body`), one JSON response.
//! Covers request/response APIs such as the Llama Mapper's `POST /map` and `POST /map/batch`.

use bytes::Bytes;

use super::RunVars;
use crate::net::http::{self, HttpRequest};
use crate::suite::{Case, Endpoint};
use crate::timeline::{ErrorClass, ProbeError, Recorder};

/// Performs one case run, recording everything on `rec`.
pub async fn run(endpoint: &Endpoint, case: &Case, vars: RunVars, rec: &mut Recorder) {
    if let Err(e) = exchange(endpoint, case, vars, rec).await {
        rec.fail(e);
    }
}

async fn exchange(
    endpoint: &Endpoint,
    case: &Case,
    vars: RunVars,
    rec: &mut Recorder,
) -> Result<(), ProbeError> {
    let uri: ::http::Uri = endpoint
        .url
        .parse()
        .map_err(|e| ProbeError::new(ErrorClass::Request, format!("invalid URL: {e}")))?;
    let body = match case.input.get("body") {
        Some(b) => Some(Bytes::from(
            serde_json::to_vec(&vars.render(b, case)?).map_err(|e| {
                ProbeError::new(
                    ErrorClass::Request,
                    format!("cannot encode input.body: {e}"),
                )
            })?,
        )),
        None => None,
    };
    let req = HttpRequest {
        method: endpoint.method.clone(),
        uri: &uri,
        headers: &endpoint.headers,
        content_type: body.as_ref().map(|_| "application/json"),
        body,
        accept: "application/json",
        tls: endpoint.tls.as_ref(),
        net: Some(&endpoint.net),
    };
    let streaming = http::send(req, rec).await?;
    let response = match streaming.read_all(endpoint.max_body, rec).await {
        Ok(r) => r,
        Err((e, partial)) => {
            rec.set_response(partial);
            return Err(e);
        }
    };
    let ok = (200..300).contains(&response.status);
    let error = if !ok {
        Some(http::status_error(&response))
    } else if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&response.body) {
        let head: String =
            String::from_utf8_lossy(&response.body[..response.body.len().min(80)]).into_owned();
        Some(ProbeError::new(
            ErrorClass::InvalidJson,
            format!("response body is not JSON ({e}); starts with {head:?}"),
        ))
    } else {
        None
    };
    rec.set_response(response);
    match error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
