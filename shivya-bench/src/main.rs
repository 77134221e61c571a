//! `shivya-bench`: every measurement of docs/PERFORMANCE.md from one command.
//!
//! ```text
//! cargo run --release -p shivya-bench -- all          # tables on stdout, CSV + SVG in docs/bench
//! cargo run --release -p shivya-bench -- cluster --quick
//! ```

use clap::{Parser, ValueEnum};
use shivya_bench::report::{bars, lines, Series, Table};
use shivya_bench::{cluster, complexes::Family, membership, solvers};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum What {
    /// Everything below.
    All,
    /// Hodge solver comparison on random 2-complexes.
    Solvers,
    /// Balancing policies in a simulated cluster.
    Cluster,
    /// Discovery and heal times, simulator and real UDP.
    Membership,
}

/// Reproducible measurements of the Shivya mesh.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Which measurement.
    #[arg(value_enum, default_value = "all")]
    what: What,
    /// Small sizes and short runs (seconds, for CI); the published numbers use the default.
    #[arg(long)]
    quick: bool,
    /// Cluster only: Shivya's weight horizon in gossip periods (0 = ⌈log₂ N⌉).
    #[arg(long, default_value_t = 0.0)]
    horizon_rounds: f64,
    /// Cluster only: these server counts instead of 8, 64, 512.
    #[arg(long, value_delimiter = ',')]
    n: Vec<usize>,
    /// Cluster only: these policies (names as in the table, comma-separated), default all.
    #[arg(long, value_delimiter = ',')]
    policy: Vec<String>,
    /// Where CSV and SVG files go.
    #[arg(long, default_value = "docs/bench")]
    out: PathBuf,
}

fn write(out: &Path, name: &str, body: &str) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let p = out.join(name);
    std::fs::write(&p, body).map_err(|e| format!("{}: {e}", p.display()))?;
    eprintln!("wrote {}", p.display());
    Ok(())
}

fn emit(out: &Path, name: &str, title: &str, t: &Table) -> Result<(), String> {
    println!("\n### {title}\n\n{}", t.markdown());
    let p = out.join(format!("{name}.csv"));
    t.write_csv(&p)
        .map_err(|e| format!("{}: {e}", p.display()))?;
    eprintln!("wrote {}", p.display());
    Ok(())
}

fn run_solvers(args: &Args) -> Result<(), String> {
    let sizes: &[usize] = if args.quick {
        &[1_000, 10_000]
    } else {
        &[1_000, 10_000, 100_000, 1_000_000]
    };
    let mut rows = Vec::new();
    for family in [Family::Lattice, Family::Geometric] {
        for &size in sizes {
            let repeats = if size >= 1_000_000 { 3 } else { 5 };
            let t0 = Instant::now();
            rows.extend(solvers::compare(family, size, repeats)?);
            eprintln!(
                "solvers: {} {size} in {:.1} s",
                family.name(),
                t0.elapsed().as_secs_f64()
            );
        }
    }
    emit(
        &args.out,
        "solvers",
        "Solver comparison (L2 β = d1 x to ‖r‖/‖b‖ ≤ 1e-8)",
        &solvers::table(&rows),
    )
}

fn run_cluster(args: &Args) -> Result<(), String> {
    let mut plan: Vec<(usize, u64)> = if args.quick {
        vec![(8, 10_000)]
    } else {
        vec![(8, 120_000), (64, 30_000), (512, 10_000)]
    };
    if !args.n.is_empty() {
        plan = args
            .n
            .iter()
            .map(|&n| (n, plan.iter().find(|p| p.0 == n).map_or(30_000, |p| p.1)))
            .collect();
    }
    let policies: Vec<cluster::Policy> = cluster::Policy::ALL
        .into_iter()
        .filter(|p| {
            args.policy.is_empty() || args.policy.iter().any(|q| p.name().starts_with(q.as_str()))
        })
        .collect();
    let mut results = Vec::new();
    for &(n, duration_ms) in &plan {
        for load in [0.7, 0.9] {
            let cfg = cluster::ClusterConfig {
                n,
                load,
                duration_ms,
                period_ms: 50,
                base_rate: 100.0,
                seed: 42,
                horizon_rounds: args.horizon_rounds,
            };
            for &p in &policies {
                let t0 = Instant::now();
                let r = cluster::run(p, &cfg)?;
                eprintln!(
                    "cluster: N={n} load={load} {:<22} p99 {:>9.1} ms  ({:.1} s)",
                    p.name(),
                    r.p99_ms,
                    t0.elapsed().as_secs_f64()
                );
                results.push(r);
            }
        }
    }
    emit(
        &args.out,
        "cluster",
        "Balancing policies (sojourn times in ms)",
        &cluster::table(&results),
    )?;
    for load in [0.7, 0.9] {
        let groups: Vec<String> = plan.iter().map(|(n, _)| format!("N = {n}")).collect();
        let series: Vec<Series> = cluster::Policy::ALL
            .iter()
            .map(|&p| Series {
                name: p.name().to_string(),
                values: plan
                    .iter()
                    .map(|&(n, _)| {
                        results
                            .iter()
                            .find(|r| r.policy == p && r.n == n && r.load == load)
                            .map_or(f64::NAN, |r| r.p99_ms)
                    })
                    .collect(),
                dashed: false,
            })
            .collect();
        let pct = (load * 100.0).round();
        write(
            &args.out,
            &format!("cluster-p99-{pct}.svg"),
            &bars(
                &format!("p99 sojourn at {pct}% load (log scale)"),
                "ms",
                &groups,
                &series,
                true,
            ),
        )?;
    }
    Ok(())
}

fn run_membership(args: &Args) -> Result<(), String> {
    let sizes: &[usize] = if args.quick { &[7, 64] } else { &[7, 64, 512] };
    let mut rows = Vec::new();
    for &n in sizes {
        let t0 = Instant::now();
        rows.push(membership::simulate(n)?);
        eprintln!(
            "membership: sim N={n} in {:.1} s",
            t0.elapsed().as_secs_f64()
        );
    }
    rows.push(membership::real_udp(7)?);
    emit(
        &args.out,
        "membership",
        "Membership: discovery and heal",
        &membership::table(&rows),
    )?;
    let sim: Vec<&membership::MembershipRow> =
        rows.iter().filter(|r| r.transport == "sim").collect();
    let xs: Vec<f64> = sim.iter().map(|r| r.n as f64).collect();
    let series = vec![
        Series {
            name: "discovery (rounds)".into(),
            values: sim.iter().map(|r| r.discovery_rounds).collect(),
            dashed: false,
        },
        Series {
            name: "heal (rounds)".into(),
            values: sim.iter().map(|r| r.heal_rounds).collect(),
            dashed: false,
        },
        Series {
            name: "SWIM reference".into(),
            values: sim.iter().map(|r| r.swim_rounds).collect(),
            dashed: true,
        },
    ];
    write(
        &args.out,
        "membership.svg",
        &lines(
            "Rounds to full knowledge",
            "gossip rounds",
            "nodes",
            &xs,
            &series,
            true,
            false,
        ),
    )
}

fn main() {
    let args = Args::parse();
    // Fail before measuring, not after, when the results cannot be written.
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        eprintln!("shivya-bench: {}: {e}", args.out.display());
        std::process::exit(1);
    }
    let r = match args.what {
        What::Solvers => run_solvers(&args),
        What::Cluster => run_cluster(&args),
        What::Membership => run_membership(&args),
        What::All => run_solvers(&args)
            .and_then(|()| run_membership(&args))
            .and_then(|()| run_cluster(&args)),
    };
    if let Err(e) = r {
        eprintln!("shivya-bench: {e}");
        std::process::exit(1);
    }
}
