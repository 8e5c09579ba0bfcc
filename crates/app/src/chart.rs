//! Charts drawn with `plotters` as SVG for the window (the UI shows the string: plotters'
//! code stays out of the WASM bundle). Series and axes are drawn in marker colours that the
//! stylesheet maps to the theme's variables (`.chart [stroke="#010101" i]` …), so one drawing
//! follows a theme switch without being redrawn.

use api::chart::{ChartRequest, Series, YFormat};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// The SVG of the chart `req` asks for.
pub fn chart_svg(req: &ChartRequest) -> String {
    let y_fmt: &dyn Fn(&f64) -> String = match req.y_format {
        YFormat::Decimals => &|v| format!("{v:.3}"),
        YFormat::Scientific => &|v| format!("{v:.1e}"),
        YFormat::Whole => &|v| format!("{v:.0}"),
    };
    if req.bars {
        let w = req.bar_width;
        let bars: Vec<(f64, f64, f64)> = (req.series.first())
            .map(|s| s.points.iter().map(|&(x, h)| (x, x + w, h)).collect())
            .unwrap_or_default();
        return bars_svg(&bars, &req.x_label, req.width, req.height);
    }
    lines(&req.series, &req.x_label, req.width, req.height, y_fmt)
}

/// Marker colours, one per series slot; `assets/styles.css` gives each its theme colour.
const SLOTS: [RGBColor; 4] =
    [RGBColor(1, 1, 1), RGBColor(1, 1, 2), RGBColor(1, 1, 3), RGBColor(1, 1, 4)];

/// An SVG line chart of `series` over `x_label`, `width` × `height` pixels; `y_fmt` writes the
/// y labels.
fn lines(
    series: &[Series],
    x_label: &str,
    width: u32,
    height: u32,
    y_fmt: &dyn Fn(&f64) -> String,
) -> String {
    let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let all: Vec<(f64, f64)> =
        series.iter().flat_map(|s| s.points.iter().filter(finite).copied()).collect();
    let max_x = all.iter().map(|p| p.0).fold(1.0, f64::max);
    let (lo, hi) =
        all.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), p| (l.min(p.1), h.max(p.1)));
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    // A flat line still gets a band to sit in.
    let pad = ((hi - lo) * 0.08).max(hi.abs() * 0.02).max(1e-9);
    let (lo, hi) = (lo - pad, hi + pad);
    let frame = Frame { x_label, width, height, y_labels: 5, y_area: 56, y_fmt };
    frame.draw(0f64..max_x, lo..hi, |chart| {
        for s in series {
            let color = SLOTS[(s.slot as usize).min(SLOTS.len() - 1)];
            let points: Vec<(f64, f64)> = s.points.iter().filter(finite).copied().collect();
            if s.dots {
                chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
            } else {
                chart.draw_series(LineSeries::new(points, color.stroke_width(2)))?;
            }
        }
        Ok(())
    })
}

/// An SVG bar chart: one bar per `(from, to, height)`, over `x_label`.
fn bars_svg(bars: &[(f64, f64, f64)], x_label: &str, width: u32, height: u32) -> String {
    let max_x = bars.iter().map(|b| b.1).fold(1.0, f64::max);
    let max_y = bars.iter().map(|b| b.2).fold(1.0, f64::max) * 1.08;
    let y_fmt = &|v: &f64| format!("{v:.0}");
    let frame = Frame { x_label, width, height, y_labels: 4, y_area: 44, y_fmt };
    frame.draw(0f64..max_x, 0f64..max_y, |chart| {
        chart.draw_series(bars.iter().map(|&(from, to, h)| {
            Rectangle::new([(from, 0.0), (to - (to - from) * 0.08, h)], SLOTS[0].filled())
        }))?;
        Ok(())
    })
}

type Plot<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;
type DrawResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

/// What every chart shares: size, axes, labels and light grid lines.
struct Frame<'f> {
    x_label: &'f str,
    width: u32,
    height: u32,
    y_labels: usize,
    y_area: u32,
    y_fmt: &'f dyn Fn(&f64) -> String,
}

impl Frame<'_> {
    /// The SVG of the frame over `x` × `y` with what `body` draws in it (empty if drawing
    /// failed, which only a broken backend does).
    fn draw(
        &self,
        x: std::ops::Range<f64>,
        y: std::ops::Range<f64>,
        body: impl FnOnce(&mut Plot<'_, '_>) -> DrawResult,
    ) -> String {
        let mut out = String::new();
        let drawn = (|| -> DrawResult {
            let root =
                SVGBackend::with_string(&mut out, (self.width, self.height)).into_drawing_area();
            let mut chart = ChartBuilder::on(&root)
                .margin(8)
                .x_label_area_size(30)
                .y_label_area_size(self.y_area)
                .build_cartesian_2d(x, y)?;
            chart
                .configure_mesh()
                .x_labels(6)
                .y_labels(self.y_labels)
                .x_desc(self.x_label)
                .x_label_formatter(&|v| format!("{v:.0}"))
                .y_label_formatter(self.y_fmt)
                .label_style(("sans-serif", 12))
                .axis_desc_style(("sans-serif", 12))
                .light_line_style(TRANSPARENT)
                .bold_line_style(BLACK.mix(0.12))
                .draw()?;
            body(&mut chart)?;
            root.present()
        })();
        if drawn.is_err() {
            return String::new();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_bars_draw_in_marker_colours_without_non_finite_points() {
        let s = Series {
            label: "loss".into(),
            slot: 0,
            points: vec![(1.0, 2.0), (2.0, f64::NAN), (3.0, 1.5)],
            dots: false,
        };
        let eval = Series { label: "eval".into(), slot: 1, points: vec![(3.0, 1.7)], dots: true };
        let out = lines(&[s, eval], "step", 320, 160, &|v| format!("{v:.1}"));
        assert!(out.starts_with("<svg") && out.contains("</svg>"), "{out}");
        // Two finite points of slot 0 in one polyline, one dot of slot 1, the axis label.
        assert!(out.to_ascii_lowercase().contains("stroke=\"#010101\""), "{out}");
        assert!(out.to_ascii_lowercase().contains("fill=\"#010102\""), "{out}");
        assert!(!out.contains("NaN") && out.contains("step"), "{out}");
        let req = ChartRequest {
            series: vec![Series {
                label: "rows".into(),
                slot: 0,
                points: vec![(0.0, 3.0), (10.0, 0.0)],
                dots: false,
            }],
            bars: true,
            bar_width: 10.0,
            x_label: "score".into(),
            y_format: YFormat::Whole,
            width: 320,
            height: 160,
        };
        let bars = chart_svg(&req);
        assert!(bars.matches("<rect").count() >= 2, "{bars}");
    }
}
