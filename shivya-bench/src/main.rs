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
    /// Redraw the charts from the tables already in --out (cluster.csv, membership.csv)
    /// without measuring again.
    Charts,
    /// Idle traffic and the spread of one write, with the quiet mesh on and off.
    Idle,
    /// The cost of one settle as N grows: re-summing every record vs kept sums.
    Settle,
    /// Shivya and HashiCorp memberlist side by side on loopback (needs Go).
    Memberlist,
    /// The whole protocol in the simulator at 512 to 10 000 nodes (--n to choose), and
    /// the memory of one node holding N records of 64 backends.
    Scale,
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
    /// Cluster: these server counts (with --d: every pair), instead of the plan. Scale:
    /// these mesh sizes.
    #[arg(long, value_delimiter = ',')]
    n: Vec<usize>,
    /// Cluster only: these dispatcher counts.
    #[arg(long, value_delimiter = ',')]
    d: Vec<usize>,
    /// Cluster only: simulated milliseconds per run with --n/--d.
    #[arg(long, default_value_t = 20_000)]
    duration_ms: u64,
    /// Cluster only: these policies (names as in the table, comma-separated), default all.
    #[arg(long, value_delimiter = ',')]
    policy: Vec<String>,
    /// Cluster only: these scenarios (steady, equal, slowdown, flash, failure).
    #[arg(long, value_delimiter = ',')]
    scenario: Vec<String>,
    /// Cluster only: these offered loads (default 0.7 and 0.9).
    #[arg(long, value_delimiter = ',')]
    load: Vec<f64>,
    /// Cluster only: the mesh's gossip and layer period, ms.
    #[arg(long, default_value_t = 50)]
    period_ms: u64,
    /// Cluster only: candidates per Shivya pick.
    #[arg(long, default_value_t = 2)]
    choices: u32,
    /// Cluster only: seeds per setting (medians and ranges over them).
    #[arg(long, default_value_t = 5)]
    seeds: usize,
    /// Scale only: these seeds (default 11, 12, 13 up to N = 1 024 and 11 above).
    #[arg(long, value_delimiter = ',')]
    scale_seed: Vec<u64>,
    /// Scale only: log the heal period by period (missing node-origin pairs, frames sent
    /// per node by type).
    #[arg(long)]
    trace_heal: bool,
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
    // (servers, dispatchers, simulated ms) per setting; every scenario and load runs on
    // each, every policy, `seeds` seeds.
    let mut plan: Vec<(usize, usize, u64)> = if args.quick {
        vec![(8, 4, 5_000)]
    } else {
        vec![
            (8, 2, 20_000),
            (8, 8, 20_000),
            (64, 8, 10_000),
            (64, 64, 10_000),
            (512, 8, 5_000),
            (512, 64, 5_000),
        ]
    };
    // The published grid (docs/PERFORMANCE.md): every setting steady at both loads, the
    // other scenarios at 90 % for 8 x 8 and 64 x 64 (about 25 minutes on 2 cores).
    let published = !args.quick
        && args.n.is_empty()
        && args.d.is_empty()
        && args.scenario.is_empty()
        && args.load.is_empty();
    let in_plan = |n: usize, d: usize, s: cluster::Scenario, load: f64| {
        !published
            || s == cluster::Scenario::Steady
            || ((n, d) == (8, 8) || (n, d) == (64, 64)) && load >= 0.9
    };
    if !args.n.is_empty() || !args.d.is_empty() {
        let ns = if args.n.is_empty() {
            vec![8]
        } else {
            args.n.clone()
        };
        let ds = if args.d.is_empty() {
            vec![8]
        } else {
            args.d.clone()
        };
        plan = ns
            .iter()
            .flat_map(|&n| ds.iter().map(move |&d| (n, d, args.duration_ms)))
            .collect();
    }
    let policies: Vec<cluster::Policy> = if args.policy.is_empty() {
        cluster::Policy::ALL.to_vec()
    } else {
        args.policy
            .iter()
            .map(|p| {
                cluster::Policy::from_name(p).ok_or_else(|| {
                    let known: Vec<&str> = cluster::Policy::ALL.iter().map(|p| p.name()).collect();
                    format!("unknown policy '{p}'; known: {}", known.join(", "))
                })
            })
            .collect::<Result<_, _>>()?
    };
    let scenarios: Vec<cluster::Scenario> = if args.scenario.is_empty() {
        if args.quick {
            vec![cluster::Scenario::Steady]
        } else {
            cluster::Scenario::ALL.to_vec()
        }
    } else {
        args.scenario
            .iter()
            .map(|s| {
                cluster::Scenario::from_name(s).ok_or_else(|| format!("unknown scenario '{s}'"))
            })
            .collect::<Result<_, _>>()?
    };
    let loads: Vec<f64> = if args.load.is_empty() {
        vec![0.7, 0.9]
    } else {
        args.load.clone()
    };
    let seeds = if args.quick { 2 } else { args.seeds.max(1) };
    let mut rows = Vec::new();
    for &(n, d, duration_ms) in &plan {
        for &scenario in &scenarios {
            for &load in &loads {
                if !in_plan(n, d, scenario, load) {
                    continue;
                }
                let cfg = cluster::ClusterConfig {
                    n,
                    dispatchers: d,
                    load,
                    scenario,
                    duration_ms,
                    period_ms: args.period_ms,
                    choices: args.choices,
                    ..cluster::ClusterConfig::default()
                };
                let t0 = Instant::now();
                // Seeds run side by side (the benchmark may use threads; the core never
                // does); within a seed the policies run one after the other.
                let per_seed: Vec<Result<Vec<cluster::ClusterResult>, String>> =
                    std::thread::scope(|sc| {
                        let handles: Vec<_> = (0..seeds)
                            .map(|k| {
                                let cfg = cluster::ClusterConfig {
                                    seed: 42 + k as u64,
                                    ..cfg
                                };
                                let policies = &policies;
                                sc.spawn(move || {
                                    policies.iter().map(|&p| cluster::run(p, &cfg)).collect()
                                })
                            })
                            .collect();
                        handles
                            .into_iter()
                            .map(|h| h.join().unwrap_or_else(|_| Err("a run panicked".into())))
                            .collect()
                    });
                let mut all = Vec::new();
                for r in per_seed {
                    all.extend(r?);
                }
                for &p in &policies {
                    let runs: Vec<_> = all.iter().filter(|r| r.policy == p).cloned().collect();
                    if let Some(s) = cluster::summarize(&runs) {
                        rows.push(s);
                    }
                }
                eprintln!(
                    "cluster: {} N={n} D={d} load={load}: {} runs in {:.1} s",
                    scenario.name(),
                    seeds * policies.len(),
                    t0.elapsed().as_secs_f64()
                );
            }
        }
    }
    emit(
        &args.out,
        "cluster",
        "Balancing policies: sojourn times in ms, medians over seeds",
        &cluster::table(&rows),
    )?;
    for load in &loads {
        let settings: Vec<(usize, usize)> = plan.iter().map(|&(n, d, _)| (n, d)).collect();
        let groups: Vec<String> = settings
            .iter()
            .map(|(n, d)| format!("N={n} D={d}"))
            .collect();
        let series: Vec<Series> = policies
            .iter()
            .map(|&p| Series {
                name: p.name().to_string(),
                values: settings
                    .iter()
                    .map(|&(n, d)| {
                        rows.iter()
                            .find(|r| {
                                r.policy == p
                                    && r.config.n == n
                                    && r.config.dispatchers == d
                                    && r.config.load == *load
                                    && r.config.scenario == scenarios[0]
                            })
                            .map_or(f64::NAN, |r| r.p99.0)
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
                &format!(
                    "p99 sojourn, {} scenario, {pct}% load (log scale)",
                    scenarios[0].name()
                ),
                "ms",
                &groups,
                &series,
                true,
            ),
        )?;
    }
    Ok(())
}

fn run_memberlist(args: &Args) -> Result<(), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("..").join("target"));
    let bin =
        shivya_bench::peer::build_memberlist(&root.join("memberlist"), &target.join("memberlist"))?;
    // The same settling pause for both before the idle window: long enough for every one
    // of Shivya's backoffs to reach its ceiling (gossip 1 s after a few seconds, the
    // Kademlia refresh 64 s after about 70 s, the orphan probes 80 s after 75 s), so the
    // window sees the steady state; a 60 s window holds about one refresh and one orphan
    // probe per node and one or two of memberlist's push/pull periods (30 s, scaled up
    // beyond 32 members).
    let (sizes, settle_s, idle_s): (&[usize], u64, u64) = if args.quick {
        (&[8], 2, 3)
    } else {
        (&[16, 64, 128], 90, 60)
    };
    let mut rows = Vec::new();
    for &n in sizes {
        let t0 = Instant::now();
        rows.push(shivya_bench::peer::shivya(n, settle_s, idle_s)?);
        // memberlist on one loopback sometimes leaves a member out of the first join (it is
        // suspected and dropped while 64 or more join at once): one retry, said on stderr.
        let row = match shivya_bench::peer::memberlist(&bin, n, settle_s, idle_s) {
            Ok(row) => row,
            Err(e) => {
                eprintln!("memberlist: N={n}: {e}; one retry");
                shivya_bench::peer::memberlist(&bin, n, settle_s, idle_s)?
            }
        };
        rows.push(row);
        eprintln!(
            "memberlist: N={n} both in {:.1} s",
            t0.elapsed().as_secs_f64()
        );
    }
    emit(
        &args.out,
        "memberlist",
        "Shivya and HashiCorp memberlist side by side (127.0.0.1, defaults)",
        &shivya_bench::peer::table(&rows),
    )
}

fn run_settle(args: &Args) -> Result<(), String> {
    let plan: &[(usize, u32)] = if args.quick {
        &[(64, 64), (512, 64)]
    } else {
        &[(64, 64), (512, 64), (4_096, 64), (10_000, 64), (512, 1_000)]
    };
    let mut rows = Vec::new();
    for &(n, b) in plan {
        let t0 = Instant::now();
        rows.push(shivya_bench::settle::measure(
            n,
            b,
            if args.quick { 5 } else { 31 },
        )?);
        eprintln!(
            "settle: N={n} backends={b} in {:.1} s",
            t0.elapsed().as_secs_f64()
        );
    }
    emit(
        &args.out,
        "settle",
        "One settle as the mesh grows (N records of B backends)",
        &shivya_bench::settle::table(&rows),
    )
}

fn run_scale(args: &Args) -> Result<(), String> {
    let sizes: Vec<usize> = if !args.n.is_empty() {
        args.n.clone()
    } else if args.quick {
        vec![64]
    } else {
        vec![512, 4_096]
    };
    let idle_s = if args.quick { 5 } else { 20 };
    let mut rows = Vec::new();
    // Three seeds where a run takes minutes, one where it takes an hour (--scale-seed
    // chooses).
    let plan: Vec<(usize, u64)> = sizes
        .iter()
        .flat_map(|&n| {
            let seeds: Vec<u64> = if !args.scale_seed.is_empty() {
                args.scale_seed.clone()
            } else if n <= 1_024 {
                vec![11, 12, 13]
            } else {
                vec![11]
            };
            seeds.into_iter().map(move |s| (n, s))
        })
        .collect();
    for (n, seed) in plan {
        let t0 = Instant::now();
        let mut log = |m: &str| {
            eprintln!(
                "scale: N={n} seed {seed}: {m} ({:.0} s)",
                t0.elapsed().as_secs_f64()
            )
        };
        rows.push(shivya_bench::scale::run(
            n,
            idle_s,
            seed,
            args.trace_heal,
            &mut log,
        )?);
        // Each run writes its row, so a long plan keeps what it measured.
        emit(
            &args.out,
            "scale",
            "The protocol at scale (simulator, virtual time)",
            &shivya_bench::scale::table(&rows),
        )?;
        emit(
            &args.out,
            "scale-idle-by-type",
            "Idle traffic by frame type, per node and second (simulator)",
            &shivya_bench::scale::by_type_table(&rows),
        )?;
    }
    let plan: &[usize] = if args.quick {
        &[512]
    } else {
        &[512, 4_096, 10_000]
    };
    let mut t = Table::new(&[
        "N balancers",
        "backends",
        "records held",
        "heap MiB per node",
    ]);
    for &n in plan {
        let (held, bytes) = shivya_bench::scale::node_memory(n, 64)?;
        t.push(vec![
            n.to_string(),
            "64".into(),
            held.to_string(),
            format!("{:.1}", bytes / 1048576.0),
        ]);
    }
    emit(
        &args.out,
        "node-memory",
        "Memory of one node holding N records of 64 backends",
        &t,
    )
}

fn run_idle(args: &Args) -> Result<(), String> {
    let sizes: &[usize] = if args.quick { &[16] } else { &[64, 128, 512] };
    let mut rows = Vec::new();
    for &n in sizes {
        for quiet in [false, true] {
            let t0 = Instant::now();
            rows.push(membership::idle(n, quiet)?);
            eprintln!(
                "idle: N={n} quiet={quiet} in {:.1} s",
                t0.elapsed().as_secs_f64()
            );
        }
    }
    emit(
        &args.out,
        "idle",
        "Idle traffic and the spread of one write (simulator)",
        &membership::idle_table(&rows),
    )
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

mod charts {
    //! The published charts, redrawn from the published tables.
    use super::write;
    use shivya_bench::report::{bars, lines, Series};
    use std::collections::BTreeSet;
    use std::path::Path;

    fn read(path: &Path) -> Result<Vec<csv::StringRecord>, String> {
        let mut r = csv::Reader::from_path(path).map_err(|e| format!("{}: {e}", path.display()))?;
        r.records()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    fn num(s: &str) -> f64 {
        s.trim().parse().unwrap_or(f64::NAN)
    }

    /// cluster-p99-90-n{N}.svg for every N of the steady scenario at 90 % load, and
    /// membership.svg, from the CSVs in `out`.
    pub fn redraw(out: &Path) -> Result<(), String> {
        let rows = read(&out.join("cluster.csv"))?;
        // Columns: scenario, D, N, load, policy, p50, p99 (median), …
        let steady: Vec<&csv::StringRecord> = rows
            .iter()
            .filter(|r| r.get(0) == Some("steady") && r.get(3) == Some("90%"))
            .collect();
        let ns: BTreeSet<usize> = steady
            .iter()
            .filter_map(|r| r.get(2)?.parse().ok())
            .collect();
        for n in ns {
            let at_n: Vec<&&csv::StringRecord> = steady
                .iter()
                .filter(|r| r.get(2).and_then(|v| v.parse().ok()) == Some(n))
                .collect();
            let ds: BTreeSet<usize> = at_n.iter().filter_map(|r| r.get(1)?.parse().ok()).collect();
            let mut policies: Vec<String> = Vec::new();
            for r in &at_n {
                let p = r.get(4).unwrap_or("").to_string();
                if !policies.contains(&p) {
                    policies.push(p);
                }
            }
            let series: Vec<Series> = policies
                .iter()
                .map(|p| Series {
                    name: p.clone(),
                    values: ds
                        .iter()
                        .map(|d| {
                            at_n.iter()
                                .find(|r| {
                                    r.get(4) == Some(p.as_str())
                                        && r.get(1).and_then(|v| v.parse().ok()) == Some(*d)
                                })
                                .map_or(f64::NAN, |r| num(r.get(6).unwrap_or("")))
                        })
                        .collect(),
                    dashed: false,
                })
                .collect();
            let groups: Vec<String> = ds.iter().map(|d| format!("D={d}")).collect();
            write(
                out,
                &format!("cluster-p99-90-n{n}.svg"),
                &bars(
                    &format!(
                        "p99 sojourn, steady scenario, 90% load, N={n} servers (ms, log scale)"
                    ),
                    "ms",
                    &groups,
                    &series,
                    true,
                ),
            )?;
        }
        let rows = read(&out.join("membership.csv"))?;
        // Columns: transport, N, …, rounds (4), …, heal rounds (worst) (8), …, SWIM (10).
        let sim: Vec<&csv::StringRecord> =
            rows.iter().filter(|r| r.get(0) == Some("sim")).collect();
        let col =
            |i: usize| -> Vec<f64> { sim.iter().map(|r| num(r.get(i).unwrap_or(""))).collect() };
        let series = vec![
            Series {
                name: "discovery (rounds)".into(),
                values: col(4),
                dashed: false,
            },
            Series {
                name: "heal (rounds, worst)".into(),
                values: col(8),
                dashed: false,
            },
            Series {
                name: "SWIM reference".into(),
                values: col(10),
                dashed: true,
            },
        ];
        write(
            out,
            "membership.svg",
            &lines(
                "Rounds to full knowledge",
                "gossip rounds",
                "nodes",
                &col(1),
                &series,
                true,
                false,
            ),
        )
    }
}

#[global_allocator]
static HEAP: shivya_bench::heap::Counting = shivya_bench::heap::Counting;

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
        What::Charts => charts::redraw(&args.out),
        What::Idle => run_idle(&args),
        What::Settle => run_settle(&args),
        What::Memberlist => run_memberlist(&args),
        What::Scale => run_scale(&args),
        What::All => run_solvers(&args)
            .and_then(|()| run_membership(&args))
            .and_then(|()| run_cluster(&args)),
    };
    if let Err(e) = r {
        eprintln!("shivya-bench: {e}");
        std::process::exit(1);
    }
}
