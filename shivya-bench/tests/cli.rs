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
