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

/// One top-level field of a status snapshot, as compact JSON text.
fn field(json: &str, key: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    Some(v.get(key)?.to_string())
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
            let peers_ok = s
                .iter()
                .all(|j| field(j, "peer_count").as_deref() == Some("2"));
            let routes: Vec<Option<String>> = s.iter().map(|j| field(j, "routes")).collect();
            peers_ok
                && routes[0].as_ref().is_some_and(|r| r.len() > 2)
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
    let v: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert_eq!(
        v["routes"],
        serde_json::json!([
            {"src": 1, "dst": 0, "rate": 4.0},
            {"src": 2, "dst": 0, "rate": 8.0},
            {"src": 2, "dst": 1, "rate": 4.0}
        ])
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
                status_json(&d.socket)
                    .is_some_and(|j| field(&j, "peer_count").as_deref() == Some("1"))
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
    // Keys: an allowlist without an identity, a key that is not hex, a keyring file that
    // is missing or malformed, a keyring beside a mesh key, an identity file of garbage.
    let id_file = dir.join("id");
    let id = id_file.to_str().unwrap();
    assert_one_line_error(
        &run(&["--port", &p, "--socket", s, "--admit-key", &"ab".repeat(32)]),
        "--identity-file",
    );
    assert_one_line_error(
        &run(&[
            "--port",
            &p,
            "--socket",
            s,
            "--identity-file",
            id,
            "--admit-key",
            "xyz",
        ]),
        "--admit-key",
    );
    assert_one_line_error(
        &run(&[
            "--port",
            &p,
            "--socket",
            s,
            "--keyring-file",
            "/nonexistent-ring",
        ]),
        "does not exist",
    );
    let ring = dir.join("ring");
    std::fs::write(&ring, "1 tooshort\n").unwrap();
    let r = ring.to_str().unwrap();
    assert_one_line_error(
        &run(&["--port", &p, "--socket", s, "--keyring-file", r]),
        "line 1",
    );
    std::fs::write(&ring, format!("1 {}\n", "cd".repeat(32))).unwrap();
    let key = dir.join("key");
    std::fs::write(&key, "a mesh key of 24 bytes!!").unwrap();
    let k = key.to_str().unwrap();
    assert_one_line_error(
        &run(&[
            "--port",
            &p,
            "--socket",
            s,
            "--keyring-file",
            r,
            "--auth-key-file",
            k,
        ]),
        "keyring",
    );
    std::fs::write(&id_file, "garbage").unwrap();
    assert_one_line_error(
        &run(&["--port", &p, "--socket", s, "--identity-file", id]),
        "identity file",
    );
    assert!(!sock.exists(), "no socket left behind");
}

/// One daemon on a free UDP port, 3 vertices, a fixed load and the dashboard on a free TCP
/// port: (the daemon, its status socket, its HTTP port).
fn spawn_with_dashboard(dir: &Path, load: &str, extra: &[&str]) -> (Daemon, PathBuf, u16) {
    let port = free_udp_port();
    let http = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let socket = dir.join("d.sock");
    let daemon = Daemon {
        child: Command::new(BIN)
            .args([
                "--port",
                &port.to_string(),
                "--vertices",
                "3",
                "--load",
                load,
            ])
            .args([
                "--log-level",
                "warn",
                "--visualize",
                "--ws-port",
                &http.to_string(),
            ])
            .args(extra)
            .arg("--socket")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        socket: socket.clone(),
        pid_file: dir.join("unused.pid"),
    };
    (daemon, socket, http)
}

#[test]
fn stalled_local_clients_do_not_stall_the_daemon() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    let dir = tmpdir("stall");
    // Killed and reaped when dropped.
    let (_daemon, socket, http) = spawn_with_dashboard(&dir, "0.5", &[]);
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

/// One HTTP exchange: `raw` is sent as is, the whole answer (head and body) returned.
fn http_exchange(port: u16, raw: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut t = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    t.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    t.write_all(raw).unwrap();
    let mut out = Vec::new();
    let _ = t.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A strict reader of the OpenMetrics text the daemon serves: every sample belongs to a
/// family declared by `# TYPE` before it, names and labels are well formed, values parse,
/// and the text ends with `# EOF`. Returns (name, labels, value) per sample.
fn parse_openmetrics(text: &str) -> Vec<(String, String, f64)> {
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, c)| {
                c == '_' || c == ':' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())
            })
    };
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.last(),
        Some(&"# EOF"),
        "the exposition ends with # EOF"
    );
    let mut families: Vec<(String, String)> = Vec::new();
    let mut samples = Vec::new();
    for line in &lines[..lines.len() - 1] {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut w = rest.splitn(3, ' ');
            let (kind, name) = (w.next().unwrap(), w.next().unwrap_or(""));
            assert!(valid_name(name), "bad family name in {line:?}");
            match kind {
                "TYPE" => families.push((name.to_string(), w.next().unwrap_or("").to_string())),
                "HELP" | "UNIT" => {}
                _ => panic!("unknown comment {line:?}"),
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let (name, labels) = match series.find('{') {
            Some(i) => {
                assert!(series.ends_with('}'), "unclosed labels in {line:?}");
                let labels = &series[i + 1..series.len() - 1];
                for pair in labels.split(',') {
                    let (k, v) = pair
                        .split_once('=')
                        .unwrap_or_else(|| panic!("bad label in {line:?}"));
                    assert!(valid_name(k), "bad label name in {line:?}");
                    assert!(
                        v.len() >= 2 && v.starts_with('"') && v.ends_with('"'),
                        "bad label value in {line:?}"
                    );
                }
                (&series[..i], labels)
            }
            None => (series, ""),
        };
        assert!(valid_name(name), "bad metric name in {line:?}");
        let family = families
            .last()
            .unwrap_or_else(|| panic!("{line:?} before any # TYPE"));
        let suffixes = [
            "", "_total", "_bucket", "_count", "_sum", "_created", "_info",
        ];
        assert!(
            suffixes.iter().any(|s| *name == format!("{}{s}", family.0)),
            "{name} outside its family {}",
            family.0
        );
        samples.push((name.to_string(), labels.to_string(), value));
    }
    samples
}

#[test]
fn http_serves_metrics_that_agree_with_the_status_and_refuses_bad_requests() {
    let dir = tmpdir("metrics");
    let (_daemon, socket, http) = spawn_with_dashboard(&dir, "2.5", &["--interval-ms", "100"]);
    wait_for("a layer step ran", Duration::from_secs(10), || {
        status_json(&socket).is_some_and(|j| {
            let v: serde_json::Value = serde_json::from_str(&j).unwrap();
            v["counters"]["layer_steps"].as_u64() > Some(0)
        })
    });
    let answer = http_exchange(http, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.contains("application/openmetrics-text"), "{head}");
    let samples = parse_openmetrics(body);
    let value = |name: &str, labels: &str| {
        samples
            .iter()
            .find(|s| s.0 == name && s.1 == labels)
            .map(|s| s.2)
            .unwrap_or_else(|| panic!("no {name}{{{labels}}} in {body}"))
    };
    let status: serde_json::Value = serde_json::from_str(&status_json(&socket).unwrap()).unwrap();
    assert_eq!(value("shivya_peers", ""), 0.0);
    assert_eq!(
        value("shivya_records", ""),
        status["records"].as_f64().unwrap()
    );
    // This daemon's own load is the merged load at its vertex (port % 3), 2.5.
    let vertex = status["vertex"].as_u64().unwrap();
    assert_eq!(
        value("shivya_backend_load", &format!("backend=\"{vertex}\"")),
        2.5
    );
    for b in 0..3 {
        let w = value("shivya_backend_weight", &format!("backend=\"{b}\""));
        assert!(w.is_finite() && w >= 0.0);
        assert_eq!(
            value("shivya_backend_in_flight", &format!("backend=\"{b}\"")),
            0.0
        );
    }
    assert_eq!(
        value("shivya_dropped_frames_total", "reason=\"bad_magic\""),
        0.0
    );
    assert!(value("shivya_layer_steps_total", "") >= 1.0);
    assert!(value("shivya_layer_step_seconds_count", "") >= 1.0);
    assert!(samples
        .iter()
        .any(|s| s.0 == "shivya_record_age_max_seconds"));
    // The status socket answers the same exposition.
    {
        let text = socket_command(&socket, "metrics");
        let again = parse_openmetrics(text.trim_end());
        assert!(
            again.iter().any(|s| s.0 == "shivya_backend_weight"),
            "{text}"
        );
    }

    // HEAD: the head alone. Other methods, garbage and oversized heads: an error answer.
    let head_only = http_exchange(http, b"HEAD /status.json HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        head_only.starts_with("HTTP/1.1 200 OK") && head_only.ends_with("\r\n\r\n"),
        "{head_only}"
    );
    let post = http_exchange(http, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    let garbage = http_exchange(http, b"\x00\x01 not http at all\r\n\r\n");
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage}");
    let mut huge = b"GET / HTTP/1.1\r\nX: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 9000));
    let big = http_exchange(http, &huge);
    assert!(
        big.starts_with("HTTP/1.1 400"),
        "{}",
        &big[..big.len().min(80)]
    );
    let missing = http_exchange(http, b"GET /nothing HTTP/1.1\r\n\r\n");
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    // And the daemon still serves.
    assert!(status_json(&socket).is_some());

    // The README's operator tables name exactly what the daemon serves: every metric
    // family (counters as their `_total` samples) and every status field.
    let families: std::collections::BTreeSet<String> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let mut w = l.split(' ');
            let (name, kind) = (w.next().unwrap(), w.next().unwrap());
            if kind == "counter" {
                format!("{name}_total")
            } else {
                name.to_string()
            }
        })
        .collect();
    assert_eq!(
        readme_table("shivyad-metrics"),
        families,
        "README metrics table"
    );
    let fields: std::collections::BTreeSet<String> =
        status.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        readme_table("shivyad-status"),
        fields,
        "README status table"
    );
}

/// First-column names (every `backticked` token) of the README table marked
/// `<!-- operators:TAG -->`.
fn readme_table(tag: &str) -> std::collections::BTreeSet<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let start = readme
        .find(&format!("<!-- operators:{tag} -->"))
        .unwrap_or_else(|| panic!("no README table {tag}"));
    let end = start + readme[start..].find("<!-- /operators -->").unwrap();
    let mut names = std::collections::BTreeSet::new();
    for line in readme[start..end].lines().filter(|l| l.starts_with("| `")) {
        let first = line.split('|').nth(1).unwrap();
        names.extend(first.split('`').skip(1).step_by(2).map(str::to_string));
    }
    assert!(!names.is_empty(), "README table {tag} is empty");
    names
}

#[test]
fn every_signal_in_the_readme_stops_the_daemon_in_order() {
    let names = readme_table("shivyad-signals");
    assert_eq!(
        names,
        ["SIGINT", "SIGTERM"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    let dir = tmpdir("signals");
    for (i, name) in names.iter().enumerate() {
        let sig = match name.as_str() {
            "SIGINT" => libc::SIGINT,
            _ => libc::SIGTERM,
        };
        let d = spawn(&dir, i, free_udp_port(), 0, 1.0, None);
        wait_for("daemon up", Duration::from_secs(10), || {
            status_json(&d.socket).is_some()
        });
        let mut d = d;
        // SAFETY: a signal to a child process we started.
        unsafe { libc::kill(d.child.id() as i32, sig) };
        let code = d.child.wait().unwrap();
        assert!(code.success(), "{name}: exit status {code:?}");
        assert!(!d.socket.exists(), "{name}: socket file removed");
        assert!(!d.pid_file.exists(), "{name}: PID file removed");
    }
}

fn socket_command(socket: &Path, line: &str) -> String {
    use std::io::{Read, Write};
    let mut u = std::os::unix::net::UnixStream::connect(socket).unwrap();
    u.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut text = String::new();
    u.read_to_string(&mut text).unwrap();
    text
}

fn sighup(pid: u32) {
    // SAFETY: sending a signal to a child process we started.
    unsafe { libc::kill(pid as i32, libc::SIGHUP) };
}

#[test]
fn signed_encrypted_daemons_admit_each_other_and_rotate_keys_on_sighup() {
    let dir = tmpdir("trust");
    let ports: Vec<u16> = (0..3).map(|_| free_udp_port()).collect();
    let k = |b: u8| format!("{b:02x}").repeat(32);
    let ring = dir.join("ring");
    std::fs::write(&ring, format!("1 {}\n", k(0x11))).unwrap();
    // Each daemon's identity file is created on first start; its public key is in the
    // status. The first two admit each other; the third is signed but not admitted.
    let start = |i: usize, admit: &[String], peer: Option<u16>| -> Daemon {
        let socket = dir.join(format!("t{i}.sock"));
        let mut cmd = Command::new(BIN);
        cmd.args(["--port", &ports[i].to_string(), "--vertices", "3"])
            .args([
                "--vertex",
                &i.to_string(),
                "--load",
                "1",
                "--interval-ms",
                "100",
            ])
            .args(["--log-level", "warn", "--no-host-load"])
            .arg("--socket")
            .arg(&socket)
            .arg("--identity-file")
            .arg(dir.join(format!("id{i}")))
            .arg("--keyring-file")
            .arg(&ring)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for a in admit {
            cmd.args(["--admit-key", a]);
        }
        if let Some(p) = peer {
            cmd.args(["--peer", &format!("127.0.0.1:{p}")]);
        }
        Daemon {
            child: cmd.spawn().unwrap(),
            pid_file: dir.join(format!("t{i}.pid")),
            socket,
        }
    };
    let key_of = |d: &Daemon| -> String {
        let mut key = None;
        wait_for(
            "a status with a public key",
            Duration::from_secs(10),
            || {
                key = status_json(&d.socket)
                    .and_then(|j| field(&j, "public_key"))
                    .map(|k| k.trim_matches('"').to_string());
                key.as_ref().is_some_and(|k| k.len() == 64)
            },
        );
        key.unwrap_or_default()
    };
    // First runs only create the identities.
    let keys: Vec<String> = (0..3)
        .map(|i| {
            let mut d = start(i, &[], None);
            let key = key_of(&d);
            sigterm(d.child.id());
            let _ = d.child.wait();
            key
        })
        .collect();
    let both = vec![keys[0].clone(), keys[1].clone()];
    let d0 = start(0, &both, None);
    wait_for("socket 0", Duration::from_secs(10), || d0.socket.exists());
    let d1 = start(1, &both, Some(ports[0]));
    let d2 = start(2, &[], Some(ports[0]));
    assert_eq!(key_of(&d0), keys[0], "the identity file keeps the key");
    let s0 = status_json(&d0.socket).unwrap();
    assert_eq!(
        field(&s0, "protection").as_deref(),
        Some("\"encrypted + signed + allowlist\"")
    );
    let view = |d: &Daemon| status_json(&d.socket).and_then(|j| field(&j, "view"));
    let records = |d: &Daemon| status_json(&d.socket).and_then(|j| field(&j, "records"));
    for (i, v) in [(1, "4.5"), (0, "2.5")] {
        let d = [&d0, &d1][i];
        assert!(socket_command(&d.socket, &format!("write {i} {v}")).contains("ok"));
    }
    wait_for(
        "the admitted pair shares one view of two records",
        Duration::from_secs(15),
        || records(&d0).as_deref() == Some("2") && view(&d0) == view(&d1) && view(&d0).is_some(),
    );
    // Rotation while running: both keys (old primary), then the new one primary, then
    // the new one alone, each followed by SIGHUP to every daemon.
    for (text, ids, primary) in [
        (
            format!("1 {} primary\n2 {}\n", k(0x11), k(0x22)),
            "[1,2]",
            "1",
        ),
        (
            format!("1 {}\n2 {} primary\n", k(0x11), k(0x22)),
            "[1,2]",
            "2",
        ),
        (format!("2 {}\n", k(0x22)), "[2]", "2"),
    ] {
        std::fs::write(&ring, text).unwrap();
        for d in [&d0, &d1, &d2] {
            sighup(d.child.id());
        }
        for d in [&d0, &d1, &d2] {
            wait_for("the keyring reloaded", Duration::from_secs(10), || {
                status_json(&d.socket).is_some_and(|j| {
                    field(&j, "keyring_ids").as_deref() == Some(ids)
                        && field(&j, "keyring_primary").as_deref() == Some(primary)
                })
            });
        }
    }
    assert!(socket_command(&d1.socket, "write 1 7.25").contains("ok"));
    wait_for(
        "a write after the rotation reaches the other",
        Duration::from_secs(15),
        || {
            status_json(&d0.socket)
                .and_then(|j| field(&j, "queue"))
                .is_some_and(|q| q.contains("7.25"))
        },
    );
    // The signed but unlisted daemon is never counted by the pair.
    assert_eq!(records(&d0).as_deref(), Some("2"));
    assert_eq!(records(&d1).as_deref(), Some("2"));
    let metrics = socket_command(&d0.socket, "metrics");
    let not_admitted = parse_openmetrics(metrics.trim_end())
        .into_iter()
        .find(|(name, labels, _)| {
            name == "shivya_dropped_frames_total" && labels.contains("not_admitted")
        })
        .map(|s| s.2);
    assert!(not_admitted.is_some_and(|n| n > 0.0), "{metrics}");
    // A keyring file that became unreadable is refused; the keys in use stay.
    std::fs::write(&ring, "garbage\n").unwrap();
    sighup(d0.child.id());
    assert!(socket_command(&d0.socket, "write 0 3.5").contains("ok"));
    wait_for(
        "writes still flow after a bad reload",
        Duration::from_secs(15),
        || {
            status_json(&d1.socket)
                .and_then(|j| field(&j, "queue"))
                .is_some_and(|q| q.contains("3.5"))
        },
    );
    let s0 = status_json(&d0.socket).unwrap();
    assert_eq!(field(&s0, "keyring_ids").as_deref(), Some("[2]"));
    drop(d2);
}
