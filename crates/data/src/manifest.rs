//! The dataset manifest, `data/<name>.toml` in the project: enough to rebuild the normalized
//! JSONL from the source file, and to check that it is the one trained on.

use serde::{Deserialize, Serialize};

use crate::read::Format;
use crate::shape::Mapping;
use crate::transform::Transform;

/// `data/<name>.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Name and version.
    pub dataset: DatasetInfo,
    /// The file it was built from.
    pub source: SourceInfo,
    /// How rows became conversations.
    pub mapping: Mapping,
    /// How sure the detection was, and whether the user confirmed it.
    pub detection: DetectionInfo,
    /// Fixes, applied in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transforms: Vec<Transform>,
    /// The train/test split.
    pub split: SplitInfo,
    /// The normalized result.
    pub result: ResultInfo,
}

/// `[dataset]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// File-safe name (`data/<name>.jsonl`).
    pub name: String,
    /// 1 for the first import; each change of source, mapping, fixes or split adds one.
    pub version: u32,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
}

/// `[source]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// The file name the user gave (no folders: they are machine-specific).
    pub file: String,
    /// sha256 of its bytes; the bytes are kept in the home's `objects/` under this hash.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Layout.
    pub format: Format,
    /// Text encoding as read.
    pub encoding: String,
    /// The text was converted from a legacy encoding.
    pub converted: bool,
    /// CSV delimiter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
}

/// `[detection]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectionInfo {
    /// 0–1.
    pub confidence: f64,
    /// The user chose the mapping.
    pub confirmed: bool,
    /// The language the user said to expect (ISO 639-3), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// `[split]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitInfo {
    /// Seed of [`crate::split::assign`].
    pub seed: u64,
    /// Held-out share.
    pub test_fraction: f64,
    /// Training rows.
    pub train: usize,
    /// Held-out rows.
    pub test: usize,
}

/// `[result]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultInfo {
    /// Rows kept.
    pub rows: usize,
    /// Rows the transforms removed.
    pub dropped: usize,
    /// sha256 of the normalized JSONL.
    pub sha256: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// `git` (beside this manifest as `<name>.jsonl`) or `objects` (too large for git: in the
    /// home's `objects/` under `sha256`).
    pub stored: String,
}

impl Manifest {
    /// Parses `data/<name>.toml`.
    pub fn parse(text: &str) -> Result<Manifest, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The TOML text.
    pub fn to_toml(&self) -> String {
        // Plain data of strings and numbers: serialization cannot fail.
        toml::to_string_pretty(self).unwrap_or_default()
    }
}
