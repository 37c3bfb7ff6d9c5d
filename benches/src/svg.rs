//! Hand-written SVG grouped bar charts (no plotting dependency).

use std::fmt::Write as _;

/// A grouped bar chart: one group per load, one bar per server in a group.
#[derive(Debug, Clone, Default)]
pub struct Chart {
    /// Title above the chart.
    pub title: String,
    /// Label of the value axis.
    pub y_label: String,
    /// Group (x axis) labels.
    pub groups: Vec<String>,
    /// (series name, one value per group; `None` where not measured).
    pub series: Vec<(String, Vec<Option<f64>>)>,
}

const COLORS: [&str; 6] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1",
];

/// Escapes text for SVG.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if v <= m * mag {
            return m * mag;
        }
    }
    10.0 * mag
}

fn fmt_value(v: f64) -> String {
    if v >= 100_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 1000.0 {
        format!("{:.1}k", v / 1000.0)
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Renders the chart as an SVG document.
pub fn render(chart: &Chart) -> String {
    let (w, h) = (860.0f64, 420.0f64);
    let (left, right, top, bottom) = (70.0, 20.0, 50.0, 90.0);
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let max = chart
        .series
        .iter()
        .flat_map(|(_, v)| v.iter().flatten())
        .copied()
        .fold(0.0f64, f64::max);
    let ymax = nice_max(max * 1.1);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="16">{}</text>"#,
        w / 2.0,
        escape(&chart.title)
    );
    // grid and y ticks
    for i in 0..=5 {
        let v = ymax * i as f64 / 5.0;
        let y = top + plot_h - plot_h * i as f64 / 5.0;
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            left + plot_w,
            left - 6.0,
            y + 4.0,
            fmt_value(v)
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">{}</text>"#,
        top + plot_h / 2.0,
        top + plot_h / 2.0,
        escape(&chart.y_label)
    );
    let ng = chart.groups.len().max(1) as f64;
    let ns = chart.series.len().max(1) as f64;
    let group_w = plot_w / ng;
    let bar_w = (group_w * 0.8) / ns;
    for (gi, g) in chart.groups.iter().enumerate() {
        let gx = left + group_w * gi as f64;
        for (si, (_, vals)) in chart.series.iter().enumerate() {
            let Some(v) = vals.get(gi).copied().flatten() else {
                continue;
            };
            let bh = (v / ymax * plot_h).max(0.0);
            let x = gx + group_w * 0.1 + bar_w * si as f64;
            let y = top + plot_h - bh;
            let _ = writeln!(
                s,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{bh:.1}" fill="{}"><title>{}</title></rect><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{}</text>"#,
                bar_w * 0.95,
                COLORS[si % COLORS.len()],
                fmt_value(v),
                x + bar_w * 0.475,
                y - 3.0,
                fmt_value(v)
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            gx + group_w / 2.0,
            top + plot_h + 18.0,
            escape(g)
        );
    }
    let _ = writeln!(
        s,
        r#"<line x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="black"/>"#,
        top + plot_h,
        left + plot_w,
        top + plot_h
    );
    // legend
    let mut lx = left;
    let ly = h - 30.0;
    for (si, (name, _)) in chart.series.iter().enumerate() {
        let _ = writeln!(
            s,
            r#"<rect x="{lx:.1}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{ly:.1}">{}</text>"#,
            ly - 10.0,
            COLORS[si % COLORS.len()],
            lx + 16.0,
            escape(name)
        );
        lx += 24.0 + 7.5 * name.len() as f64;
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_bars_and_escapes() {
        let c = Chart {
            title: "echo <CPU>".into(),
            y_label: "µs/request".into(),
            groups: vec!["50x64B".into(), "50x6Bx16".into()],
            series: vec![
                ("tokio".into(), vec![Some(6.1), Some(0.36)]),
                ("evio & co".into(), vec![Some(8.7), None]),
            ],
        };
        let s = render(&c);
        assert!(s.starts_with("<svg"));
        assert!(s.trim_end().ends_with("</svg>"));
        assert_eq!(s.matches("<rect x=").count(), 3 + 2); // 3 bars + 2 legend boxes
        assert!(s.contains("echo &lt;CPU&gt;"));
        assert!(s.contains("evio &amp; co"));
    }

    #[test]
    fn nice_axis() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.3), 10.0);
        assert_eq!(nice_max(1.9), 2.0);
        assert_eq!(nice_max(230.0), 250.0);
    }
}
