//! `shivyad`: the Shivya edge daemon. An embedder of shivya-core like any other: it samples
//! the host, steps the stack on a fixed interval, and shows the mesh to a person through a
//! Unix status socket and a live WebSocket dashboard. One thread, one mio poll loop.

mod clients;
mod metrics;
mod server;
mod state_file;
mod status;
mod sys;
mod trust;

use clap::{Args, Parser, Subcommand};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "shivyad", version, about = "The Shivya edge daemon")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Ask a running daemon for its status over its Unix socket.
    Status {
        /// The daemon's status socket.
        #[arg(long, default_value = "/tmp/shivya.sock")]
        socket: PathBuf,
        /// Print the raw JSON snapshot instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Options of the daemon itself.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// UDP port of the mesh listener (1-65535).
    #[arg(long, default_value_t = 8085, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// Address to bind the mesh listener to.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// A peer to bootstrap through (repeatable): PING, then FIND_NODE(self).
    #[arg(long = "peer", value_name = "ADDR:PORT")]
    pub peers: Vec<SocketAddr>,
    /// Serve the live dashboard (HTTP + WebSocket) on 127.0.0.1:<ws-port>.
    #[arg(long)]
    pub visualize: bool,
    /// Dashboard port.
    #[arg(long, default_value_t = 9002, value_parser = clap::value_parser!(u16).range(1..))]
    pub ws_port: u16,
    /// Detach: fork and setsid before anything else starts (unix).
    #[arg(long)]
    pub daemon: bool,
    /// PID file (always written with --daemon; otherwise only when given).
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Where a detached daemon's stdout goes.
    #[arg(long, default_value = "/tmp/shivya.out")]
    pub stdout: PathBuf,
    /// Where a detached daemon's stderr goes.
    #[arg(long, default_value = "/tmp/shivya.err")]
    pub stderr: PathBuf,
    /// Unix socket for `shivyad status`.
    #[arg(long, default_value = "/tmp/shivya.sock")]
    pub socket: PathBuf,
    /// Period of host sampling and of the dashboard feed, in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..))]
    pub interval_ms: u64,
    /// Log level: error, warn, info, debug or trace.
    #[arg(long, default_value = "info")]
    pub log_level: tracing::Level,
    /// Vertices of the workload graph (every daemon of a mesh must agree): every pair
    /// connected up to 64, the ring with chords beyond.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(2..=4096))]
    pub vertices: u32,
    /// This daemon's vertex (default: port modulo --vertices).
    #[arg(long)]
    pub vertex: Option<u32>,
    /// Report this fixed load instead of host telemetry (demos and tests).
    #[arg(long)]
    pub load: Option<f64>,
    /// Node id seed (default: derived from the bind address and port).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Do not report the host load at this daemon's vertex (writes come only from the
    /// status socket's `write` command).
    #[arg(long)]
    pub no_host_load: bool,
    /// Keep this daemon's own record here (written before a write is acknowledged, read
    /// at start), so a restart with the same address resumes it.
    #[arg(long)]
    pub state_file: Option<PathBuf>,
    /// File holding the shared mesh key (>= 16 bytes): frames are then authenticated with
    /// HMAC-SHA-256 and unauthenticated ones dropped.
    #[arg(long)]
    pub auth_key_file: Option<PathBuf>,
    /// This daemon's Ed25519 secret key (64 hex characters; created, owner-only, when
    /// missing). Makes the mesh signed: the node id is the one the key certifies, and
    /// records count only with their origin's signature.
    #[arg(long)]
    pub identity_file: Option<PathBuf>,
    /// Admit only these public keys (64 hex characters; repeat the flag; this daemon's
    /// own key is always admitted). Needs --identity-file.
    #[arg(long = "admit-key", value_name = "HEX")]
    pub admit_keys: Vec<String>,
    /// Encrypt every datagram (XChaCha20-Poly1305) with the keys in this file, one per
    /// line: `ID HEX [primary]`. Re-read on SIGHUP, so keys rotate without a restart.
    /// Replaces --auth-key-file.
    #[arg(long)]
    pub keyring_file: Option<PathBuf>,
}

fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string()
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string()
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            eprintln!("shivyad: {}", one_line(&e).trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Some(Command::Status { socket, json }) => server::query_status(&socket, json),
        None => server::run(cli.run),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shivyad: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}
