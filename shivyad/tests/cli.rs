//! shivyad as real processes on loopback: mesh, status, signals, --daemon, bad input.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_shivyad");

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("shivyad-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

struct Daemon {
    child: Child,
    socket: PathBuf,
    pid_file: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(dir: &Path, i: usize, port: u16, vertex: u32, load: f64, peer: Option<u16>) -> Daemon {
    let socket = dir.join(format!("d{i}.sock"));
    let pid_file = dir.join(format!("d{i}.pid"));
    let mut cmd = Command::new(BIN);
    cmd.args([
        "--port",
        &port.to_string(),
        "--vertices",
        "3",
        "--vertex",
        &vertex.to_string(),
    ])
    .args([
        "--load",
        &load.to_string(),
        "--interval-ms",
        "100",
        "--log-level",
        "warn",
    ])
    .arg("--socket")
    .arg(&socket)
    .arg("--pid-file")
    .arg(&pid_file)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    if let Some(p) = peer {
        cmd.args(["--peer", &format!("127.0.0.1:{p}")]);
    }
    Daemon {
        child: cmd.spawn().unwrap(),
        socket,
        pid_file,
    }
}

fn status_json(socket: &Path) -> Option<String> {
    let out = Command::new(BIN)
        .arg("status")
        .arg("--socket")
        .arg(socket)
        .arg("--json")
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\":");
    let rest = &json[json.find(&pat)? + pat.len()..];
    if rest.starts_with('[') {
        let end = rest.find(']')?;
        Some(&rest[..=end])
    } else {
        Some(&rest[..rest.find([',', '}'])?])
    }
}

fn wait_for(what: &str, deadline: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < deadline,
            "{what}: not reached within {deadline:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sigterm(pid: u32) {
    // SAFETY: sending a signal to a child process we started.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
}

#[test]
fn three_daemons_mesh_report_identical_routes_and_a_stopped_one_cleans_up() {
    let dir = tmpdir("mesh");
    let ports: Vec<u16> = (0..3).map(|_| free_udp_port()).collect();
    let mut ds = vec![spawn(&dir, 0, ports[0], 0, 1.0, None)];
    wait_for("first daemon's socket", Duration::from_secs(10), || {
        ds[0].socket.exists()
    });
    ds.push(spawn(&dir, 1, ports[1], 1, 5.0, Some(ports[0])));
    ds.push(spawn(&dir, 2, ports[2], 2, 9.0, Some(ports[0])));
    wait_for(
        "mesh with identical routes",
        Duration::from_secs(15),
        || {
            let s: Vec<Option<String>> = ds.iter().map(|d| status_json(&d.socket)).collect();
            if s.iter().any(|x| x.is_none()) {
                return false;
            }
            let s: Vec<String> = s.into_iter().flatten().collect();
            let peers_ok = s.iter().all(|j| field(j, "peer_count") == Some("2"));
            let routes: Vec<Option<&str>> = s.iter().map(|j| field(j, "routes")).collect();
            peers_ok
                && routes[0].is_some_and(|r| r.len() > 2)
                && routes.iter().all(|r| *r == routes[0])
        },
    );
    // One view, then one set of capacity signals (L4) on every daemon: signals follow the
    // records at each daemon's next layer step.
    wait_for(
        "one view and one set of signals",
        Duration::from_secs(15),
        || {
            let s: Vec<String> = ds.iter().filter_map(|d| status_json(&d.socket)).collect();
            s.len() == ds.len()
                && s.iter().all(|k| field(k, "view") == field(&s[0], "view"))
                && s.iter()
                    .all(|k| field(k, "signals") == field(&s[0], "signals"))
        },
    );
    let j = status_json(&ds[0].socket).unwrap();
    assert!(
        field(&j, "signals").is_some_and(|s| s.starts_with('[')),
        "{j}"
    );
    for p in &ports[1..] {
        assert!(
            j.contains(&format!("127.0.0.1:{p}")),
            "peer {p} listed: {j}"
        );
    }
    // Queues 1, 5, 9 at vertices 0, 1, 2 (gain 1): the settled routes are exact.
    assert_eq!(
        field(&j, "routes"),
        Some(
            r#"[{"src":1,"dst":0,"rate":4.0},{"src":2,"dst":0,"rate":8.0},{"src":2,"dst":1,"rate":4.0}]"#
        )
    );
    // The table view works too.
    let table = Command::new(BIN)
        .arg("status")
        .arg("--socket")
        .arg(&ds[1].socket)
        .output()
        .unwrap();
    assert!(table.status.success());
    assert!(String::from_utf8_lossy(&table.stdout).contains("2 -> 0"));

    // SIGTERM on the third: orderly exit, files removed, the others drop it.
    let d2 = ds.pop().unwrap();
    let pid = d2.child.id();
    assert_eq!(
        std::fs::read_to_string(&d2.pid_file).unwrap().trim(),
        pid.to_string()
    );
    sigterm(pid);
    let mut d2 = d2;
    let code = d2.child.wait().unwrap();
    assert!(code.success(), "exit status {code:?}");
    assert!(!d2.socket.exists(), "socket file removed");
    assert!(!d2.pid_file.exists(), "PID file removed");
    wait_for(
        "the others drop the stopped daemon",
        Duration::from_secs(10),
        || {
            ds.iter().all(|d| {
                status_json(&d.socket).is_some_and(|j| field(&j, "peer_count") == Some("1"))
            })
        },
    );
}

#[test]
fn daemon_mode_detaches_and_answers_status() {
    let dir = tmpdir("detach");
    let port = free_udp_port();
    let (sock, pid, out, err) = (
        dir.join("s.sock"),
        dir.join("s.pid"),
        dir.join("s.out"),
        dir.join("s.err"),
    );
    let status = Command::new(BIN)
        .args([
            "--daemon",
            "--port",
            &port.to_string(),
            "--interval-ms",
            "100",
        ])
        .arg("--socket")
        .arg(&sock)
        .arg("--pid-file")
        .arg(&pid)
        .arg("--stdout")
        .arg(&out)
        .arg("--stderr")
        .arg(&err)
        .status()
        .unwrap();
    assert!(status.success(), "the parent exits 0");
    wait_for("PID file", Duration::from_secs(10), || {
        std::fs::read_to_string(&pid).is_ok_and(|s| s.trim().parse::<i32>().is_ok())
    });
    let child: i32 = std::fs::read_to_string(&pid)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: signal 0 only checks that the process exists.
    assert_eq!(
        unsafe { libc::kill(child, 0) },
        0,
        "the PID file names a live process"
    );
    wait_for(
        "status from the detached daemon",
        Duration::from_secs(10),
        || status_json(&sock).is_some(),
    );
    assert!(status_json(&sock)
        .unwrap()
        .contains(&format!("127.0.0.1:{port}")));
    sigterm(child as u32);
    wait_for(
        "detached daemon stops and cleans up",
        Duration::from_secs(10),
        || !pid.exists() && !sock.exists(),
    );
    assert!(err.exists(), "stderr file created");
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn assert_one_line_error(out: &Output, needle: &str) {
    assert!(!out.status.success(), "exit status {:?}", out.status);
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected, got: {err}");
    assert!(lines[0].contains(needle), "{:?} lacks {needle:?}", lines[0]);
}

#[test]
fn bad_cli_input_exits_nonzero_with_one_clear_line() {
    let dir = tmpdir("bad");
    let sock = dir.join("x.sock");
    let s = sock.to_str().unwrap();
    assert_one_line_error(&run(&["--port", "0", "--socket", s]), "--port");
    assert_one_line_error(&run(&["--peer", "not-an-address", "--socket", s]), "--peer");
    assert_one_line_error(&run(&["--peer", "127.0.0.1", "--socket", s]), "--peer");
    let busy = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    assert_one_line_error(&run(&["--port", &port, "--socket", s]), "in use");
    let p = free_udp_port().to_string();
    assert_one_line_error(
        &run(&["--port", &p, "--socket", "/nonexistent-dir/x.sock"]),
        "status socket",
    );
    assert_one_line_error(
        &run(&["status", "--socket", "/nonexistent-dir/x.sock"]),
        "cannot reach",
    );
    assert_one_line_error(
        &run(&[
            "--port",
            &p,
            "--socket",
            s,
            "--vertices",
            "3",
            "--vertex",
            "7",
        ]),
        "--vertex",
    );
    assert_one_line_error(
        &run(&["--port", &p, "--socket", s, "--load", "NaN"]),
        "--load",
    );
    assert!(!sock.exists(), "no socket left behind");
}

#[test]
fn stalled_local_clients_do_not_stall_the_daemon() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    let dir = tmpdir("stall");
    let port = free_udp_port();
    let http = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let socket = dir.join("d.sock");
    // Killed and reaped when dropped.
    let _daemon = Daemon {
        child: Command::new(BIN)
            .args([
                "--port",
                &port.to_string(),
                "--vertices",
                "3",
                "--load",
                "0.5",
            ])
            .args([
                "--log-level",
                "warn",
                "--visualize",
                "--ws-port",
                &http.to_string(),
            ])
            .arg("--socket")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        socket: socket.clone(),
        pid_file: dir.join("unused.pid"),
    };
    wait_for("daemon up", Duration::from_secs(10), || {
        status_json(&socket).is_some()
    });
    // Sixteen clients on each interface that connect and never finish a request: one
    // says nothing, one sends half an HTTP head. The old loop read each with a 500 ms
    // timeout in turn (8 s per interface) before it could answer anyone else.
    let mut stalled_unix = Vec::new();
    let mut stalled_tcp = Vec::new();
    for _ in 0..16 {
        stalled_unix.push(UnixStream::connect(&socket).unwrap());
        let mut t = std::net::TcpStream::connect(("127.0.0.1", http)).unwrap();
        t.write_all(b"GET /status.json HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        stalled_tcp.push(t);
    }
    let start = Instant::now();
    let json = status_json(&socket).expect("a status answer while 32 clients stall");
    let waited = start.elapsed();
    assert!(json.contains("\"peers\""), "{json}");
    assert!(
        waited < Duration::from_secs(2),
        "the status answer waited {waited:?} behind stalled clients"
    );
    // The stalled clients are dropped at their deadline (2 s): their sockets reach EOF.
    for s in &mut stalled_unix {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut b = [0u8; 16];
        assert_eq!(
            s.read(&mut b).unwrap_or(0),
            0,
            "a stalled status client was answered"
        );
    }
    for s in &mut stalled_tcp {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut b = [0u8; 16];
        assert_eq!(s.read(&mut b).unwrap_or(0), 0);
    }
    // And the daemon still answers.
    assert!(status_json(&socket).is_some());
}
