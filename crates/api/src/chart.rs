//! Charts the back end draws (with plotters) for the window: what to draw in, SVG out.

use serde::{Deserialize, Serialize};

/// One line (or set of bars, or dots) of a chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// What it is (the legend says it).
    pub label: String,
    /// Colour slot (0–3): 0 the main line, 1 the held-out points, 2 a second line, 3 overlays.
    /// The SVG carries marker colours the stylesheet maps to the theme.
    pub slot: u8,
    /// (x, y) points; non-finite ones are left out.
    pub points: Vec<(f64, f64)>,
    /// Drawn as dots (sparse measurements, e.g. held-out loss) rather than a line.
    pub dots: bool,
}

/// How the y axis labels are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum YFormat {
    /// Three decimals (losses, norms).
    #[default]
    Decimals,
    /// Scientific, e.g. `2.0e-4` (learning rates).
    Scientific,
    /// Whole numbers (tokens/s, MB, counts).
    Whole,
}

/// Arguments of [`crate::cmd::CHART_SVG`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChartRequest {
    /// Lines, or, with `bars`, one series whose points are (bar start, height) with
    /// `bar_width` wide bars.
    pub series: Vec<Series>,
    /// Bars instead of lines.
    pub bars: bool,
    /// Width of each bar (with `bars`).
    pub bar_width: f64,
    /// x axis label.
    pub x_label: String,
    /// y labels.
    pub y_format: YFormat,
    /// Pixel size.
    pub width: u32,
    /// Pixel size.
    pub height: u32,
}
