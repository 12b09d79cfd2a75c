//! The floor under CPU per streamed probe: the cost section's streamed scenario (the same
//! simulator route, 40 words, a fresh connection per request, the same number in flight) read
//! by a client that does nothing with the bytes. It connects, writes the request, reads each
//! segment as it arrives and drops it, and closes after the chunked body's last chunk: on
//! tokio's current-thread runtime, on a thread of its own in the benchmark's process, its CPU
//! read from `/proc/thread-self/stat`. What it spends is what the kernel (connect, one
//! `recv` and one ACK per segment, `epoll_wait`, close) and the runtime take for the streams;
//! `canary run`'s CPU per probe minus this is what canary's own work costs (HTTP framing,
//! SSE, JSON, stamps, measures, checks, the report).

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{BenchError, RunCost};

/// The request `canary run` sends for the plain scenario, as bytes on the wire.
fn request(host: &str) -> Vec<u8> {
    let body = r#"{"model":"sim-plain","messages":[{"role":"user","content":"What is the capital of France?"}],"stream":true}"#;
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n\
         accept: text/event-stream\r\nx-sim-words: 40\r\nx-request-id: floor\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Whether the bytes read so far end a chunked body (its zero-size last chunk).
fn ends_chunked(tail: &[u8]) -> bool {
    tail.ends_with(b"\r\n0\r\n\r\n") || tail == b"0\r\n\r\n"
}

/// One request read to its end; true when the body ended (not a reset or a deadline).
async fn one(host: &str, req: &[u8], deadline: Duration) -> bool {
    let io = async {
        let mut s = TcpStream::connect(host).await?;
        s.set_nodelay(true)?;
        s.write_all(req).await?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut tail: Vec<u8> = Vec::with_capacity(16);
        loop {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                return Ok::<bool, std::io::Error>(false);
            }
            // The last 7 bytes seen, across reads: a last chunk can be split.
            tail.extend_from_slice(&buf[n.saturating_sub(7)..n]);
            let cut = tail.len().saturating_sub(7);
            tail.drain(..cut);
            if ends_chunked(&tail) {
                return Ok(true);
            }
        }
    };
    matches!(tokio::time::timeout(deadline, io).await, Ok(Ok(true)))
}

/// Reads `requests` streams, `in_flight` at a time, from `host` (`127.0.0.1:PORT`).
pub fn measure(host: &str, requests: usize, in_flight: usize) -> Result<RunCost, BenchError> {
    let host = host.to_string();
    let worker = std::thread::spawn(move || -> Result<RunCost, BenchError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| BenchError::Spawn(format!("the floor's runtime: {e}")))?;
        let req = request(&host);
        let cpu = || crate::procfs::thread_cpu_seconds().unwrap_or(0.0);
        let (c0, wall) = (cpu(), Instant::now());
        let ok = rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            let (mut started, mut ok) = (0usize, 0usize);
            let spawn = |set: &mut tokio::task::JoinSet<bool>| {
                let (host, req) = (host.clone(), req.clone());
                set.spawn(async move { one(&host, &req, Duration::from_secs(60)).await });
            };
            while started < requests.min(in_flight.max(1)) {
                spawn(&mut set);
                started += 1;
            }
            while let Some(done) = set.join_next().await {
                ok += usize::from(matches!(done, Ok(true)));
                if started < requests {
                    spawn(&mut set);
                    started += 1;
                }
            }
            ok
        });
        let (cpu_seconds, wall_seconds) = (cpu() - c0, wall.elapsed().as_secs_f64());
        Ok(RunCost {
            requests,
            in_flight,
            ok,
            wall_seconds,
            cpu_seconds,
            cpu_ms_per_probe: cpu_seconds * 1e3 / requests.max(1) as f64,
            peak_rss_bytes: 0,
        })
    });
    worker
        .join()
        .map_err(|_| BenchError::Spawn("the floor's thread panicked".into()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunked_body_ends_at_its_last_chunk_only() {
        assert!(ends_chunked(b"\r\n0\r\n\r\n"));
        assert!(ends_chunked(b"0\r\n\r\n"));
        // A size line that ends in 0 is not the end, nor is a last chunk cut short.
        assert!(!ends_chunked(b"\n10\r\n\r\n"));
        assert!(!ends_chunked(b"\r\n0\r\n\r"));
        assert!(!ends_chunked(b"data: 0\r\n"));
    }

    #[test]
    fn the_request_is_the_plain_scenario_with_its_length() {
        let r = String::from_utf8(request("127.0.0.1:9")).unwrap();
        let (head, body) = r.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        assert!(head.contains("x-sim-words: 40"), "{head}");
        assert!(serde_json::from_str::<serde_json::Value>(body).is_ok());
    }
}
