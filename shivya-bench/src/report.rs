//! Tables (Markdown on stdout, CSV on disk) and small SVG charts, made without any
//! plotting dependency.

use std::fmt::Write as _;
use std::path::Path;

/// A table of strings with a header.
#[derive(Debug, Clone, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these columns.
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row (as many cells as columns).
    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// Rows so far.
    pub fn rows(&self) -> &[Vec<String>] {
        &self.rows
    }

    /// GitHub-flavoured Markdown.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "| {} |", self.header.join(" | "));
        let _ = writeln!(
            s,
            "|{}",
            self.header.iter().map(|_| "---|").collect::<String>()
        );
        for r in &self.rows {
            let _ = writeln!(s, "| {} |", r.join(" | "));
        }
        s
    }

    /// RFC 4180 CSV.
    pub fn csv(&self) -> String {
        let cell = |c: &String| {
            if c.contains([',', '"', '\n']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                c.clone()
            }
        };
        let mut s = String::new();
        for r in std::iter::once(&self.header).chain(&self.rows) {
            let _ = writeln!(s, "{}", r.iter().map(cell).collect::<Vec<_>>().join(","));
        }
        s
    }

    /// Writes the CSV to `path` (creating its directory).
    pub fn write_csv(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, self.csv())
    }
}

/// One named series of values.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// Values, one per group (bars) or per x (lines); non-finite values are not drawn.
    pub values: Vec<f64>,
    /// Dashed line (used for reference curves).
    pub dashed: bool,
}

const COLORS: [&str; 8] = [
    "#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c",
];
const W: f64 = 760.0;
const H: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
}

impl Axis {
    fn fit(values: impl Iterator<Item = f64>, log: bool) -> Axis {
        let vals: Vec<f64> = values
            .filter(|v| v.is_finite() && (!log || *v > 0.0))
            .collect();
        let (mut lo, mut hi) = vals
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        if !lo.is_finite() {
            (lo, hi) = (1.0, 10.0);
        }
        if log {
            lo = 10f64.powf(lo.log10().floor());
            hi = 10f64.powf(hi.log10().ceil());
            if hi <= lo {
                hi = lo * 10.0;
            }
        } else {
            lo = lo.min(0.0);
            if hi <= lo {
                hi = lo + 1.0;
            }
            // Five ticks on a 1-2-5 step.
            let raw = (hi - lo) / 5.0;
            let mag = 10f64.powf(raw.log10().floor());
            let step = [1.0, 2.0, 5.0, 10.0]
                .iter()
                .map(|m| m * mag)
                .find(|s| *s >= raw)
                .unwrap_or(10.0 * mag);
            hi = lo + (((hi - lo) / step).ceil()).max(1.0) * step;
        }
        Axis { lo, hi, log }
    }

    /// 0 at `lo`, 1 at `hi`.
    fn frac(&self, v: f64) -> f64 {
        if self.log {
            (v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        }
    }

    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let mut t = Vec::new();
            let mut v = self.lo;
            while v <= self.hi * 1.0001 {
                t.push(v);
                v *= 10.0;
            }
            t
        } else {
            let raw = (self.hi - self.lo) / 5.0;
            let mag = 10f64.powf(raw.log10().floor());
            let step = [1.0, 2.0, 5.0, 10.0]
                .iter()
                .map(|m| m * mag)
                .find(|s| *s >= raw * 0.999)
                .unwrap_or(10.0 * mag);
            let n = ((self.hi - self.lo) / step).round() as usize;
            (0..=n).map(|i| self.lo + step * i as f64).collect()
        }
    }
}

fn tick_label(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e4 || v.abs() < 1e-2) {
        format!("{v:.0e}")
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn frame(title: &str, y_label: &str, x_label: &str, y: &Axis) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        escape(title)
    );
    let (x0, x1, y0, y1) = (LEFT, W - RIGHT, TOP, H - BOTTOM);
    for t in y.ticks() {
        let py = y1 - y.frac(t) * (y1 - y0);
        let _ = write!(
            s,
            r##"<line x1="{x0}" x2="{x1}" y1="{py:.1}" y2="{py:.1}" stroke="#e0e0e0"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            x0 - 6.0,
            py + 4.0,
            tick_label(t)
        );
    }
    let _ = write!(
        s,
        r#"<line x1="{x0}" x2="{x0}" y1="{y0}" y2="{y1}" stroke="black"/><line x1="{x0}" x2="{x1}" y1="{y1}" y2="{y1}" stroke="black"/><text transform="translate(16,{}) rotate(-90)" text-anchor="middle">{}</text><text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        (y0 + y1) / 2.0,
        escape(y_label),
        (x0 + x1) / 2.0,
        H - 12.0,
        escape(x_label)
    );
    s
}

fn legend(s: &mut String, series: &[Series]) {
    for (i, se) in series.iter().enumerate() {
        let y = TOP + 10.0 + 20.0 * i as f64;
        let x = W - RIGHT + 15.0;
        let dash = if se.dashed {
            r#" stroke-dasharray="6,4""#
        } else {
            ""
        };
        let _ = write!(
            s,
            r#"<line x1="{x}" x2="{}" y1="{y}" y2="{y}" stroke="{}" stroke-width="3"{dash}/><text x="{}" y="{}">{}</text>"#,
            x + 22.0,
            COLORS[i % COLORS.len()],
            x + 28.0,
            y + 4.0,
            escape(&se.name)
        );
    }
}

/// Grouped bars: one group per label, one bar per series.
pub fn bars(
    title: &str,
    y_label: &str,
    groups: &[String],
    series: &[Series],
    log_y: bool,
) -> String {
    let y = Axis::fit(series.iter().flat_map(|s| s.values.iter().copied()), log_y);
    let mut s = frame(title, y_label, "", &y);
    let (x0, x1, y0, y1) = (LEFT, W - RIGHT, TOP, H - BOTTOM);
    let gw = (x1 - x0) / groups.len().max(1) as f64;
    let bw = gw * 0.8 / series.len().max(1) as f64;
    for (g, label) in groups.iter().enumerate() {
        let gx = x0 + gw * g as f64 + gw * 0.1;
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            x0 + gw * (g as f64 + 0.5),
            y1 + 16.0,
            escape(label)
        );
        for (i, se) in series.iter().enumerate() {
            let v = se.values.get(g).copied().unwrap_or(f64::NAN);
            if !v.is_finite() || (log_y && v <= 0.0) {
                continue;
            }
            let f = y.frac(v).clamp(0.0, 1.0);
            let top = y1 - f * (y1 - y0);
            let _ = write!(
                s,
                r#"<rect x="{:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {}</title></rect>"#,
                gx + bw * i as f64,
                bw * 0.95,
                y1 - top,
                COLORS[i % COLORS.len()],
                escape(&se.name),
                v
            );
        }
    }
    legend(&mut s, series);
    s.push_str("</svg>\n");
    s
}

/// Lines over shared x values, with markers.
pub fn lines(
    title: &str,
    y_label: &str,
    x_label: &str,
    xs: &[f64],
    series: &[Series],
    log_x: bool,
    log_y: bool,
) -> String {
    let y = Axis::fit(series.iter().flat_map(|s| s.values.iter().copied()), log_y);
    let x = Axis::fit(xs.iter().copied(), log_x);
    let mut s = frame(title, y_label, x_label, &y);
    let (x0, x1, y0, y1) = (LEFT, W - RIGHT, TOP, H - BOTTOM);
    for &t in xs {
        let px = x0 + x.frac(t) * (x1 - x0);
        let _ = write!(
            s,
            r#"<text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"#,
            y1 + 16.0,
            tick_label(t)
        );
    }
    for (i, se) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<(f64, f64)> = xs
            .iter()
            .zip(&se.values)
            .filter(|(_, v)| v.is_finite() && (!log_y || **v > 0.0))
            .map(|(&a, &v)| {
                (
                    x0 + x.frac(a) * (x1 - x0),
                    y1 - y.frac(v).clamp(0.0, 1.0) * (y1 - y0),
                )
            })
            .collect();
        let path: Vec<String> = pts.iter().map(|(a, b)| format!("{a:.1},{b:.1}")).collect();
        let dash = if se.dashed {
            r#" stroke-dasharray="6,4""#
        } else {
            ""
        };
        let _ = write!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"{dash}/>"#,
            path.join(" ")
        );
        for (a, b) in pts {
            let _ = write!(
                s,
                r#"<circle cx="{a:.1}" cy="{b:.1}" r="3.5" fill="{color}"/>"#
            );
        }
    }
    legend(&mut s, series);
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let mut t = Table::new(&["a", "b"]);
        t.push(vec!["x,y".into(), "say \"hi\"".into()]);
        assert_eq!(t.csv(), "a,b\n\"x,y\",\"say \"\"hi\"\"\"\n");
        assert!(t.markdown().starts_with("| a | b |\n|---|---|\n"));
    }

    #[test]
    fn charts_are_well_formed_and_skip_non_finite_values() {
        let se = vec![
            Series {
                name: "p<q".into(),
                values: vec![1.0, f64::INFINITY, 100.0],
                dashed: false,
            },
            Series {
                name: "ref".into(),
                values: vec![2.0, 3.0, 4.0],
                dashed: true,
            },
        ];
        let b = bars("t", "y", &["a".into(), "b".into(), "c".into()], &se, true);
        assert_eq!(
            b.matches("<rect").count(),
            1 + 5,
            "background + five finite bars"
        );
        assert!(b.contains("p&lt;q") && b.ends_with("</svg>\n"));
        let l = lines("t", "y", "x", &[8.0, 64.0, 512.0], &se, true, false);
        assert_eq!(l.matches("<circle").count(), 5);
        assert!(!l.contains("NaN") && !l.contains("inf"));
    }
}
