//! Local clients of the status socket and the dashboard, served without ever blocking the
//! daemon's event loop: every socket is non-blocking, requests are collected across
//! readiness events, answers are written as the socket takes them, and a client that has
//! not finished within [`CLIENT_DEADLINE_MS`] is dropped.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::io::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;

/// A client gets this long, from connecting, to send its request and take its answer.
pub const CLIENT_DEADLINE_MS: u64 = 2_000;

/// Longest request accepted: a status command line or an HTTP request head.
pub const MAX_REQUEST: usize = 8 * 1024;

/// Most header lines read from one HTTP request.
const MAX_HEADERS: usize = 32;

/// Which interface a client came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The Unix status socket: one command line, one JSON line back.
    Status,
    /// The dashboard's HTTP port: one request head, one response (or a WebSocket).
    Http,
}

/// The client's socket.
#[derive(Debug)]
pub enum Stream {
    /// Status socket.
    Unix(UnixStream),
    /// Dashboard.
    Tcp(TcpStream),
}

impl Stream {
    pub fn fd(&self) -> RawFd {
        match self {
            Stream::Unix(s) => s.as_raw_fd(),
            Stream::Tcp(s) => s.as_raw_fd(),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }
}

/// What a client's request has come to.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// Not complete yet: wait for more.
    Pending,
    /// A status command line.
    Command(String),
    /// An HTTP request head, parsed by httparse (still in the socket: it was only peeked),
    /// of `len` bytes.
    Head {
        method: String,
        path: String,
        /// `Upgrade: websocket`.
        websocket: bool,
        len: usize,
    },
    /// Not an HTTP request (answered 400 and closed); `len` bytes were peeked.
    Bad { why: String, len: usize },
    /// The client went away or sent more than [`MAX_REQUEST`]: drop it.
    Gone,
}

/// One connected client.
#[derive(Debug)]
pub struct Client {
    pub stream: Stream,
    pub kind: Kind,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    sent: usize,
    answered: bool,
    pub deadline_ms: u64,
}

impl Client {
    /// A client accepted at `now_ms`; its socket must already be non-blocking.
    pub fn new(stream: Stream, kind: Kind, now_ms: u64) -> Client {
        Client {
            stream,
            kind,
            inbuf: Vec::new(),
            out: Vec::new(),
            sent: 0,
            answered: false,
            deadline_ms: now_ms.saturating_add(CLIENT_DEADLINE_MS),
        }
    }

    /// Whether the answer is queued (the request is no longer read).
    pub fn answered(&self) -> bool {
        self.answered
    }

    /// Reads what the socket has (never blocking) and says whether a request is complete.
    pub fn poll_request(&mut self) -> Request {
        match self.kind {
            Kind::Status => self.poll_line(),
            Kind::Http => self.poll_head(),
        }
    }

    fn poll_line(&mut self) -> Request {
        let mut chunk = [0u8; 1024];
        let mut eof = false;
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    self.inbuf.extend_from_slice(&chunk[..n]);
                    if self.inbuf.len() > MAX_REQUEST {
                        return Request::Gone;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Request::Gone,
            }
        }
        match self.inbuf.iter().position(|&b| b == b'\n') {
            Some(end) => Request::Command(String::from_utf8_lossy(&self.inbuf[..end]).into_owned()),
            None if eof && !self.inbuf.is_empty() => {
                Request::Command(String::from_utf8_lossy(&self.inbuf).into_owned())
            }
            None if eof => Request::Gone,
            None => Request::Pending,
        }
    }

    fn poll_head(&mut self) -> Request {
        let Stream::Tcp(s) = &self.stream else {
            return Request::Gone;
        };
        // Peek, do not consume: a WebSocket handshake reads the head itself.
        let mut head = vec![0u8; MAX_REQUEST];
        let n = loop {
            match s.peek(&mut head) {
                Ok(0) => return Request::Gone,
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Request::Pending,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Request::Gone,
            }
        };
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&head[..n]) {
            Ok(httparse::Status::Complete(len)) => {
                let websocket = req.headers.iter().any(|h| {
                    h.name.eq_ignore_ascii_case("upgrade")
                        && std::str::from_utf8(h.value)
                            .is_ok_and(|v| v.trim().eq_ignore_ascii_case("websocket"))
                });
                Request::Head {
                    method: req.method.unwrap_or("").to_string(),
                    path: req.path.unwrap_or("/").to_string(),
                    websocket,
                    len,
                }
            }
            Ok(httparse::Status::Partial) if n >= MAX_REQUEST => Request::Bad {
                why: format!("request head longer than {MAX_REQUEST} bytes"),
                len: n,
            },
            Ok(httparse::Status::Partial) => Request::Pending,
            Err(e) => Request::Bad {
                why: format!("malformed request: {e}"),
                len: n,
            },
        }
    }

    /// Consumes `len` bytes already known to be in the socket (a peeked request head).
    pub fn consume(&mut self, len: usize) -> io::Result<()> {
        let mut sink = vec![0u8; len];
        let mut got = 0;
        while got < len {
            match self.stream.read(&mut sink[got..]) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(k) => got += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Queues the answer and writes what the socket takes now.
    pub fn answer(&mut self, bytes: Vec<u8>) -> io::Result<bool> {
        self.out = bytes;
        self.sent = 0;
        self.answered = true;
        self.flush()
    }

    /// Writes more of the answer; true once all of it is written.
    pub fn flush(&mut self) -> io::Result<bool> {
        while self.sent < self.out.len() {
            match self.stream.write(&self.out[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(k) => self.sent += k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}
