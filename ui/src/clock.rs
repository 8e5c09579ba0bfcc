//! Times in the user's locale and time zone (the browser engine knows both), and durations.

use wasm_bindgen::JsValue;

fn date(secs: i64) -> js_sys::Date {
    js_sys::Date::new(&JsValue::from_f64(secs as f64 * 1000.0))
}

/// `14:03:22`, for seconds since the Unix epoch.
pub fn time(secs: i64) -> String {
    date(secs).to_locale_time_string("default").into()
}

/// `06/12/2026, 14:03:22` (as the locale writes it).
pub fn date_time(secs: i64) -> String {
    date(secs).to_locale_string("default", &JsValue::UNDEFINED).into()
}

/// An estimate's length, rounded up to what matters: `42 s`, `7 min`, `1 h 05 min`.
pub fn about(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s.div_ceil(60)),
        _ => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}
