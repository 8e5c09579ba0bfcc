//! A chart figure: the back end draws it with plotters (`chart_svg`), the figure shows the SVG
//! with a title and an HTML legend (which screen readers and axe see). Redrawn whenever its
//! series change; an answer that comes back after a newer request is dropped.

use api::chart::{ChartRequest, Series, YFormat};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::ipc;

/// A titled chart of `series`.
#[component]
pub fn Chart(
    /// The figure's id (tests watch its `data-points` grow).
    id: &'static str,
    /// Heading and accessible name.
    title: &'static str,
    /// The lines (or, with `bar_width`, the bars: points are (start, height)).
    #[prop(into)]
    series: Signal<Vec<Series>>,
    /// x axis label.
    x_label: &'static str,
    /// How the y labels are written.
    #[prop(default = YFormat::Decimals)]
    y_format: YFormat,
    /// Pixel size.
    #[prop(default = (640, 220))]
    size: (u32, u32),
    /// Bars of this width instead of lines.
    #[prop(default = None)]
    bar_width: Option<f64>,
) -> impl IntoView {
    let drawing = RwSignal::new(String::new());
    let asked = StoredValue::new(0u64);
    Effect::new(move |_| {
        let req = ChartRequest {
            series: series.get(),
            bars: bar_width.is_some(),
            bar_width: bar_width.unwrap_or(0.0),
            x_label: x_label.into(),
            y_format,
            width: size.0,
            height: size.1,
        };
        asked.update_value(|n| *n += 1);
        let n = asked.get_value();
        spawn_local(async move {
            if let Ok(svg) = ipc::chart_svg(req).await
                && asked.get_value() == n
            {
                drawing.set(svg);
            }
        });
    });
    // The first series' points, for tests to watch a chart grow.
    let points = move || series.with(|s| s.first().map_or(0, |s| s.points.len())).to_string();
    let keys = move || {
        series
            .get()
            .into_iter()
            .map(|s| {
                let class =
                    format!("key slot{}{}", s.slot.min(3), if s.dots { " dots" } else { "" });
                view! { <span class=class>{s.label}</span> }
            })
            .collect_view()
    };
    view! {
        <figure class="chart" id=id data-points=points>
            <h3>{title}</h3>
            // Sized before the drawing arrives, so the pane does not jump when it does.
            <div
                class="plot"
                role="img"
                aria-label=title
                style=format!("max-width: {}px; aspect-ratio: {} / {}", size.0, size.0, size.1)
                inner_html=move || drawing.get()
            ></div>
            <figcaption>{keys}</figcaption>
        </figure>
    }
}
