//! Fixes, recorded as transforms in the dataset manifest so that the dataset can be rebuilt from
//! its source file: each one removes rows, in order, from what the previous ones kept.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::quality::{Measured, RowQuality, flag};

/// One fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Transform {
    /// Drop rows with an empty input or output.
    DropMissing,
    /// Keep the first of rows that are exactly equal.
    DropDuplicates,
    /// Keep the first of rows equal but for case, punctuation and spacing.
    DropNearDuplicates,
    /// Drop rows longer than `max_tokens` (whole templated conversation).
    DropLong {
        /// Longest kept row, in tokens.
        max_tokens: usize,
    },
    /// Drop rows reliably detected in another language (undetectable rows are kept).
    KeepLanguage {
        /// ISO 639-3 code, e.g. `eng`.
        code: String,
    },
    /// Drop rows whose quality score is below `min`.
    DropBelowScore {
        /// Lowest kept score (0–100).
        min: u8,
    },
}

impl Transform {
    /// One line for people and commit messages.
    pub fn describe(&self) -> String {
        match self {
            Transform::DropMissing => "drop rows with an empty input or output".into(),
            Transform::DropDuplicates => "drop exact duplicates".into(),
            Transform::DropNearDuplicates => "drop near-duplicates".into(),
            Transform::DropLong { max_tokens } => format!("drop rows over {max_tokens} tokens"),
            Transform::KeepLanguage { code } => format!("keep rows in language '{code}'"),
            Transform::DropBelowScore { min } => format!("drop rows scoring below {min}"),
        }
    }

    /// Whether this fix reads every row's language (by itself or through the score), so the
    /// import must check every row rather than a sample.
    pub fn needs_every_language(&self) -> bool {
        matches!(self, Transform::KeepLanguage { .. } | Transform::DropBelowScore { .. })
    }

    /// Parses a fix as the report's issues write it: `--drop-missing`, `--drop-duplicates`,
    /// `--drop-near-duplicates`, `--max-tokens N`, `--language CODE`, `--min-score N` (the
    /// CLI's flags, so a suggestion reads the same in the terminal and the window).
    pub fn from_flag(flag: &str) -> Result<Transform, String> {
        let mut words = flag.split_whitespace();
        let (name, value) = (words.next().unwrap_or_default(), words.next());
        let number = |what: &str| {
            value
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or_else(|| format!("{what} needs a number: '{flag}'"))
        };
        let t = match (name, value) {
            ("--drop-missing", None) => Transform::DropMissing,
            ("--drop-duplicates", None) => Transform::DropDuplicates,
            ("--drop-near-duplicates", None) => Transform::DropNearDuplicates,
            ("--max-tokens", _) => Transform::DropLong { max_tokens: number("--max-tokens")? },
            ("--min-score", _) => Transform::DropBelowScore {
                min: u8::try_from(number("--min-score")?)
                    .map_err(|_| "--min-score is 0-100".to_string())?,
            },
            ("--language", _) => Transform::KeepLanguage {
                code: value
                    .ok_or_else(|| format!("--language needs a code: '{flag}'"))?
                    .to_string(),
            },
            _ => return Err(format!("unknown fix '{flag}'")),
        };
        if words.next().is_some() {
            return Err(format!("unknown fix '{flag}'"));
        }
        t.validate()?;
        Ok(t)
    }

    /// Checks settings a user typed.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Transform::KeepLanguage { code } if whatlang::Lang::from_code(code).is_none() => Err(
                format!("unknown language code '{code}': use ISO 639-3, e.g. eng, deu, fra, spa"),
            ),
            Transform::DropBelowScore { min } if *min > 100 => {
                Err(format!("a score is 0–100, got {min}"))
            }
            Transform::DropLong { max_tokens: 0 } => Err("--max-tokens must be above 0".into()),
            _ => Ok(()),
        }
    }
}

/// Which rows survive `transforms`, applied in order.
pub fn apply(transforms: &[Transform], rows: &[Measured], quality: &[RowQuality]) -> Vec<bool> {
    let mut keep = vec![true; rows.len()];
    for t in transforms {
        let mut seen = HashSet::new();
        for (i, r) in rows.iter().enumerate() {
            if !keep[i] {
                continue;
            }
            keep[i] = match t {
                Transform::DropMissing => {
                    r.flags & (flag::MISSING_INPUT | flag::MISSING_OUTPUT) == 0
                }
                Transform::DropDuplicates => seen.insert(r.exact),
                Transform::DropNearDuplicates => r.near == 0 || seen.insert(r.near),
                Transform::DropLong { max_tokens } => r.total_tokens as usize <= *max_tokens,
                Transform::KeepLanguage { code } => r.lang.is_none_or(|l| l.code() == code),
                Transform::DropBelowScore { min } => quality[i].score >= *min,
            };
        }
    }
    keep
}

#[cfg(test)]
mod flag_tests {
    use super::Transform;

    #[test]
    fn fixes_parse_as_the_report_writes_them() {
        assert_eq!(Transform::from_flag("--drop-duplicates"), Ok(Transform::DropDuplicates));
        assert_eq!(
            Transform::from_flag("--max-tokens 512"),
            Ok(Transform::DropLong { max_tokens: 512 })
        );
        assert_eq!(
            Transform::from_flag("--min-score 60"),
            Ok(Transform::DropBelowScore { min: 60 })
        );
        assert_eq!(
            Transform::from_flag("--language eng"),
            Ok(Transform::KeepLanguage { code: "eng".into() })
        );
        assert!(Transform::from_flag("--max-tokens N").unwrap_err().contains("needs a number"));
        assert!(Transform::from_flag("--min-score 300").is_err());
        assert!(Transform::from_flag("--language xx").unwrap_err().contains("unknown language"));
        assert!(Transform::from_flag("rm -rf").unwrap_err().contains("unknown fix"));
        assert!(Transform::from_flag("--drop-missing now").is_err());
    }
}
