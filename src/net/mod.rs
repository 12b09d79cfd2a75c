//! The network every stage shares, below all of them: opening a connection (DNS, TCP, the
//! forward proxy, TLS, HTTP/1.1 or HTTP/2) with each phase stamped, the kernel's receive
//! stamps (`rxstamp`), the keep-alive pool, credentials (`auth`), an endpoint's network
//! settings (`transport::Net`) and the TLS roots and client configurations (`tls`). The
//! drivers, the sinks (push, remote write, OTLP, fetches of a source of truth) and the suite
//! loader (which builds `Net`, proxy, auth and TLS settings) all use it; it uses none of them
//! (only `timeline`, for the stamps it records, and `secret`, for what it must never print).

pub mod auth;
pub mod http;
pub mod pool;
pub mod proxy;
pub mod rxstamp;
pub mod tls;
pub mod transport;
