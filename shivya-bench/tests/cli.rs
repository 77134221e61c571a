//! The `shivya-bench` command: a quick run writes its table and files; bad arguments and
//! an unwritable output directory are clear errors with a non-zero exit.

use std::process::Command;

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_shivya-bench"))
}

#[test]
fn quick_solver_run_prints_a_table_and_writes_csv() {
    let dir = std::env::temp_dir().join(format!("shivya-bench-cli-{}", std::process::id()));
    let out = bench()
        .args(["solvers", "--quick", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("| lattice | 998 |"), "{stdout}");
    let csv = std::fs::read_to_string(dir.join("solvers.csv")).unwrap();
    // Header plus 2 families × 2 sizes × 4 methods.
    assert_eq!(csv.lines().count(), 1 + 16, "{csv}");
    assert!(csv.lines().skip(1).all(|l| !l.contains("NaN")), "{csv}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_arguments_are_refused() {
    let out = bench().arg("everything").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value"));
    let out = bench().args(["cluster", "--n", "eight"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    // Parsed but meaningless: an error message, not a panic.
    // The output directory is made before measuring: keep it out of the source tree.
    let dir = std::env::temp_dir().join(format!("shivya-bench-bad-{}", std::process::id()));
    for bad in [["--n", "0"], ["--load", "NaN"], ["--policy", "magic"]] {
        let out = bench()
            .arg("cluster")
            .args(bad)
            .arg("--out")
            .arg(&dir)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{bad:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("shivya-bench:") && !err.contains("panicked"),
            "{err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unwritable_output_directory_is_an_error_not_a_panic() {
    let file = std::env::temp_dir().join(format!("shivya-bench-file-{}", std::process::id()));
    std::fs::write(&file, b"not a directory").unwrap();
    let out = bench()
        .args(["membership", "--quick", "--out"])
        .arg(file.join("sub"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("shivya-bench:") || err.contains("\nshivya-bench:"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn charts_are_redrawn_from_the_published_tables() {
    let dir = std::env::temp_dir().join(format!("shivya-bench-charts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/bench");
    for f in ["cluster.csv", "membership.csv"] {
        std::fs::copy(docs.join(f), dir.join(f)).unwrap();
    }
    let out = bench()
        .args(["charts", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for n in [8, 64, 512] {
        let svg = std::fs::read_to_string(dir.join(format!("cluster-p99-90-n{n}.svg"))).unwrap();
        assert!(
            svg.contains(&format!("N={n} servers")) && svg.contains("shivya"),
            "{n}"
        );
        assert!(!svg.contains("chart failed"));
        // The committed chart is what the committed table draws.
        assert_eq!(
            svg,
            std::fs::read_to_string(docs.join(format!("cluster-p99-90-n{n}.svg"))).unwrap(),
            "docs/bench/cluster-p99-90-n{n}.svg is stale: run `shivya-bench charts --out docs/bench`"
        );
    }
    let m = std::fs::read_to_string(dir.join("membership.svg")).unwrap();
    assert!(m.contains("SWIM reference"));
    // Without the tables: a clear error, no panic.
    std::fs::remove_file(dir.join("cluster.csv")).unwrap();
    let out = bench()
        .args(["charts", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cluster.csv"));
    std::fs::remove_dir_all(&dir).unwrap();
}

fn demo() -> Command {
    Command::new(env!("CARGO_BIN_EXE_shivya-demo"))
}

#[test]
fn the_demo_draws_its_live_view_then_a_table_and_a_chart() {
    let dir = std::env::temp_dir().join(format!("shivya-demo-{}", std::process::id()));
    let out = demo()
        .args(["--seconds", "6", "--live", "--balancers", "4", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The live view: redrawn (cleared) several times, with every policy and backend.
    assert!(stdout.matches("\x1b[H\x1b[2J").count() >= 5, "{stdout}");
    assert!(stdout.contains("requests sent to each backend"), "{stdout}");
    assert!(
        stdout.contains("holds the records of 4 of 4 balancers"),
        "{stdout}"
    );
    let csv = std::fs::read_to_string(dir.join("demo.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let names: Vec<&str> = rows.iter().map(|r| r[0]).collect();
    assert_eq!(
        names,
        [
            "shivya",
            "least-requests",
            "random-two least-req",
            "round-robin"
        ]
    );
    // Every policy saw the same arrivals.
    let total = |r: &Vec<&str>| r[1].parse::<u64>().unwrap() + r[2].parse::<u64>().unwrap();
    assert!(
        rows.iter()
            .all(|r| total(r) == total(&rows[0]) && total(r) > 1_000),
        "{csv}"
    );
    // Behaviour, not speed: Shivya sends fewer requests to the slow backends than
    // round-robin, which cannot see them (a sixth of the traffic to backend 0 alone).
    let share = |r: &Vec<&str>| r[7].trim_end_matches('%').parse::<f64>().unwrap();
    assert!(share(&rows[0]) < share(&rows[3]) / 2.0, "{csv}");
    let svg = std::fs::read_to_string(dir.join("demo.svg")).unwrap();
    assert!(svg.contains("p99 latency per") && svg.contains("round-robin"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_demo_refuses_bad_settings() {
    for args in [
        &["--seconds", "0"][..],
        &["--backends", "2"],
        &["--load", "NaN"],
        &["--load", "0"],
        &["--service-ms", "0.001"],
        &["--slowdown", "inf"],
        &["--balancers", "100000"],
        &["--plain", "--live"],
    ] {
        let out = demo().args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("panicked") && !err.trim().is_empty(),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn the_idle_run_measures_the_quiet_mesh_against_no_backoff() {
    let dir = std::env::temp_dir().join(format!("shivya-bench-idle-{}", std::process::id()));
    let out = bench()
        .args(["idle", "--quick", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = std::fs::read_to_string(dir.join("idle.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 2, "{csv}");
    let bytes = |r: &Vec<&str>| r[3].parse::<f64>().unwrap();
    assert_eq!((rows[0][1], rows[1][1]), ("off", "quiet"));
    // Behaviour, not a speed target: the quiet mesh sends fewer idle bytes, and the write
    // still reaches every node.
    assert!(bytes(&rows[1]) < bytes(&rows[0]) / 2.0, "{csv}");
    assert!(rows.iter().all(|r| r[4].parse::<f64>().unwrap() < 60_000.0));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_settle_run_compares_kept_sums_with_re_summing() {
    let dir = std::env::temp_dir().join(format!("shivya-bench-settle-{}", std::process::id()));
    let out = bench()
        .args(["settle", "--quick", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The run itself checks that kept and re-summed sums settle to the same flow; here the
    // table has its rows and every time is a positive number (speed is for the benchmark).
    let csv = std::fs::read_to_string(dir.join("settle.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 2, "{csv}");
    for r in &rows {
        assert!(
            r[2].parse::<f64>().unwrap() > 0.0 && r[3].parse::<f64>().unwrap() > 0.0,
            "{csv}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
