//! `shivya-demo`: the README's main job. Several balancers embedding Shivya against the
//! local policies a user would pick instead, side by side on one open-loop load; a live
//! terminal view, then a table and a chart (see `shivya_bench::demo`).

use clap::Parser;
use shivya_bench::demo::{run, DemoConfig};
use std::io::IsTerminal;
use std::path::PathBuf;

/// Shivya against least-requests, random-two least-requests and round-robin, live.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Length of the load in seconds (the default run takes about a minute).
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Balancers, each embedding a Shivya node.
    #[arg(long, default_value_t = 8)]
    balancers: usize,
    /// Backends (backend 0 is slow, backend 1 turns slow half-way).
    #[arg(long, default_value_t = 6)]
    backends: usize,
    /// Requests a backend serves at once.
    #[arg(long, default_value_t = 4)]
    slots: usize,
    /// Mean service time of a healthy backend, in ms.
    #[arg(long, default_value_t = 20.0)]
    service_ms: f64,
    /// How much slower the slow backends serve.
    #[arg(long, default_value_t = 5.0)]
    slowdown: f64,
    /// Offered load as a fraction of the configured capacity.
    #[arg(long, default_value_t = 0.6)]
    load: f64,
    /// Seed of arrivals, job sizes and random choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// No live view: a progress line every 5 s (the default when stdout is not a terminal).
    #[arg(long, conflicts_with = "live")]
    plain: bool,
    /// The live view even when stdout is not a terminal.
    #[arg(long)]
    live: bool,
    /// Where the table (demo.csv, demo.md) and the chart (demo.svg) go
    /// (default: $CARGO_TARGET_DIR/demo, or target/demo).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() {
    let a = Args::parse();
    let out = a.out.clone().unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| PathBuf::from("target"), PathBuf::from)
            .join("demo")
    });
    let cfg = DemoConfig {
        seconds: a.seconds,
        balancers: a.balancers,
        backends: a.backends,
        slots: a.slots,
        service_ms: a.service_ms,
        slowdown: a.slowdown,
        load: a.load,
        seed: a.seed,
        live: a.live || (!a.plain && std::io::stdout().is_terminal()),
    };
    if let Err(e) = cfg
        .check()
        .and_then(|()| std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display())))
    {
        eprintln!("shivya-demo: {e}");
        std::process::exit(2);
    }
    let result = match run(&cfg, &mut std::io::stdout()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("shivya-demo: {e}");
            std::process::exit(1);
        }
    };
    println!("\n{}", result.table.markdown());
    println!(
        "(requests arriving in the first {:.1} s are warm-up and not counted; the Shivya nodes sent {:.0} frames/s each)",
        cfg.seconds as f64 / 10.0,
        result.frames_per_node_s
    );
    let files = [
        ("demo.csv", result.table.csv()),
        ("demo.md", result.table.markdown()),
        ("demo.svg", result.chart.clone()),
    ];
    for (name, body) in files {
        let p = out.join(name);
        if let Err(e) = std::fs::write(&p, body) {
            eprintln!("shivya-demo: {}: {e}", p.display());
            std::process::exit(1);
        }
    }
    println!("chart: {}", out.join("demo.svg").display());
}
