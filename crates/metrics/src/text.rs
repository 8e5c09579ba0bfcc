//! Python's notion of whitespace, which every reference implementation splits and strips by.

/// Python's `str.isspace`: Rust's White_Space plus the ASCII separators U+001C–U+001F.
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.split()` with no argument.
pub(crate) fn split(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_space).filter(|t| !t.is_empty())
}

/// Python's `str.strip()`.
pub(crate) fn strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// Python's `str.rstrip()`.
pub(crate) fn rstrip(s: &str) -> &str {
    s.trim_end_matches(is_space)
}

/// Python's `" ".join(s.split())`.
pub(crate) fn collapse(s: &str) -> String {
    split(s).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_whitespace() {
        assert_eq!(collapse(" a\u{1c}b\u{a0}c\u{3000}d\u{200b}e \n"), "a b c d\u{200b}e");
        assert_eq!(strip("\u{1f} x \u{85}"), "x");
        assert_eq!(rstrip(" x \t"), " x");
    }
}
