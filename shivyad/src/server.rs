//! The daemon's event loop and its two local interfaces (status socket, dashboard).

use crate::clients::{Client, Kind, Request, Stream};
use crate::metrics::Timings;
use crate::status::{snapshot_json, table};
use crate::{sys, RunArgs};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use shivya_core::mesh::{Node, NodeConfig, WorkloadTopology};
use shivya_core::telemetry::HostTelemetry;
use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

const UDP: Token = Token(0);
const STATUS: Token = Token(1);
const HTTP: Token = Token(2);
/// Tokens of accepted local clients start here.
const FIRST_CLIENT: usize = 16;
const HISTORY: usize = 120;
const DASHBOARD: &str = include_str!("../static/dashboard.html");

/// A startup or I/O failure, with a message for the one-line error.
#[derive(Debug)]
pub struct Failure(String);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn fail(msg: impl Into<String>) -> Failure {
    Failure(msg.into())
}

/// Removes the status socket and PID file when the daemon stops, however it stops.
struct Cleanup {
    socket: PathBuf,
    pid_file: Option<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        if let Some(p) = &self.pid_file {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn bind_status_socket(path: &Path) -> Result<UnixListener, Failure> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(fail(format!(
                "another daemon is serving {}",
                path.display()
            )));
        }
        // A stale file from a daemon that died: reclaim it.
        std::fs::remove_file(path).map_err(|e| {
            fail(format!(
                "cannot remove stale socket {}: {e}",
                path.display()
            ))
        })?;
    }
    let l = UnixListener::bind(path).map_err(|e| {
        fail(format!(
            "cannot create status socket {}: {e}",
            path.display()
        ))
    })?;
    l.set_nonblocking(true).map_err(|e| fail(e.to_string()))?;
    Ok(l)
}

struct Daemon {
    node: Node,
    host_load: bool,
    state_file: Option<PathBuf>,
    vertex: u32,
    load: Option<f64>,
    telemetry: HostTelemetry,
    history: VecDeque<f64>,
    clients: Vec<WebSocket<TcpStream>>,
    /// Status and dashboard connections being served, by poll token.
    conns: BTreeMap<Token, Client>,
    next_token: usize,
    start: Instant,
    timings: Timings,
}

impl Daemon {
    /// SIGHUP: re-reads the keyring file and hands the keys to the node. A bad file or a
    /// refused change is logged and the keys in use stay.
    fn reload_keyring(&mut self, path: Option<&std::path::Path>) {
        let Some(path) = path else {
            tracing::info!("SIGHUP: no --keyring-file, nothing to reload");
            return;
        };
        match crate::trust::load_keyring(path) {
            Ok(ring) => {
                let ids = ring.ids();
                let primary = ring.primary();
                match self.node.state_mut().set_keyring(ring) {
                    Ok(()) => tracing::info!(?ids, primary, "keyring reloaded"),
                    Err(e) => {
                        tracing::error!(error = %e, "keyring not reloaded; the keys in use stay")
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "keyring not reloaded; the keys in use stay"),
        }
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn snapshot(&mut self) -> String {
        let h: Vec<f64> = self.history.iter().copied().collect();
        let now = self.now();
        snapshot_json(&mut self.node, self.vertex, &h, now)
    }

    /// Host sampling (or the fixed load), the F_collective history, the dashboard feed.
    fn tick(&mut self) {
        let now = self.now();
        let load = match self.load {
            _ if !self.host_load => None,
            Some(l) => Some((l, [l, 0.0])),
            None => self
                .telemetry
                .sample(now)
                .map(|s| (10.0 * s.load(), s.observation())),
        };
        if let Some((q, obs)) = load {
            if let Err(e) = self.node.record_queue_len(self.vertex, q) {
                tracing::warn!(error = %e, "could not record the host load");
            }
            if let Err(e) = self.node.state_mut().observe(&obs) {
                tracing::warn!(error = %e, "could not record the host observation");
            }
        } else {
            tracing::debug!("no host sample this tick");
        }
        let status = self.node.status();
        self.history.push_back(status.f_collective);
        if self.history.len() > HISTORY {
            self.history.pop_front();
        }
        tracing::debug!(
            peers = status.peers,
            records = status.records,
            f = status.f_collective,
            "tick"
        );
        if !self.clients.is_empty() {
            let snap = self.snapshot();
            self.clients
                .retain_mut(|ws| ws.send(Message::text(snap.clone())).is_ok());
        }
    }

    /// Accepts every pending connection of a listener and registers it; nothing is read
    /// here, so a client that connects and says nothing costs the loop nothing.
    fn accept(
        &mut self,
        registry: &mio::Registry,
        kind: Kind,
        accept: impl Fn() -> io::Result<Stream>,
    ) {
        loop {
            let stream = match accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    return;
                }
            };
            let token = Token(self.next_token);
            self.next_token = self.next_token.wrapping_add(1).max(FIRST_CLIENT);
            let fd = stream.fd();
            if let Err(e) = registry.register(
                &mut SourceFd(&fd),
                token,
                Interest::READABLE | Interest::WRITABLE,
            ) {
                tracing::warn!(error = %e, "cannot watch a local client; dropped");
                continue;
            }
            let now = self.now();
            self.conns.insert(token, Client::new(stream, kind, now));
        }
    }

    fn drop_client(registry: &mio::Registry, c: Client) {
        let _ = registry.deregister(&mut SourceFd(&c.stream.fd()));
    }

    /// Clients past their deadline are dropped (a stalled reader or writer).
    fn prune_clients(&mut self, registry: &mio::Registry) {
        let now = self.now();
        let late: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| c.deadline_ms <= now)
            .map(|(t, _)| *t)
            .collect();
        for t in late {
            if let Some(c) = self.conns.remove(&t) {
                tracing::debug!("local client too slow; dropped");
                Self::drop_client(registry, c);
            }
        }
    }

    /// Progress on one client: read its request, answer it, write the answer.
    fn serve_client(&mut self, token: Token, registry: &mio::Registry) {
        let Some(mut c) = self.conns.remove(&token) else {
            return;
        };
        if !c.answered() {
            match c.poll_request() {
                Request::Pending => {
                    self.conns.insert(token, c);
                    return;
                }
                Request::Gone => return Self::drop_client(registry, c),
                Request::Command(line) => {
                    let mut body = self.command(line.trim()).into_bytes();
                    body.push(b'\n');
                    return self.answer(token, c, body, registry);
                }
                Request::Bad { why, len } => {
                    let _ = c.consume(len);
                    let body = http("400 Bad Request", "text/plain", format!("{why}\n"));
                    return self.answer(token, c, body.into_bytes(), registry);
                }
                Request::Head {
                    method,
                    path,
                    websocket,
                    len,
                } => {
                    if websocket {
                        let _ = registry.deregister(&mut SourceFd(&c.stream.fd()));
                        if let Stream::Tcp(s) = c.stream {
                            if let Err(e) = self.websocket(s) {
                                tracing::debug!(error = %e, "dashboard WebSocket dropped");
                            }
                        }
                        return;
                    }
                    if c.consume(len).is_err() {
                        return Self::drop_client(registry, c);
                    }
                    let body = self.http_response(&method, &path).into_bytes();
                    return self.answer(token, c, body, registry);
                }
            }
        }
        match c.flush() {
            Ok(false) => {
                self.conns.insert(token, c);
            }
            Ok(true) | Err(_) => Self::drop_client(registry, c),
        }
    }

    fn answer(&mut self, token: Token, mut c: Client, body: Vec<u8>, registry: &mio::Registry) {
        match c.answer(body) {
            Ok(false) => {
                self.conns.insert(token, c);
            }
            Ok(true) | Err(_) => Self::drop_client(registry, c),
        }
    }

    /// One request on the local status socket: `status`, `records`, `write VERTEX QUEUE`,
    /// `block ADDR:PORT`, `unblock ADDR:PORT`. The socket is local and trusted (its file
    /// permissions decide who may use it).
    fn command(&mut self, line: &str) -> String {
        let words: Vec<&str> = line.split_whitespace().collect();
        let err = |m: String| serde_json::json!({"ok": false, "error": m}).to_string();
        match words.as_slice() {
            ["status"] => self.snapshot(),
            ["metrics"] => {
                let now = self.now();
                crate::metrics::render(&mut self.node, &self.timings, now)
            }
            ["records"] => crate::status::records_json(self.node.state()),
            ["write", v, q] => {
                let (Ok(v), Ok(q)) = (v.parse::<u32>(), q.parse::<f64>()) else {
                    return err(format!("cannot parse {line:?}; use: write VERTEX QUEUE"));
                };
                if let Err(e) = self.node.record_queue_len(v, q) {
                    return err(e.to_string());
                }
                let own = self.node.state().own_record().clone();
                if let Some(p) = &self.state_file {
                    // Durable before acknowledged.
                    if let Err(e) = crate::state_file::save(p, &own) {
                        return err(format!("write applied but not persisted: {e}"));
                    }
                }
                format!("{{\"ok\":true,\"version\":{}}}", own.version)
            }
            ["block" | "unblock", a] => match a.parse::<SocketAddr>() {
                Ok(addr) => {
                    if words[0] == "block" {
                        self.node.block(addr);
                    } else {
                        self.node.unblock(addr);
                    }
                    "{\"ok\":true}".to_string()
                }
                Err(e) => err(format!("bad address {a:?}: {e}")),
            },
            _ => err(format!(
                "unknown request {line:?}; use status, metrics, records, write, block or unblock"
            )),
        }
    }

    /// A WebSocket client of the dashboard: the handshake (its request head is already in
    /// the socket, its answer is small) runs with short timeouts, then the socket is
    /// non-blocking and the loop only ever writes to it (a full buffer drops the client).
    fn websocket(&mut self, s: TcpStream) -> io::Result<()> {
        s.set_nonblocking(false)?;
        s.set_read_timeout(Some(Duration::from_millis(100)))?;
        s.set_write_timeout(Some(Duration::from_millis(100)))?;
        let mut ws = tungstenite::accept(s).map_err(|e| io::Error::other(e.to_string()))?;
        ws.get_mut().set_nonblocking(true)?;
        let snap = self.snapshot();
        if ws.send(Message::text(snap)).is_ok() {
            self.clients.push(ws);
        }
        Ok(())
    }

    /// The answer to a plain HTTP request (`GET`; `HEAD` gets the same head, no body).
    fn http_response(&mut self, method: &str, target: &str) -> String {
        if method != "GET" && method != "HEAD" {
            return http(
                "405 Method Not Allowed",
                "text/plain",
                format!("{method} is not served here; use GET\n"),
            );
        }
        let path = target.split('?').next().unwrap_or(target);
        let (code, ctype, body) = match path {
            "/" | "/index.html" => ("200 OK", "text/html; charset=utf-8", DASHBOARD.to_string()),
            "/status.json" => ("200 OK", "application/json", self.snapshot()),
            "/metrics" => {
                let now = self.now();
                (
                    "200 OK",
                    crate::metrics::CONTENT_TYPE,
                    crate::metrics::render(&mut self.node, &self.timings, now),
                )
            }
            _ => ("404 Not Found", "text/plain", "not found\n".to_string()),
        };
        let mut out = http(code, ctype, body);
        if method == "HEAD" {
            if let Some(end) = out.find("\r\n\r\n") {
                out.truncate(end + 4);
            }
        }
        out
    }
}

/// A complete HTTP/1.1 response that closes the connection.
fn http(code: &str, ctype: &str, body: String) -> String {
    format!(
        "HTTP/1.1 {code}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Runs the daemon until SIGINT/SIGTERM.
pub fn run(args: RunArgs) -> Result<(), Failure> {
    if args.daemon {
        sys::daemonize(&args.stdout, &args.stderr)
            .map_err(|e| fail(format!("cannot detach: {e}")))?;
    }
    tracing_subscriber::fmt()
        .with_max_level(args.log_level)
        .with_target(false)
        .with_ansi(!args.daemon && std::io::IsTerminal::is_terminal(&io::stderr()))
        .with_writer(io::stderr)
        .init();
    let stop = sys::install_signal_handlers()
        .map_err(|e| fail(format!("cannot install signal handlers: {e}")))?;
    let reload = sys::install_reload_handler()
        .map_err(|e| fail(format!("cannot install signal handlers: {e}")))?;

    let vertex = args.vertex.unwrap_or(u32::from(args.port) % args.vertices);
    if vertex >= args.vertices {
        return Err(fail(format!(
            "--vertex {vertex} is out of range: --vertices is {}",
            args.vertices
        )));
    }
    if let Some(l) = args.load {
        if !(l >= 0.0 && l.is_finite()) {
            return Err(fail(format!("--load {l} must be finite and non-negative")));
        }
    }
    let listen = SocketAddr::new(args.bind, args.port);
    let seed = args.seed.unwrap_or_else(|| {
        let ip = match args.bind {
            std::net::IpAddr::V4(v4) => u64::from(u32::from(v4)),
            std::net::IpAddr::V6(v6) => u128::from(v6) as u64,
        };
        (ip << 16) | u64::from(args.port)
    });
    let config = NodeConfig {
        listen,
        seed,
        bootstrap: args.peers.clone(),
        topology: WorkloadTopology::for_backends(args.vertices)
            .map_err(|e| fail(format!("--vertices {}: {e}", args.vertices)))?,
        // The layer stack runs at the daemon's sampling rate (1 Hz by default); gossip
        // and Kademlia keep their own faster timers.
        step_interval_ms: args.interval_ms,
        // The host may read the clock: each run of this daemon gets versions above those
        // of every earlier run (see NodeConfig::incarnation).
        incarnation: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        ..NodeConfig::default()
    };
    let mut config = config;
    if let Some(p) = &args.auth_key_file {
        let bytes = std::fs::read(p)
            .map_err(|e| fail(format!("cannot read key file {}: {e}", p.display())))?;
        let trimmed = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        config.auth_key = Some(
            shivya_core::mesh::MeshKey::new(trimmed)
                .map_err(|e| fail(format!("key file {}: {e}", p.display())))?,
        );
    }
    crate::trust::configure(
        &mut config,
        args.identity_file.as_deref(),
        &args.admit_keys,
        args.keyring_file.as_deref(),
    )
    .map_err(fail)?;
    let start = Instant::now();
    let restored = match &args.state_file {
        Some(p) => crate::state_file::load(p).map_err(fail)?,
        None => None,
    };
    // The state file names the node's current id: a node that had to take a new id (its
    // old origin was pushed past the top of the version range by a forged frame) comes
    // back under the new one.
    if let Some(r) = &restored {
        if r.origin != config.node_id() {
            tracing::info!(id = %r.origin, "taking the id named in the state file");
            config.id = Some(r.origin);
        }
    }
    let mut node = Node::bind(config, 0)
        .map_err(|e| fail(format!("cannot start the mesh node on udp {listen}: {e}")))?;
    if let Some(r) = restored {
        let version = r.version;
        node.state_mut()
            .restore_own(r)
            .map_err(|e| fail(format!("cannot restore the state file: {e}")))?;
        tracing::info!(version, "own record restored from the state file");
    }
    let status_listener = bind_status_socket(&args.socket)?;
    let pid_file = if args.daemon {
        Some(
            args.pid_file
                .clone()
                .unwrap_or_else(|| PathBuf::from("/tmp/shivya.pid")),
        )
    } else {
        args.pid_file.clone()
    };
    let _cleanup = Cleanup {
        socket: args.socket.clone(),
        pid_file: pid_file.clone(),
    };
    if let Some(p) = &pid_file {
        std::fs::write(p, format!("{}\n", std::process::id()))
            .map_err(|e| fail(format!("cannot write PID file {}: {e}", p.display())))?;
    }
    let http = if args.visualize {
        let addr = SocketAddr::from(([127, 0, 0, 1], args.ws_port));
        let l = TcpListener::bind(addr)
            .map_err(|e| fail(format!("cannot serve the dashboard on {addr}: {e}")))?;
        l.set_nonblocking(true).map_err(|e| fail(e.to_string()))?;
        tracing::info!("dashboard on http://{addr}/ (WebSocket at ws://{addr}/ws)");
        Some(l)
    } else {
        None
    };

    let mut poll = Poll::new().map_err(|e| fail(e.to_string()))?;
    let mut d = Daemon {
        node,
        host_load: !args.no_host_load,
        state_file: args.state_file.clone(),
        vertex,
        load: args.load,
        telemetry: HostTelemetry::new(),
        history: VecDeque::new(),
        clients: Vec::new(),
        conns: BTreeMap::new(),
        next_token: FIRST_CLIENT,
        start,
        timings: Timings::default(),
    };
    let reg = poll.registry();
    reg.register(d.node.socket_mut(), UDP, Interest::READABLE)
        .map_err(|e| fail(e.to_string()))?;
    reg.register(
        &mut SourceFd(&status_listener.as_raw_fd()),
        STATUS,
        Interest::READABLE,
    )
    .map_err(|e| fail(e.to_string()))?;
    if let Some(l) = &http {
        reg.register(&mut SourceFd(&l.as_raw_fd()), HTTP, Interest::READABLE)
            .map_err(|e| fail(e.to_string()))?;
    }
    tracing::info!(
        id = %d.node.status().id,
        udp = %d.node.local_addr(),
        vertex,
        socket = %args.socket.display(),
        "shivyad running"
    );

    let mut events = Events::with_capacity(64);
    let mut next_tick = 0u64;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        if reload.swap(false, std::sync::atomic::Ordering::SeqCst) {
            d.reload_keyring(args.keyring_file.as_deref());
        }
        let now = d.now();
        let wait = d
            .node
            .next_timeout_ms(now)
            .min(next_tick.saturating_sub(now));
        match poll.poll(&mut events, Some(Duration::from_millis(wait))) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(fail(format!("poll failed: {e}"))),
        }
        let registry = poll.registry();
        for ev in events.iter() {
            match ev.token() {
                UDP => {}
                STATUS => d.accept(registry, Kind::Status, || {
                    let (s, _) = status_listener.accept()?;
                    s.set_nonblocking(true)?;
                    Ok(Stream::Unix(s))
                }),
                HTTP => {
                    if let Some(l) = &http {
                        d.accept(registry, Kind::Http, || {
                            let (s, _) = l.accept()?;
                            s.set_nonblocking(true)?;
                            Ok(Stream::Tcp(s))
                        });
                    }
                }
                t => d.serve_client(t, registry),
            }
        }
        d.prune_clients(registry);
        let now = d.now();
        let layer_steps = d.node.status().counters.layer_steps;
        let t0 = Instant::now();
        if let Err(e) = d.node.step(now) {
            tracing::warn!(error = %e, "step failed; continuing");
        }
        let took = t0.elapsed().as_secs_f64();
        if d.node.status().counters.layer_steps != layer_steps {
            d.timings.layer_step.observe(took);
        } else {
            d.timings.io_step.observe(took);
        }
        if now >= next_tick {
            next_tick = now + args.interval_ms;
            d.tick();
        }
    }
    tracing::info!("stopping: telling peers we leave");
    if let Err(e) = d.node.leave() {
        tracing::warn!(error = %e, "leave failed");
    }
    Ok(())
}

/// `shivyad status`: one request over the Unix socket.
pub fn query_status(socket: &Path, as_json: bool) -> Result<(), Failure> {
    let mut s = UnixStream::connect(socket).map_err(|e| {
        fail(format!(
            "cannot reach a daemon at {}: {e}",
            socket.display()
        ))
    })?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| fail(e.to_string()))?;
    s.write_all(b"status\n").map_err(|e| fail(e.to_string()))?;
    let mut out = String::new();
    s.read_to_string(&mut out)
        .map_err(|e| fail(format!("reading the status: {e}")))?;
    if as_json {
        print!("{out}");
    } else {
        print!("{}", table(out.trim()).map_err(fail)?);
    }
    Ok(())
}
