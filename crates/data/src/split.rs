//! The seeded train/test split. A row's side depends only on its content and the seed, so the
//! split is the same on every run and every machine, and rows keep their side when others are
//! added or removed (up to the exact count held out).

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// Marks `test` of the rows as held out: those whose seeded content hash ranks lowest (ties by
/// position). `lines` are the normalized JSONL lines.
pub fn assign(lines: &[&str], seed: u64, test: usize) -> Vec<bool> {
    let mut keys: Vec<(u64, usize)> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| (xxh3_64_with_seed(&xxh3_64(l.as_bytes()).to_le_bytes(), seed), i))
        .collect();
    keys.sort_unstable();
    let mut is_test = vec![false; lines.len()];
    for &(_, i) in keys.iter().take(test) {
        is_test[i] = true;
    }
    is_test
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_exact() {
        let rows: Vec<String> = (0..100).map(|i| format!("{{\"row\":{i}}}")).collect();
        let lines: Vec<&str> = rows.iter().map(String::as_str).collect();
        let a = assign(&lines, 7, 20);
        assert_eq!(a.iter().filter(|&&t| t).count(), 20);
        assert_eq!(a, assign(&lines, 7, 20));
        assert_ne!(a, assign(&lines, 8, 20));
        // Shuffling the file keeps every row on its side.
        let reversed: Vec<&str> = lines.iter().rev().copied().collect();
        let b = assign(&reversed, 7, 20);
        let back: Vec<bool> = b.into_iter().rev().collect();
        assert_eq!(a, back);
    }
}
