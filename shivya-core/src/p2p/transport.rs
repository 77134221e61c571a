//! Non-blocking UDP on a mio socket, with an address block list for partition tests.

use super::protocol::MAX_FRAME;
use super::P2pError;
use crate::rng::Rng;
use std::collections::BTreeSet;
use std::io;
use std::net::SocketAddr;

/// What one receive attempt produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recv {
    /// A datagram of this many bytes from this address is in the buffer.
    Datagram(usize, SocketAddr),
    /// A datagram arrived from a blocked address and was dropped.
    Blocked,
    /// A datagram longer than [`MAX_FRAME`] arrived from this address; the buffer holds
    /// its first `MAX_FRAME + 1` bytes.
    Oversized(SocketAddr),
    /// Nothing more to read now.
    Empty,
}

/// A bound, non-blocking UDP socket.
#[derive(Debug)]
pub struct UdpTransport {
    socket: mio::net::UdpSocket,
    local: SocketAddr,
    blocked: BTreeSet<SocketAddr>,
    loss: Option<(f64, Rng)>,
}

impl UdpTransport {
    /// Binds `addr` (port 0 picks a free port). A port in use is an error.
    pub fn bind(addr: SocketAddr) -> Result<UdpTransport, P2pError> {
        Self::bind_with(addr, false)
    }

    /// Binds `addr`; with `reuse_port` (SO_REUSEPORT, Unix only) another socket with the
    /// same option may hold the same port at once, the kernel spreading datagrams between
    /// them: a new process generation binds before the old one has let go (nginx reloads
    /// and binary upgrades). Without it, a port in use is an error.
    pub fn bind_with(addr: SocketAddr, reuse_port: bool) -> Result<UdpTransport, P2pError> {
        let fail = |e: io::Error| P2pError::Bind {
            addr,
            reason: e.to_string(),
        };
        let domain = socket2::Domain::for_address(addr);
        let raw = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))
            .map_err(fail)?;
        if reuse_port {
            #[cfg(unix)]
            raw.set_reuse_port(true).map_err(fail)?;
            #[cfg(not(unix))]
            return Err(fail(io::Error::new(
                io::ErrorKind::Unsupported,
                "SO_REUSEPORT is only available on Unix",
            )));
        }
        raw.set_nonblocking(true).map_err(fail)?;
        raw.bind(&addr.into()).map_err(fail)?;
        let socket = mio::net::UdpSocket::from_std(raw.into());
        let local = socket.local_addr().map_err(|e| P2pError::Bind {
            addr,
            reason: e.to_string(),
        })?;
        Ok(UdpTransport {
            socket,
            local,
            blocked: BTreeSet::new(),
            loss: None,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Drops every frame to and from `addr` until [`unblock`](Self::unblock).
    pub fn block(&mut self, addr: SocketAddr) {
        self.blocked.insert(addr);
    }

    /// Lifts a [`block`](Self::block).
    pub fn unblock(&mut self, addr: SocketAddr) {
        self.blocked.remove(&addr);
    }

    /// Drops each outgoing datagram with probability `p` (seeded), to test loss on real
    /// sockets; `p = 0` turns it off. Values outside `[0, 1]` are clamped.
    pub fn set_loss(&mut self, p: f64, seed: u64) {
        let p = if p.is_finite() {
            p.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.loss = (p > 0.0).then(|| (p, Rng::new(seed)));
    }

    /// Whether `addr` is blocked.
    pub fn is_blocked(&self, addr: &SocketAddr) -> bool {
        self.blocked.contains(addr)
    }

    /// Reads one datagram into `buf` (which should hold `MAX_FRAME + 1` bytes, so an
    /// oversized datagram is recognised rather than silently truncated).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Recv> {
        loop {
            match self.socket.recv_from(buf) {
                Ok((n, from)) => {
                    if self.blocked.contains(&from) {
                        return Ok(Recv::Blocked);
                    }
                    if n > MAX_FRAME {
                        return Ok(Recv::Oversized(from));
                    }
                    return Ok(Recv::Datagram(n, from));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Recv::Empty),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // ICMP port-unreachable from an earlier send surfaces here on Linux; the
                // peer is gone, which the protocol's timeouts handle. Keep reading.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends one datagram. Returns `Ok(false)` when it was dropped because `to` is blocked
    /// or the socket buffer is full (UDP may lose frames; the protocol copes).
    pub fn send(&mut self, to: SocketAddr, payload: &[u8]) -> io::Result<bool> {
        if self.blocked.contains(&to) {
            return Ok(false);
        }
        if let Some((p, rng)) = &mut self.loss {
            if rng.chance(*p) {
                return Ok(false);
            }
        }
        loop {
            match self.socket.send_to(payload, to) {
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return Ok(false),
                Err(e) => return Err(e),
            }
        }
    }

    /// The socket, for registering with a host's mio `Poll`.
    pub fn socket_mut(&mut self) -> &mut mio::net::UdpSocket {
        &mut self.socket
    }

    /// The raw file descriptor, for a host's own epoll/kqueue/libuv loop.
    #[cfg(unix)]
    pub fn raw_fd(&self) -> std::os::unix::io::RawFd {
        use std::os::unix::io::AsRawFd;
        self.socket.as_raw_fd()
    }
}
