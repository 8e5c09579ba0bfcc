use data::read::{Format, Loc, sniff};
use serde_json::json;

use crate::{file, fixture, records};

fn check(
    name: &str,
    bytes: &[u8],
    format: Format,
    encoding: &str,
    expected: &[(Loc, serde_json::Value)],
) {
    let dir = tempfile::tempdir().unwrap();
    let p = file(&dir, name, bytes);
    let s = sniff(&p).unwrap();
    assert_eq!((s.format, s.encoding_name().as_str()), (format, encoding), "{name}");
    let got: Vec<(Loc, serde_json::Value)> = records(&p)
        .unwrap()
        .into_iter()
        .map(|r| (r.loc, serde_json::Value::Object(r.fields)))
        .collect();
    assert_eq!(got, expected, "{name}");
}

#[test]
fn csv_quoted_newlines_bom_and_semicolons() {
    let text = "\u{feff}question;answer\n\"Two\nlines?\";\"yes; \"\"quoted\"\"\"\nok?;fine\n";
    check(
        "a.csv",
        text.as_bytes(),
        Format::Csv,
        "UTF-8 (BOM)",
        &[
            (Loc::Line(2), json!({"question": "Two\nlines?", "answer": "yes; \"quoted\""})),
            (Loc::Line(4), json!({"question": "ok?", "answer": "fine"})),
        ],
    );
}

#[test]
fn tsv_and_crlf() {
    check(
        "a.tsv",
        b"prompt\tcompletion\r\nhi, you\tbye, you\r\n",
        Format::Csv,
        "UTF-8",
        &[(Loc::Line(2), json!({"prompt": "hi, you", "completion": "bye, you"}))],
    );
}

#[test]
fn utf16_with_bom() {
    let text = "input,output\nWie geht's?,Gut – danke\n";
    let mut bytes = vec![0xFF, 0xFE];
    for u in text.encode_utf16() {
        bytes.extend_from_slice(&u.to_le_bytes());
    }
    check(
        "u16.csv",
        &bytes,
        Format::Csv,
        "UTF-16LE (BOM)",
        &[(Loc::Line(2), json!({"input": "Wie geht's?", "output": "Gut – danke"}))],
    );
}

#[test]
fn legacy_single_byte_is_converted() {
    // "café crème", "déjà vu" and "naïve" in windows-1252.
    let (bytes, _, _) = encoding_rs::WINDOWS_1252
        .encode("question,answer\n\"Un café crème, s'il vous plaît ?\",Voilà votre café crème\nEt déjà vu ?,C'est naïve et très français\n");
    let dir = tempfile::tempdir().unwrap();
    let p = file(&dir, "legacy.csv", &bytes);
    let s = sniff(&p).unwrap();
    assert!(s.converted, "{s:?}");
    assert_eq!(s.encoding.name(), "windows-1252");
    let rows = records(&p).unwrap();
    assert_eq!(rows[0].fields["answer"], json!("Voilà votre café crème"));
}

#[test]
fn one_bad_byte_in_utf8_stays_in_its_row() {
    // 200 French rows in UTF-8; line 101 has one byte that is not UTF-8.
    let mut bytes = b"question,answer\n".to_vec();
    for i in 0..200 {
        let answer: &[u8] = if i == 99 { b"L\xff-bas" } else { "Là-bas".as_bytes() };
        bytes.extend_from_slice(format!("\"Où est le café n°{i} ?\",\"").as_bytes());
        bytes.extend_from_slice(answer);
        bytes.extend_from_slice(", près de la fenêtre.\"\n".as_bytes());
    }
    let dir = tempfile::tempdir().unwrap();
    let p = file(&dir, "fr.csv", &bytes);
    let s = sniff(&p).unwrap();
    assert_eq!((s.encoding_name().as_str(), s.converted), ("UTF-8", false));
    let rows = records(&p).unwrap();
    assert_eq!(rows.len(), 200);
    let damaged: Vec<usize> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| serde_json::to_string(&r.fields).unwrap().contains('\u{FFFD}'))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(damaged, [99], "only the row with the bad byte is damaged");
    assert_eq!(rows[0].fields["answer"], json!("Là-bas, près de la fenêtre."));
    assert_eq!(rows[199].fields["question"], json!("Où est le café n°199 ?"));
}

#[test]
fn json_array_and_jsonl() {
    check(
        "a.json",
        b"[\n {\"q\": \"a\", \"n\": 1},\n {\"q\": \"b\", \"n\": null}\n]",
        Format::Json,
        "UTF-8",
        &[(Loc::Item(1), json!({"q": "a", "n": 1})), (Loc::Item(2), json!({"q": "b", "n": null}))],
    );
    check(
        "a.jsonl",
        b"{\"q\": \"a\"}\n\n{\"q\": \"b\"}\n",
        Format::Jsonl,
        "UTF-8",
        &[(Loc::Line(1), json!({"q": "a"})), (Loc::Line(3), json!({"q": "b"}))],
    );
    // JSON Lines behind a .json extension is read as JSON Lines.
    check(
        "lines.json",
        b"{\"q\": 1}\n{\"q\": 2}\n",
        Format::Jsonl,
        "UTF-8",
        &[(Loc::Line(1), json!({"q": 1})), (Loc::Line(2), json!({"q": 2}))],
    );
}

#[test]
fn parquet_from_pyarrow() {
    for name in ["qa.snappy.parquet", "qa.zstd.parquet"] {
        let rows = records(&fixture(name)).unwrap();
        assert_eq!(rows.len(), 6, "{name}");
        assert_eq!(rows[2].loc, Loc::Row(3));
        assert_eq!(rows[2].fields["question"], json!("Wie spät ist es?"));
        assert_eq!(rows[4].fields["question"], json!(null));
        assert_eq!(rows[0].fields["id"], json!(1));
    }
}
