//! The tenant-scaling chart as a self-contained SVG (no plotting dependency): throughput
//! of the uniform and Zipf spreads against the number of tenants (log scale) on the left
//! axis, mean PostgreSQL backend memory on the right axis.

use std::fmt::Write as _;

use crate::scaling::Point;
use crate::spread::Spread;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 430.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 70.0;
const TOP: f64 = 70.0;
const BOTTOM: f64 = 60.0;

/// The chart of `points` (pinned first) as SVG text.
pub fn tenant_scaling(points: &[Point], title: &str) -> String {
    let pinned = points.iter().find(|p| p.spread == Spread::Pinned);
    let series = |uniform: bool| -> Vec<(usize, f64, f64)> {
        let mut line: Vec<(usize, f64, f64)> = pinned
            .map(|p| (1, p.throughput.per_second, p.backend_mean_mib()))
            .into_iter()
            .collect();
        line.extend(points.iter().filter_map(|p| match p.spread {
            Spread::Uniform { tenants } if uniform => {
                Some((tenants, p.throughput.per_second, p.backend_mean_mib()))
            }
            Spread::Zipf { tenants, .. } if !uniform => {
                Some((tenants, p.throughput.per_second, p.backend_mean_mib()))
            }
            _ => None,
        }));
        line
    };
    let (uniform, zipf) = (series(true), series(false));
    let max_tenants = uniform.iter().map(|p| p.0).max().unwrap_or(1).max(10) as f64;
    let max_rps = nice(points.iter().map(|p| p.throughput.per_second).fold(1.0, f64::max));
    let max_mib = nice(points.iter().map(Point::backend_mean_mib).fold(1.0, f64::max));
    let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let x = |tenants: usize| LEFT + (tenants as f64).log10() / max_tenants.log10() * plot_w;
    let y = |value: f64, max: f64| TOP + plot_h - value / max * plot_h;

    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">{}</text>\n",
        WIDTH / 2.0,
        escape(title)
    );
    // Axes, grid and ticks.
    let _ = writeln!(
        svg,
        "<g stroke=\"#444\"><line x1=\"{LEFT}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>\
         <line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{}\"/>\
         <line x1=\"{}\" y1=\"{TOP}\" x2=\"{}\" y2=\"{}\"/></g>",
        TOP + plot_h,
        LEFT + plot_w,
        TOP + plot_h,
        TOP + plot_h,
        LEFT + plot_w,
        LEFT + plot_w,
        TOP + plot_h
    );
    let mut tick = 1usize;
    while tick as f64 <= max_tenants {
        let _ = writeln!(
            svg,
            "<line x1=\"{0}\" y1=\"{TOP}\" x2=\"{0}\" y2=\"{1}\" stroke=\"#ddd\"/>\
             <text x=\"{0}\" y=\"{2}\" text-anchor=\"middle\">{3}</text>",
            x(tick),
            TOP + plot_h,
            TOP + plot_h + 18.0,
            thousands(tick)
        );
        tick *= 10;
    }
    for i in 0..=4 {
        let share = i as f64 / 4.0;
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"#eee\"/>\
             <text x=\"{2}\" y=\"{3}\" text-anchor=\"end\">{4:.0}</text>\
             <text x=\"{5}\" y=\"{3}\">{6:.0}</text>",
            y(share * max_rps, max_rps),
            LEFT + plot_w,
            LEFT - 6.0,
            y(share * max_rps, max_rps) + 4.0,
            share * max_rps,
            LEFT + plot_w + 6.0,
            share * max_mib,
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">tenants the load touches (log scale)</text>\
         <text transform=\"translate(18 {}) rotate(-90)\" text-anchor=\"middle\">requests/s (device by id)</text>\
         <text transform=\"translate({} {}) rotate(90)\" text-anchor=\"middle\">MiB per PostgreSQL backend</text>",
        LEFT + plot_w / 2.0,
        HEIGHT - 18.0,
        TOP + plot_h / 2.0,
        WIDTH - 14.0,
        TOP + plot_h / 2.0,
    );
    // The lines: throughput solid, memory dashed.
    for (line, colour, name) in [(&uniform, "#1f77b4", "uniform"), (&zipf, "#d62728", "Zipf(1.1)")] {
        let throughput: Vec<String> = line
            .iter()
            .map(|(t, rps, _)| format!("{:.1},{:.1}", x(*t), y(*rps, max_rps)))
            .collect();
        let memory: Vec<String> = line
            .iter()
            .map(|(t, _, mib)| format!("{:.1},{:.1}", x(*t), y(*mib, max_mib)))
            .collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>\
             <polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" stroke-dasharray=\"5 4\" points=\"{}\"/>",
            throughput.join(" "),
            memory.join(" ")
        );
        for point in &throughput {
            if let Some((px, py)) = point.split_once(',') {
                let _ = writeln!(svg, "<circle cx=\"{px}\" cy=\"{py}\" r=\"3\" fill=\"{colour}\"/>");
            }
        }
        let legend_y = if name == "uniform" { 38.0 } else { 54.0 };
        let _ = writeln!(
            svg,
            "<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"{colour}\" stroke-width=\"2\"/>\
             <text x=\"{3}\" y=\"{4}\">{name}: requests/s (solid), backend MiB (dashed)</text>",
            LEFT + 12.0,
            legend_y,
            LEFT + 36.0,
            LEFT + 42.0,
            legend_y + 4.0,
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// A round upper bound for an axis (1, 2 or 5 times a power of ten).
fn nice(max: f64) -> f64 {
    let magnitude = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|v| *v >= max)
        .unwrap_or(10.0 * magnitude)
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
