//! Arrival stamps for every byte a probe reads: the kernel's receive timestamp of the data.
//!
//! A busy client reads a socket some time after the bytes arrived (its task waits for a
//! worker thread, other streams are parsed first). Stamping at the read would count that
//! wait as the endpoint's latency. So the TCP stream of every probe asks the kernel to stamp
//! incoming data as it enters the network stack (`SO_TIMESTAMPNS`) and reads with
//! `recvmsg`, which returns the stamp of the last segment consumed; [`RxStamps`] keeps the
//! stamp of the latest read that returned data, converted to this process's monotonic
//! clock. Where the kernel gives no stamp (another OS, a socket option refused), the stamp
//! is the instant the read returned, as before.
//!
//! A read that finds several pieces waiting (the reader was late by more than the gap
//! between them) stamps them all with the arrival of the last: the stamp is an upper bound,
//! late by at most how late the read was, and exact whenever each read finds one piece.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The arrival instant of the latest data read on a connection, shared with its reader.
#[derive(Debug, Clone)]
pub struct RxStamps {
    base: Instant,
    /// Nanoseconds after `base` of the latest arrival; `u64::MAX`: nothing read yet.
    last: Arc<AtomicU64>,
    /// Reads stamped by the kernel, and all reads that returned data.
    kernel: Arc<AtomicU64>,
    reads: Arc<AtomicU64>,
    /// The kernel agreed to stamp this connection's data.
    by_kernel: bool,
}

impl RxStamps {
    fn new(by_kernel: bool) -> RxStamps {
        RxStamps {
            base: Instant::now(),
            last: Arc::new(AtomicU64::new(u64::MAX)),
            kernel: Arc::new(AtomicU64::new(0)),
            reads: Arc::new(AtomicU64::new(0)),
            by_kernel,
        }
    }

    /// Whether the kernel stamps this connection's data: it accepted the option and has
    /// stamped a read already (then a reader may parse between reads without delaying any
    /// stamp).
    pub fn by_kernel(&self) -> bool {
        self.by_kernel && self.kernel.load(Ordering::Relaxed) > 0
    }

    /// Records a read's arrival. Arrivals never go backwards (a segment that arrived out of
    /// order, before a retransmission filled the gap ahead of it, keeps its earlier stamp).
    fn record(&self, at: Instant, by_kernel: bool) {
        let ns = at.saturating_duration_since(self.base).as_nanos();
        let ns = u64::try_from(ns).unwrap_or(u64::MAX - 1);
        let _ = self
            .last
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |old| {
                (old == u64::MAX || ns > old).then_some(ns)
            });
        self.reads.fetch_add(1, Ordering::Relaxed);
        if by_kernel {
            self.kernel.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// When the data of the latest read arrived, never later than now; now when nothing
    /// has been read.
    pub fn last(&self) -> Instant {
        let now = Instant::now();
        match self.last.load(Ordering::Acquire) {
            u64::MAX => now,
            ns => (self.base + Duration::from_nanos(ns)).min(now),
        }
    }

    /// Reads that returned data, and how many of them the kernel stamped.
    #[cfg(test)]
    fn counts(&self) -> (u64, u64) {
        (
            self.reads.load(Ordering::Relaxed),
            self.kernel.load(Ordering::Relaxed),
        )
    }
}

/// The monotonic instant of a wall-clock kernel stamp: now, less how long ago the stamp was
/// by the wall clock. `None` for a stamp in the future or implausibly old (a clock step).
fn instant_of(stamp: Duration, now: Instant, wall_now: SystemTime) -> Option<Instant> {
    let wall = wall_now.duration_since(UNIX_EPOCH).ok()?;
    let ago = wall.checked_sub(stamp)?;
    if ago > Duration::from_secs(60) {
        return None;
    }
    now.checked_sub(ago)
}

/// A TCP stream whose reads are stamped on arrival.
pub struct StampedTcp {
    tcp: TcpStream,
    stamps: RxStamps,
}

impl StampedTcp {
    /// Wraps `tcp`, asking the kernel for receive timestamps.
    pub fn new(tcp: TcpStream) -> (StampedTcp, RxStamps) {
        let stamps = RxStamps::new(sys::enable(&tcp));
        (
            StampedTcp {
                tcp,
                stamps: stamps.clone(),
            },
            stamps,
        )
    }
}

impl StampedTcp {
    /// The arrival stamps of this connection's reads.
    pub fn stamps(&self) -> RxStamps {
        self.stamps.clone()
    }
}

impl AsyncRead for StampedTcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.stamps.by_kernel {
            let before = buf.filled().len();
            let r = Pin::new(&mut self.tcp).poll_read(cx, buf);
            if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
                self.stamps.record(Instant::now(), false);
            }
            return r;
        }
        loop {
            if let Err(e) = std::task::ready!(self.tcp.poll_read_ready(cx)) {
                return Poll::Ready(Err(e));
            }
            let this = &mut *self;
            // Into the unfilled part as it is (no zeroing a large buffer on every read).
            // SAFETY: the kernel only writes into it; nothing de-initializes bytes.
            #[allow(unsafe_code)]
            let unfilled = unsafe { buf.unfilled_mut() };
            let room = unfilled.len();
            // A read that returned less than it had room for drained the socket: its
            // readiness is cleared now, as tokio's own `poll_read` does, so the next poll
            // waits for the next arrival instead of making a `recvmsg` that finds nothing.
            // `try_io` clears readiness only when its closure says `WouldBlock`, so the
            // closure keeps the result aside and says so; a segment that arrived after the
            // read raised a new readiness event, which this does not clear.
            let mut drained = None;
            let got = this.tcp.try_io(tokio::io::Interest::READABLE, || {
                let (n, stamp) = sys::recv(&this.tcp, unfilled)?;
                if n > 0 && n < room {
                    drained = Some((n, stamp));
                    return Err(std::io::ErrorKind::WouldBlock.into());
                }
                Ok((n, stamp))
            });
            let got = match (got, drained) {
                (_, Some(read)) => Ok(read),
                (got, None) => got,
            };
            match got {
                Ok((n, stamp)) => {
                    let now = Instant::now();
                    if n > 0 {
                        // A stamp from before the connection existed is a clock step.
                        let kernel = stamp
                            .and_then(|s| instant_of(s, now, SystemTime::now()))
                            .filter(|at| *at >= this.stamps.base);
                        this.stamps.record(kernel.unwrap_or(now), kernel.is_some());
                    }
                    // SAFETY: recvmsg wrote `n` bytes at the start of the unfilled part.
                    #[allow(unsafe_code)]
                    unsafe {
                        buf.assume_init(n);
                    }
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for StampedTcp {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod sys {
    //! `SO_TIMESTAMPNS` and `recvmsg` (Linux).
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    use tokio::net::TcpStream;

    /// Turns on software receive timestamps; false when the kernel refuses.
    pub fn enable(tcp: &TcpStream) -> bool {
        keep_stamping();
        set_timestamps(tcp.as_raw_fd())
    }

    /// The kernel stamps incoming packets only while some socket asks for it, and turns
    /// stamping on and off (deferred) as that count leaves and returns to zero. One socket
    /// that asks for the life of the process keeps it on between one probe's connection and
    /// the next, so the first segments of a new connection are stamped too.
    fn keep_stamping() {
        static KEEP: std::sync::OnceLock<Option<std::net::UdpSocket>> = std::sync::OnceLock::new();
        KEEP.get_or_init(|| {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").ok()?;
            set_timestamps(s.as_raw_fd()).then_some(s)
        });
    }

    fn set_timestamps(fd: std::os::fd::RawFd) -> bool {
        let one: libc::c_int = 1;
        // SAFETY: a valid socket descriptor and a pointer to a c_int of the given size.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        r == 0
    }

    /// One non-blocking `recvmsg` into `buf`: bytes read and the kernel's stamp of the last
    /// segment consumed (wall clock, since the Unix epoch), when it gave one.
    pub fn recv(
        tcp: &TcpStream,
        buf: &mut [std::mem::MaybeUninit<u8>],
    ) -> std::io::Result<(usize, Option<Duration>)> {
        // Room for a timespec control message, 8-byte aligned.
        let mut control = [0u64; 8];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: msghdr is plain data; every pointer set below outlives the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: the descriptor is open; msg points at a live buffer and control area.
        let n = unsafe { libc::recvmsg(tcp.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut stamp = None;
        // SAFETY: the CMSG macros walk the control area the kernel filled, within
        // msg_controllen; the timespec is read unaligned from its data.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                    let ts: libc::timespec =
                        std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::timespec>());
                    if ts.tv_sec > 0 && (0..1_000_000_000).contains(&ts.tv_nsec) {
                        stamp = Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
                    }
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        Ok((n as usize, stamp))
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    //! No kernel stamps: reads are stamped when they return.
    use std::time::Duration;
    use tokio::net::TcpStream;

    pub fn enable(_tcp: &TcpStream) -> bool {
        false
    }

    pub fn recv(
        _tcp: &TcpStream,
        _buf: &mut [std::mem::MaybeUninit<u8>],
    ) -> std::io::Result<(usize, Option<Duration>)> {
        Err(std::io::ErrorKind::Unsupported.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn kernel_stamps_convert_to_the_monotonic_clock() {
        let now = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_secs(1_000);
        let at = instant_of(Duration::from_millis(999_970), now, wall).unwrap();
        assert_eq!(now - at, Duration::from_millis(30));
        // From the future, or from before a clock step: not trusted.
        assert!(instant_of(Duration::from_secs(1_001), now, wall).is_none());
        assert!(instant_of(Duration::from_secs(100), now, wall).is_none());
    }

    #[tokio::test]
    async fn bytes_read_late_are_stamped_when_they_arrived() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            // Data that arrives before the client turns stamps on is not stamped.
            tokio::time::sleep(Duration::from_millis(20)).await;
            s.write_all(b"first").await.unwrap();
            let written = Instant::now();
            tokio::time::sleep(Duration::from_millis(200)).await;
            s.write_all(b"second").await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            written
        });
        let (mut tcp, stamps) = StampedTcp::new(TcpStream::connect(addr).await.unwrap());
        // Read well after the first write: the stamp is the arrival, not the read.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut buf = [0u8; 5];
        tcp.read_exact(&mut buf).await.unwrap();
        let read_at = Instant::now();
        let first = stamps.last();
        let mut rest = [0u8; 6];
        tcp.read_exact(&mut rest).await.unwrap();
        let second = stamps.last();
        let written = server.await.unwrap();
        let (reads, by_kernel) = stamps.counts();
        assert_eq!(&buf, b"first");
        assert!(reads >= 2);
        // Where the kernel accepts the option (Linux), every read is stamped at the arrival.
        if stamps.by_kernel {
            assert!(stamps.by_kernel());
            assert_eq!(by_kernel, reads, "the kernel stamped every read");
            // The kernel stamps inside the write; the read came some 80 ms later.
            let lag = if first > written {
                first - written
            } else {
                written - first
            };
            assert!(
                lag < Duration::from_millis(20),
                "stamped {lag:?} from the write"
            );
            assert!(read_at - written >= Duration::from_millis(50));
            // The second write came about 200 ms after the first.
            let apart = second - first;
            assert!(
                apart >= Duration::from_millis(150) && apart <= Duration::from_millis(400),
                "{apart:?}"
            );
        }
    }
}
