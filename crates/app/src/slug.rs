//! Project names to path-safe folder names.
//!
//! Pure: no IO. A slug is ASCII lowercase letters, digits and single dashes, at most 64 bytes,
//! never a Windows device name; so it is a safe single path component on every platform and can
//! never name a folder outside `projects/`.

use sha2::{Digest, Sha256};

/// Longest accepted project name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
const MAX_SLUG_BYTES: usize = 64;

/// Checks a project's `name` and derives its slug; the error says what is wrong with the name.
pub fn slugify(name: &str) -> Result<String, String> {
    slugify_as("project name", name)
}

/// Like [`slugify`] for any named thing; errors call it `what` (`dataset name`, `model name`).
pub fn slugify_as(what: &str, name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("{what} is empty: give it a name"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!("{what} is longer than {MAX_NAME_CHARS} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("{what} contains control characters"));
    }
    if name.contains(['/', '\\']) {
        return Err(format!("{what} cannot contain '/' or '\\'"));
    }
    if name.contains("..") {
        return Err(format!("{what} cannot contain '..'"));
    }
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.truncate(MAX_SLUG_BYTES);
    let mut slug = slug.trim_end_matches('-').to_string();
    if slug.is_empty() {
        if name.chars().all(|c| c == '.' || c.is_whitespace()) {
            return Err(format!("{what} cannot be only dots"));
        }
        // A name in another script ("日本語") keeps a stable, distinct ASCII folder name.
        let digest = Sha256::digest(name.as_bytes());
        let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
        slug = format!("project-{hex}");
    }
    if is_windows_device(&slug) {
        slug.push_str("-project");
    }
    Ok(slug)
}

fn is_windows_device(s: &str) -> bool {
    matches!(s, "con" | "prn" | "aux" | "nul")
        || ((s.starts_with("com") || s.starts_with("lpt"))
            && s.len() == 4
            && s.as_bytes()[3].is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, expected: Result<&str, &str>) {
        let got = slugify(name);
        match (&got, expected) {
            (Ok(s), Ok(e)) => assert_eq!(s, e, "name {name:?}"),
            (Err(msg), Err(e)) => assert!(msg.contains(e), "name {name:?}: {msg}"),
            _ => panic!("name {name:?}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn ordinary_names() {
        check("Support Bot", Ok("support-bot"));
        check("  Support   Bot!! v2 ", Ok("support-bot-v2"));
        check("my_model.v1", Ok("my-model-v1"));
        check("Café Bot", Ok("caf-bot"));
        check("a", Ok("a"));
    }

    #[test]
    fn unsafe_names_are_refused() {
        check("", Err("empty"));
        check("   ", Err("empty"));
        check(".", Err("only dots"));
        check("...", Err("'..'"));
        check(". .", Err("only dots"));
        check("a/b", Err("'/'"));
        check("a\\b", Err("'\\'"));
        check("../../etc", Err("'/'"));
        check("x..y", Err("'..'"));
        check("a\nb", Err("control"));
        check("a\u{7}b", Err("control"));
        check(&"x".repeat(101), Err("longer than 100"));
    }

    #[test]
    fn errors_name_what_is_named() {
        let e = slugify_as("dataset name", "../x").unwrap_err();
        assert_eq!(e, "dataset name cannot contain '/' or '\\'");
        assert!(slugify("").unwrap_err().starts_with("project name is empty"));
    }

    #[test]
    fn long_names_are_cut_and_device_names_avoided() {
        let s = slugify(&"ab ".repeat(33)).unwrap();
        assert!(s.len() <= 64 && !s.ends_with('-'), "{s}");
        check(&"x".repeat(100), Ok(&"x".repeat(64)));
        check("CON", Ok("con-project"));
        check("lpt1", Ok("lpt1-project"));
        check("com10", Ok("com10"));
    }

    #[test]
    fn other_scripts_get_a_stable_ascii_slug() {
        let a = slugify("日本語").unwrap();
        assert!(a.starts_with("project-") && a.len() == 16, "{a}");
        assert_eq!(a, slugify("日本語").unwrap());
        assert_ne!(a, slugify("中文").unwrap());
    }

    #[test]
    fn every_slug_is_one_safe_component() {
        for name in ["A b", "x-y", "Ünïcödé", "----", "-a-", "😀 bot", "a.b.c"] {
            let s = slugify(name).unwrap();
            assert!(
                s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{s}"
            );
            assert!(!s.starts_with('-') && !s.ends_with('-'), "{s}");
        }
    }
}
