//! `vibeflow score`: the evaluation's metrics over two JSON Lines files, outputs already made
//! elsewhere (another tool, another machine), paired by id.

use std::collections::HashMap;
use std::path::Path;

use api::eval::Metrics;

use crate::{Error, Result};

/// Ids named when the two files' ids differ.
const SHOWN_IDS: usize = 5;

/// Every automatic metric of `preds` against `refs`, two JSON Lines files of
/// `{"id": …, "text": …}` (id a string or a number; `1` and `"1"` are the same id), paired by id
/// in the references' order. `labels` declares the outputs labels; otherwise they are detected.
/// A malformed line, a missing id or text, a repeated id, an empty file, or ids found in one
/// file only are errors naming the file (and the line).
pub fn score_files(preds: &Path, refs: &Path, labels: bool) -> Result<Metrics> {
    let predictions = read(preds)?;
    let references = read(refs)?;
    let by_id: HashMap<&str, &str> =
        predictions.iter().map(|(id, text)| (id.as_str(), text.as_str())).collect();
    let ref_ids: HashMap<&str, ()> = references.iter().map(|(id, _)| (id.as_str(), ())).collect();
    let missing: Vec<&str> =
        references.iter().map(|(id, _)| id.as_str()).filter(|id| !by_id.contains_key(id)).collect();
    let extra: Vec<&str> = predictions
        .iter()
        .map(|(id, _)| id.as_str())
        .filter(|id| !ref_ids.contains_key(id))
        .collect();
    if !missing.is_empty() || !extra.is_empty() {
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("{} has no prediction for {}", preds.display(), ids(&missing)));
        }
        if !extra.is_empty() {
            parts.push(format!("{} has no reference for {}", refs.display(), ids(&extra)));
        }
        return Err(Error::Data(format!(
            "the files' ids differ: {}; score the same examples in both",
            parts.join("; ")
        )));
    }
    let pred_texts: Vec<&str> = references.iter().map(|(id, _)| by_id[id.as_str()]).collect();
    let ref_texts: Vec<&str> = references.iter().map(|(_, text)| text.as_str()).collect();
    Ok(metrics::score(&pred_texts, &ref_texts, labels.then_some(true)))
}

/// The (id, text) pairs of a file, in order.
fn read(path: &Path) -> Result<Vec<(String, String)>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let at = |line: usize, msg: String| Error::Data(format!("{}:{line}: {msg}", path.display()));
    let mut out = Vec::new();
    let mut first_line: HashMap<String, usize> = HashMap::new();
    for (i, text) in bytes.split(|&b| b == b'\n').enumerate() {
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let line = i + 1;
        let record = data::read::jsonl_record(path, line as u64, text)?;
        let id = match record.fields.get("id") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(other) => {
                return Err(at(line, format!("\"id\" must be a string or a number, not {other}")));
            }
            None => {
                return Err(at(line, "no \"id\": each line needs {\"id\": …, \"text\": …}".into()));
            }
        };
        let text = match record.fields.get("text") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => return Err(at(line, format!("\"text\" must be a string, not {other}"))),
            None => {
                return Err(at(
                    line,
                    "no \"text\": each line needs {\"id\": …, \"text\": …}".into(),
                ));
            }
        };
        if let Some(first) = first_line.insert(id.clone(), line) {
            return Err(at(
                line,
                format!("id {id:?} again (first on line {first}): ids must be unique"),
            ));
        }
        out.push((id, text));
    }
    if out.is_empty() {
        return Err(Error::Data(format!(
            "{}: no lines: expected one {{\"id\": …, \"text\": …}} object per line",
            path.display()
        )));
    }
    Ok(out)
}

/// The first few ids, quoted, and how many more.
fn ids(list: &[&str]) -> String {
    let shown: Vec<String> = list.iter().take(SHOWN_IDS).map(|id| format!("{id:?}")).collect();
    let more = list.len().saturating_sub(SHOWN_IDS);
    let noun = if list.len() == 1 { "id" } else { "ids" };
    if more == 0 {
        format!("{} {noun} ({})", list.len(), shown.join(", "))
    } else {
        format!("{} {noun} ({}, and {more} more)", list.len(), shown.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(
        preds: &str,
        refs: &str,
    ) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let (p, r) = (dir.path().join("p.jsonl"), dir.path().join("r.jsonl"));
        std::fs::write(&p, preds).unwrap();
        std::fs::write(&r, refs).unwrap();
        (dir, p, r)
    }

    #[test]
    fn pairs_by_id_in_the_references_order() {
        let (_dir, p, r) = files(
            "{\"id\": 2, \"text\": \"b\"}\n\n{\"id\": \"1\", \"text\": \"a\"}\n",
            "\u{feff}{\"id\": \"1\", \"text\": \"a\"}\r\n{\"id\": \"2\", \"text\": \"c\"}\n",
        );
        let m = score_files(&p, &r, false).unwrap();
        assert_eq!((m.count, m.exact_match), (2, 0.5));
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let err = |preds: &str, refs: &str| {
            let (_dir, p, r) = files(preds, refs);
            score_files(&p, &r, false).unwrap_err().to_string()
        };
        let ok = "{\"id\": 1, \"text\": \"a\"}\n";
        assert!(
            err("", ok).ends_with(
                "p.jsonl: no lines: expected one {\"id\": …, \"text\": …} object per line"
            )
        );
        assert!(
            err(&format!("{ok}{{\"id\": 1}}\n"), ok)
                .ends_with("p.jsonl:2: no \"text\": each line needs {\"id\": …, \"text\": …}")
        );
        assert!(
            err(&format!("{ok}{ok}"), ok)
                .ends_with("p.jsonl:2: id \"1\" again (first on line 1): ids must be unique")
        );
        assert!(
            err(ok, "{\"id\": [1], \"text\": \"a\"}")
                .contains("r.jsonl:1: \"id\" must be a string or a number")
        );
        let e = err(ok, "{\"id\": 2, \"text\": \"a\"}");
        assert!(
            e.contains("p.jsonl has no prediction for 1 id (\"2\")")
                && e.contains("r.jsonl has no reference for 1 id (\"1\")"),
            "{e}"
        );
        let e = err("{\"id\": 1, \"text\": \"a\"\n", ok);
        assert!(e.contains("p.jsonl:1: "), "{e}");
    }
}
