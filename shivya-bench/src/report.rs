//! Tables (Markdown on stdout, CSV on disk) and SVG charts drawn by plotters.

use plotters::prelude::*;
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

/// The `p`-quantile of ascending values: the value at rank ⌊n·p⌋ (the last for p = 1);
/// NaN when there are none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// A measured value for a table: "—" when not finite, no decimals from 100 up, one below.
pub fn fmt_stat(x: f64) -> String {
    if !x.is_finite() {
        "—".into()
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
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

/// Twelve distinguishable colours (Tableau 10 and two more): every policy of the
/// cluster chart gets its own.
const COLORS: [RGBColor; 12] = [
    RGBColor(0x4e, 0x79, 0xa7),
    RGBColor(0xf2, 0x8e, 0x2b),
    RGBColor(0x59, 0xa1, 0x4f),
    RGBColor(0xe1, 0x57, 0x59),
    RGBColor(0x76, 0xb7, 0xb2),
    RGBColor(0xed, 0xc9, 0x48),
    RGBColor(0xb0, 0x7a, 0xa1),
    RGBColor(0xff, 0x9d, 0xa7),
    RGBColor(0x9c, 0x75, 0x5f),
    RGBColor(0xba, 0xb0, 0xac),
    RGBColor(0x1f, 0x1f, 0x1f),
    RGBColor(0x8c, 0xd1, 0x7d),
];
/// Width of the legend panel right of the plot.
const LEGEND: u32 = 190;

/// The legend, in its own panel (never over the data).
fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    series: &[Series],
    line: bool,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    for (i, se) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let y = 50 + 20 * i as i32;
        if line {
            let style = color.stroke_width(2);
            area.draw(&PathElement::new(vec![(8, y), (28, y)], style))?;
        } else {
            area.draw(&Rectangle::new([(8, y - 6), (24, y + 6)], color.filled()))?;
        }
        let label = if se.dashed {
            format!("{} (dashed)", se.name)
        } else {
            se.name.clone()
        };
        area.draw(&Text::new(label, (34, y - 7), ("sans-serif", 13)))?;
    }
    Ok(())
}

const SIZE: (u32, u32) = (900, 440);

/// The range of the drawable values (finite, and positive on a log axis), widened a
/// little; a fixed range when there is nothing to draw.
fn range(values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let vals: Vec<f64> = values
        .filter(|v| v.is_finite() && (!log || *v > 0.0))
        .collect();
    let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() {
        return (1.0, 10.0);
    }
    if log {
        (lo / 1.5, hi * 1.5)
    } else {
        let pad = ((hi - lo) * 0.08).max(1e-9);
        ((lo - pad).min(0.0f64.max(lo - pad)), hi + pad)
    }
}

fn drawable(v: f64, log: bool) -> bool {
    v.is_finite() && (!log || v > 0.0)
}

fn failed(e: impl std::fmt::Display) -> String {
    // An SVG string backend only fails on a bug of ours (a bad range); say so in the file.
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\"><text y=\"20\">chart failed: {e}</text></svg>\n"
    )
}

/// Grouped bars, drawn by plotters: one group per label, one bar per series.
pub fn bars(
    title: &str,
    y_label: &str,
    groups: &[String],
    series: &[Series],
    log_y: bool,
) -> String {
    let mut out = String::new();
    let r = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
        let whole = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        whole.fill(&WHITE)?;
        let (root, side) = whole.split_horizontally(SIZE.0 - LEGEND);
        legend(&side, series, false)?;
        let (lo, hi) = range(series.iter().flat_map(|s| s.values.iter().copied()), log_y);
        let n = groups.len().max(1) as f64;
        let label = |x: &f64| {
            let g = x.floor();
            if (x - g - 0.5).abs() < 1e-6 && g >= 0.0 {
                groups.get(g as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        let bw = 0.8 / series.len().max(1) as f64;
        macro_rules! draw {
            ($y:expr, $base:expr) => {{
                let mut chart = ChartBuilder::on(&root)
                    .caption(title, ("sans-serif", 18))
                    .margin(12)
                    .x_label_area_size(36)
                    .y_label_area_size(64)
                    .build_cartesian_2d(0.0..n, $y)?;
                chart
                    .configure_mesh()
                    .disable_x_mesh()
                    .x_labels(groups.len() * 2 + 1)
                    .x_label_formatter(&label)
                    .y_desc(y_label)
                    .draw()?;
                for (i, se) in series.iter().enumerate() {
                    let color = COLORS[i % COLORS.len()];
                    let bars = se.values.iter().enumerate().filter_map(|(g, &v)| {
                        drawable(v, log_y).then(|| {
                            let x = g as f64 + 0.1 + bw * i as f64;
                            Rectangle::new([(x, $base), (x + bw * 0.95, v)], color.filled())
                        })
                    });
                    chart.draw_series(bars)?;
                }
            }};
        }
        if log_y {
            draw!((lo..hi).log_scale(), lo);
        } else {
            draw!(lo.min(0.0)..hi, lo.min(0.0));
        }
        whole.present()?;
        Ok(())
    })();
    match r {
        Ok(()) => out,
        Err(e) => failed(e),
    }
}

/// Lines over shared x values, with markers, drawn by plotters; dashed series are
/// reference curves.
pub fn lines(
    title: &str,
    y_label: &str,
    x_label: &str,
    xs: &[f64],
    series: &[Series],
    log_x: bool,
    log_y: bool,
) -> String {
    let mut out = String::new();
    let r = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
        let whole = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        whole.fill(&WHITE)?;
        let (root, side) = whole.split_horizontally(SIZE.0 - LEGEND);
        legend(&side, series, true)?;
        let (ylo, yhi) = range(series.iter().flat_map(|s| s.values.iter().copied()), log_y);
        let (xlo, xhi) = range(xs.iter().copied(), log_x);
        macro_rules! draw {
            ($x:expr, $y:expr) => {{
                let mut chart = ChartBuilder::on(&root)
                    .caption(title, ("sans-serif", 18))
                    .margin(12)
                    .x_label_area_size(40)
                    .y_label_area_size(64)
                    .build_cartesian_2d($x, $y)?;
                chart
                    .configure_mesh()
                    .x_desc(x_label)
                    .y_desc(y_label)
                    .draw()?;
                for (i, se) in series.iter().enumerate() {
                    let color = COLORS[i % COLORS.len()];
                    let pts: Vec<(f64, f64)> = xs
                        .iter()
                        .zip(&se.values)
                        .filter(|(x, v)| drawable(**x, log_x) && drawable(**v, log_y))
                        .map(|(x, v)| (*x, *v))
                        .collect();
                    let style = color.stroke_width(2);
                    if se.dashed {
                        chart.draw_series(DashedLineSeries::new(pts.clone(), 6, 4, style))?;
                    } else {
                        chart.draw_series(LineSeries::new(pts.clone(), style))?;
                    }
                    chart.draw_series(pts.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
                }
            }};
        }
        match (log_x, log_y) {
            (true, true) => draw!((xlo..xhi).log_scale(), (ylo..yhi).log_scale()),
            (true, false) => draw!((xlo..xhi).log_scale(), ylo..yhi),
            (false, true) => draw!(xlo..xhi, (ylo..yhi).log_scale()),
            (false, false) => draw!(xlo..xhi, ylo..yhi),
        }
        whole.present()?;
        Ok(())
    })();
    match r {
        Ok(()) => out,
        Err(e) => failed(e),
    }
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
        assert!(
            b.starts_with("<svg") && b.trim_end().ends_with("</svg>"),
            "{b}"
        );
        assert!(b.contains("p&lt;q"), "labels are escaped");
        assert!(!b.contains("chart failed") && !b.contains("NaN") && !b.contains("inf"));
        let l = lines("t", "y", "x", &[8.0, 64.0, 512.0], &se, true, false);
        assert!(!l.contains("chart failed") && !l.contains("NaN"));
        assert_eq!(l.matches("<circle").count(), 5, "five finite points");
        // Nothing drawable at all still gives a chart, not an error.
        let empty = vec![Series {
            name: "none".into(),
            values: vec![f64::NAN],
            dashed: false,
        }];
        assert!(!bars("t", "y", &["a".into()], &empty, true).contains("chart failed"));
    }
}
