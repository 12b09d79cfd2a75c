//! An endpoint's network settings ([`Net`]: the HTTP version it speaks) and the pieces
//! [`super::http`] needs to speak HTTP/2 without moving a read off the probe's task.
//!
//! hyper's HTTP/2 client hands the connection's work (the task that reads the socket and
//! splits it into streams, and the one that writes a request body) to an executor. Spawned
//! on tokio, that work would read ahead of the probe: a body piece taken later would carry
//! the arrival of a later read. [`InTask`] is an executor that keeps those futures and
//! [`Driver`] polls them in the probe's own task, next to the body, as the HTTP/1.1
//! connection is polled: bytes read from the socket become body pieces in the same poll, and
//! a piece is stamped before anything further is read.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// Which HTTP version an endpoint speaks (`http:` on an endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpVersion {
    /// HTTP/2 when the TLS server offers it (ALPN `h2`), HTTP/1.1 otherwise and over
    /// plain `http://`.
    #[default]
    Auto,
    /// HTTP/1.1 only (ALPN offers `http/1.1` alone).
    Http1,
    /// HTTP/2 only: ALPN `h2` over TLS (a server that does not agree is a protocol error),
    /// prior knowledge (h2c) over plain `http://`.
    Http2,
}

impl HttpVersion {
    /// Parses the `http:` key: `auto`, `1.1` or `2` (YAML may give the numbers as numbers).
    pub fn parse(v: &serde_json::Value) -> Option<HttpVersion> {
        let s = match v {
            serde_json::Value::String(s) => s.trim().to_ascii_lowercase(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => return None,
        };
        match s.as_str() {
            "auto" => Some(HttpVersion::Auto),
            "1.1" | "http/1.1" => Some(HttpVersion::Http1),
            "2" | "2.0" | "h2" => Some(HttpVersion::Http2),
            _ => None,
        }
    }

    /// The ALPN protocols offered over TLS, most preferred first.
    pub fn alpn(self) -> Vec<Vec<u8>> {
        match self {
            HttpVersion::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            HttpVersion::Http1 => vec![b"http/1.1".to_vec()],
            HttpVersion::Http2 => vec![b"h2".to_vec()],
        }
    }
}

/// The network settings of an endpoint.
#[derive(Debug, Clone, Default)]
pub struct Net {
    pub http: HttpVersion,
    /// `proxy:` (the environment's by default).
    pub proxy: super::proxy::ProxyChoice,
    /// `follow_redirects: N` (0: a redirect is an `http_status` error).
    pub follow_redirects: u32,
    /// `connection: reuse`: the endpoint's keep-alive pool (`None`: a fresh connection per
    /// case run).
    pub pool: Option<Arc<super::pool::Pool>>,
    /// `resolve:` host names (lowercase) and the address each connects to instead of DNS.
    pub resolve: Vec<(String, std::net::IpAddr)>,
    /// `auth:` the credential obtained per request.
    pub auth: Option<Arc<super::auth::Auth>>,
}

impl Net {
    /// The settings for a request to another service on the endpoint's behalf (a canary
    /// fact's write, a token endpoint): the same proxy, HTTP version and pinned addresses,
    /// without the endpoint's credential, redirects or pool.
    pub fn for_another_service(&self) -> Net {
        Net {
            http: self.http,
            proxy: self.proxy.clone(),
            resolve: self.resolve.clone(),
            ..Net::default()
        }
    }
}

/// The protocol a response came over, as the case record names it.
pub fn version_name(v: http::Version, tls: bool) -> &'static str {
    match v {
        http::Version::HTTP_2 if tls => "h2",
        http::Version::HTTP_2 => "h2c",
        http::Version::HTTP_10 => "http/1.0",
        _ => "http/1.1",
    }
}

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// An executor whose futures run in the task that polls the [`Driver`] sharing it.
#[derive(Clone, Default)]
pub struct InTask {
    spawned: Arc<Mutex<Vec<Task>>>,
}

impl<F> hyper::rt::Executor<F> for InTask
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, fut: F) {
        // A poisoned lock only means a panic elsewhere; the queue itself is intact.
        let mut q = self.spawned.lock().unwrap_or_else(|e| e.into_inner());
        q.push(Box::pin(fut));
    }
}

/// Polls a connection future and every future it handed to its [`InTask`] executor; ready
/// when all of them are.
pub struct Driver {
    conn: Option<Task>,
    exec: InTask,
    tasks: Vec<Task>,
}

impl Driver {
    pub fn new(conn: Task, exec: InTask) -> Driver {
        Driver {
            conn: Some(conn),
            exec,
            tasks: Vec::new(),
        }
    }

    fn take_spawned(&mut self) -> bool {
        let mut q = self.exec.spawned.lock().unwrap_or_else(|e| e.into_inner());
        let any = !q.is_empty();
        self.tasks.append(&mut q);
        any
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        loop {
            if let Some(c) = this.conn.as_mut() {
                if c.as_mut().poll(cx).is_ready() {
                    this.conn = None;
                }
            }
            this.take_spawned();
            // The lock is not held while a task runs: a task may hand over another.
            this.tasks.retain_mut(|t| t.as_mut().poll(cx).is_pending());
            // A future handed over just now is polled once before waiting, so that it has
            // registered its interest in the socket.
            if !this.take_spawned() {
                break;
            }
        }
        if this.conn.is_none() && this.tasks.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_http_key_reads_strings_and_numbers() {
        assert_eq!(HttpVersion::parse(&json!("auto")), Some(HttpVersion::Auto));
        assert_eq!(HttpVersion::parse(&json!(1.1)), Some(HttpVersion::Http1));
        assert_eq!(HttpVersion::parse(&json!("1.1")), Some(HttpVersion::Http1));
        assert_eq!(HttpVersion::parse(&json!(2)), Some(HttpVersion::Http2));
        assert_eq!(HttpVersion::parse(&json!("2")), Some(HttpVersion::Http2));
        assert_eq!(HttpVersion::parse(&json!("3")), None);
        assert_eq!(HttpVersion::parse(&json!(true)), None);
        assert_eq!(HttpVersion::Auto.alpn()[0], b"h2");
        assert_eq!(HttpVersion::Http1.alpn(), vec![b"http/1.1".to_vec()]);
    }

    #[tokio::test]
    async fn futures_handed_to_the_executor_run_in_the_driving_task() {
        use hyper::rt::Executor;
        let exec = InTask::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<u8>();
        let e2 = exec.clone();
        let conn: Task = Box::pin(async move {
            e2.execute(async move {
                let _ = tx.send(7);
            });
            tokio::task::yield_now().await;
        });
        let driver = Driver::new(conn, exec);
        // Nothing runs them but the driver: without it the value never comes.
        let (_, got) = tokio::join!(driver, rx);
        assert_eq!(got.ok(), Some(7));
    }
}
