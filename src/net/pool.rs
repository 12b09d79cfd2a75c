//! An endpoint's keep-alive pool (`connection: reuse`): the idle connections [`super::http`]
//! keeps by origin and proxy, the ones being drained in the background, and what each
//! connection is (its request sender and how requests on it are written). A connection is
//! taken by one case run at a time and driven in that run's task.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;

use super::proxy::Proxy;

/// A connection's driving future (its reads and writes), polled in the probe's task.
pub(super) type ConnFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A connection's request sender.
pub(super) enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    pub(super) fn usable(&self) -> bool {
        match self {
            Sender::H1(s) => s.is_ready() && !s.is_closed(),
            Sender::H2(s) => s.is_ready() && !s.is_closed(),
        }
    }
}

/// What a pooled connection is: how requests on it are written.
#[derive(Clone)]
pub(super) struct ConnInfo {
    pub(super) https: bool,
    pub(super) h2: bool,
    pub(super) authority: String,
    pub(super) forward: Option<Arc<Proxy>>,
}

/// An idle connection kept for the next case run.
pub(super) struct Idle {
    pub(super) sender: Sender,
    pub(super) conn: ConnFuture,
    pub(super) stamps: super::rxstamp::RxStamps,
    pub(super) info: ConnInfo,
}

/// Idle connections an endpoint keeps at most per origin (more are closed).
const POOL_IDLE_MAX: usize = 8;

/// An endpoint's keep-alive pool (`connection: reuse`): idle connections by origin (and
/// proxy). A connection is taken by one case run at a time, driven in that run's task as a
/// fresh one is, and put back only when its response was read to the end.
#[derive(Default)]
pub struct Pool {
    idle: Mutex<HashMap<String, Vec<Idle>>>,
    /// HTTP/1.1 connections whose last body is being read to its end in the background.
    draining: Mutex<HashMap<String, usize>>,
    changed: tokio::sync::Notify,
}

/// How long a case run waits for a connection being drained before opening a new one.
const DRAIN_WAIT: std::time::Duration = std::time::Duration::from_millis(200);
/// Most a background drain reads, and how long it may take, before the connection is
/// closed instead of pooled.
pub(super) const DRAIN_MAX_BYTES: usize = 1 << 20;
pub(super) const DRAIN_MAX_TIME: std::time::Duration = std::time::Duration::from_secs(2);

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pool")
    }
}

impl Pool {
    /// An idle connection to `key` that is still open and ready for a request.
    pub(super) fn take(&self, key: &str) -> Option<Idle> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(key)?;
        while let Some(mut c) = list.pop() {
            // Let the connection notice a close or an EOF that came while it was idle.
            let waker = futures_util::task::noop_waker();
            let mut cx = std::task::Context::from_waker(&waker);
            if c.conn.as_mut().poll(&mut cx).is_ready() {
                continue;
            }
            if c.sender.usable() {
                return Some(c);
            }
        }
        None
    }

    pub(super) fn put(&self, key: String, c: Idle) {
        {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            let list = idle.entry(key).or_default();
            if list.len() < POOL_IDLE_MAX {
                list.push(c);
            }
        }
        self.changed.notify_waiters();
    }

    pub(super) fn draining(&self, key: &str, delta: isize) {
        {
            let mut d = self.draining.lock().unwrap_or_else(|e| e.into_inner());
            let n = d.entry(key.to_string()).or_default();
            *n = n.saturating_add_signed(delta);
        }
        self.changed.notify_waiters();
    }

    /// An idle connection to `key`; when none is idle but one is being drained, waits for
    /// it a little (the previous case run left it a moment ago).
    pub(super) async fn checkout(&self, key: &str) -> Option<Idle> {
        let until = tokio::time::Instant::now() + DRAIN_WAIT;
        loop {
            let changed = self.changed.notified();
            if let Some(c) = self.take(key) {
                return Some(c);
            }
            let busy = self
                .draining
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(key)
                .copied()
                .unwrap_or(0);
            if busy == 0 || tokio::time::Instant::now() >= until {
                return None;
            }
            let _ = tokio::time::timeout_at(until, changed).await;
        }
    }
}
