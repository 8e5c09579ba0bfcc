use data::pipeline::{Options, Outcome, run, sample};
use data::quality::Config;
use data::transform::Transform;

use crate::{Words, file};

fn import(
    dir: &tempfile::TempDir,
    name: &str,
    text: &str,
    transforms: &[Transform],
) -> (Outcome, String) {
    let outcome = try_import(dir, name, text, transforms).unwrap();
    (outcome, std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap())
}

/// Writes `text` to `name` in `dir`, detects its mapping and runs the pipeline to `out.jsonl`.
fn try_import(
    dir: &tempfile::TempDir,
    name: &str,
    text: &str,
    transforms: &[Transform],
) -> data::Result<Outcome> {
    try_import_bytes(dir, name, text.as_bytes(), transforms)
}

/// [`try_import`] of a file's bytes (which need not be UTF-8).
fn try_import_bytes(
    dir: &tempfile::TempDir,
    name: &str,
    bytes: &[u8],
    transforms: &[Transform],
) -> data::Result<Outcome> {
    let p = file(dir, name, bytes);
    let sniffed = data::read::sniff(&p)?;
    let (cols, rows) = sample(&p, &sniffed)?;
    let detection = data::shape::detect(&cols, &rows).unwrap();
    let opts = Options {
        detection: &detection,
        transforms,
        tokens: &Words,
        quality: Config { context: 40, cutoff: 30, expected_language: None },
        on_rows: None,
    };
    run(&p, &sniffed, &opts, &dir.path().join("out.jsonl"))
}

const MESSY: &str = "question,answer,id
How do I reset my password?,Open Settings and choose Security then Reset password.,1
How do I reset my password?,Open Settings and choose Security then Reset password.,2
\"HOW do I reset my password!!\",\"open settings and choose security, then reset password\",3
Where can I download my invoices?,,4
???,???,5
Wo finde ich meine Rechnungen und wie kann ich sie herunterladen?,Unter Abrechnung findest du alle Rechnungen als PDF zum Herunterladen.,6
Can I export my notes?,Yes: File then Export lets you save every notebook as Markdown or PDF files.,7
Why was I charged twice?,Sorry! The second charge is a pending authorisation that disappears within three days.,8
Is there a dark theme?,Yes. Choose Appearance in Settings and pick Dark.,9
Tell me everything about sync in great detail please because I really need to understand it all before I decide to pay for the premium plan today,Sync keeps every device up to date.,10
Does the app work offline?,Yes; changes made offline are synced caf\u{c3}\u{a9} later when you reconnect to the internet.,11
";

#[test]
fn report_counts_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let (o, jsonl) = import(&dir, "messy.csv", MESSY, &[]);
    let r = &o.report;
    assert_eq!(r.rows, 11);
    assert_eq!((r.missing_input, r.missing_output), (0, 1));
    assert_eq!((r.duplicates, r.near_duplicates), (1, 1));
    assert_eq!(r.no_text, 1);
    assert_eq!(r.encoding_damaged, 1);
    assert_eq!(r.language.as_ref().map(|l| l.code.as_str()), Some("eng"));
    assert_eq!(r.language_mismatches, 1);
    assert_eq!(r.imbalanced, 0);
    assert_eq!(r.tokens.over_cutoff, 1);
    assert_eq!(r.tokens.input.max, 27);
    assert_eq!((r.tokens.total.max, r.tokens.over_context), (40, 0));
    assert_eq!(r.split.test, 2);
    // The score distribution holds every row; its lower half is the rows below 50.
    let counts: Vec<usize> = r.score_histogram.iter().map(|b| b.count).collect();
    assert_eq!(counts.iter().sum::<usize>(), 11);
    assert_eq!(counts[..5].iter().sum::<usize>(), r.low_score_rows);
    assert!(r.low_score_rows > 0 && counts[9] > 0, "{counts:?}");
    assert_eq!(jsonl.lines().count(), 11);
    // Nothing dropped: the lines as measured are the result, hashed as written.
    use sha2::Digest;
    assert_eq!(o.sha256, format!("{:x}", sha2::Sha256::digest(jsonl.as_bytes())));
    assert_eq!(o.bytes, jsonl.len() as u64);
    assert_eq!(r.language_checked, 11);
    assert!(r.issues.iter().any(|i| i.kind == "size" && i.message.starts_with("only 11 rows")));
    // The per-row view: the first rows with their scores and reasons.
    let p: Vec<(usize, u8, Vec<String>)> =
        o.preview.iter().take(5).map(|p| (p.row, p.score, p.reasons.clone())).collect();
    assert_eq!(
        p,
        [
            (1, 100, vec![]),
            (2, 40, vec!["duplicate of row 1".to_string()]),
            (3, 60, vec!["near-duplicate of row 1".to_string()]),
            (4, 0, vec!["missing output".to_string()]),
            (5, 50, vec!["no letters or digits in the input or output".to_string()]),
        ]
    );
    assert_eq!(o.worst[0].row, 4);
    // Previews show the rows' text, read back from the written JSONL.
    assert_eq!(o.preview[0].input, "How do I reset my password?");
    assert_eq!(o.worst[0].input, "Where can I download my invoices?");
    assert_eq!(o.preview[9].output, "Sync keeps every device up to date.");
}

#[test]
fn fixes_are_applied_in_order_and_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let fixes = [
        Transform::DropMissing,
        Transform::DropDuplicates,
        Transform::DropNearDuplicates,
        Transform::KeepLanguage { code: "eng".into() },
        Transform::DropBelowScore { min: 60 },
    ];
    let (o, jsonl) = import(&dir, "messy.csv", MESSY, &fixes);
    assert_eq!((o.kept, o.dropped), (6, 5));
    assert_eq!(jsonl.lines().count(), 6);
    assert_eq!(o.result.duplicates + o.result.near_duplicates + o.result.missing_output, 0);
    let (again, jsonl2) = import(&dir, "messy.csv", MESSY, &fixes);
    assert_eq!((again.sha256.clone(), jsonl2), (o.sha256.clone(), jsonl));
}

/// Past `LANGUAGE_ALL_ROWS` rows the report checks every 2nd row's language, then every 4th,
/// 8th… as the row number doubles, estimates the rest and says so; a fix by language checks
/// every row.
#[test]
fn large_files_have_a_sample_of_languages_checked_unless_a_fix_needs_all() {
    use data::quality::{check_language, language_stride};
    use data::thresholds::LANGUAGE_ALL_ROWS;
    assert_eq!(LANGUAGE_ALL_ROWS, 1_000);
    let strides: Vec<usize> = [0, 999, 1000, 1999, 2000, 3999, 4000, 8000, 11_999]
        .iter()
        .map(|&i| language_stride(i))
        .collect();
    assert_eq!(strides, [1, 1, 2, 2, 4, 4, 8, 16, 16]);
    assert!(
        check_language(1001, true) && !check_language(1001, false) && check_language(1002, false)
    );
    let en = r#"{"question": "How do I reset my password on the new laptop before the meeting today?", "answer": "Open the settings page, choose security and then follow the steps to reset it."}"#;
    let de = r#"{"question": "Wo finde ich meine Rechnungen und wie kann ich sie herunterladen?", "answer": "Unter Abrechnung findest du alle Rechnungen als PDF zum Herunterladen."}"#;
    // German at 0-based rows i % 100 == 1 (odd: checked only in the first 1,000 rows) and at
    // the multiples of 1,024 from 1,024 on (always checked).
    let german = |i: usize| i % 100 == 1 || (i >= 1024 && i.is_multiple_of(1024));
    let text: String =
        (0..12_000).map(|i| if german(i) { de } else { en }).flat_map(|l| [l, "\n"]).collect();
    let dir = tempfile::tempdir().unwrap();
    let (o, _) = import(&dir, "big.jsonl", &text, &[]);
    let r = &o.report;
    assert_eq!(r.language.as_ref().map(|l| l.code.as_str()), Some("eng"));
    // 1,000 + 500 of [1,000, 2,000) + 500 of [2,000, 4,000) + 500 of [4,000, 8,000) + 250.
    assert_eq!(r.language_checked, 2_750);
    // 10 in the first 1,000 rows, then 1,024 … 11,264.
    assert_eq!(r.language_mismatches, 21);
    // Each stands for its stride: 10 + 2 + 4 + 4 + 4 × 8 + 4 × 16 (131 in truth).
    let issue = r.issues.iter().find(|i| i.kind == "language").unwrap();
    assert!(
        issue
            .message
            .starts_with("21 of the 2750 rows checked are not in English (about 116 in all;"),
        "{}",
        issue.message
    );

    let keep = [Transform::KeepLanguage { code: "eng".into() }];
    let (o, jsonl) = import(&dir, "big.jsonl", &text, &keep);
    assert_eq!((o.report.language_checked, o.report.language_mismatches), (12_000, 131));
    assert_eq!((o.kept, o.dropped), (12_000 - 131, 131));
    assert!(!jsonl.contains("Rechnungen"));
}

/// UTF-8 JSON Lines are split as read, without the decoder: bytes that are not UTF-8 still
/// become U+FFFD exactly as the decoder makes them (every kind of bad sequence), after a BOM
/// and after the 64 KiB that sniffing reads (which chose UTF-8), and are counted as damage.
#[test]
fn bad_utf8_in_json_lines_is_replaced_as_the_decoder_does() {
    const BAD: &[&[u8]] = &[
        b"\xFF",
        b"\xE2\x82",
        b"\xC0\xAF",
        b"\xED\xA0\x80",
        b"\xF0\x9F\x98",
        b"\x80\x80",
        b"\xF4\x90\x80\x80",
        b"\xE2\x82\xAC\xE2",
    ];
    for bom in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = Vec::new();
        if bom {
            bytes.extend_from_slice(b"\xEF\xBB\xBF");
        }
        for i in 0..1500 {
            let row = format!(
                "{{\"instruction\": \"how do I sync note {i}?\", \"response\": \"open settings, then sync {i}\"}}\n"
            );
            bytes.extend_from_slice(row.as_bytes());
        }
        assert!(bytes.len() > 64 * 1024);
        let mut inputs = Vec::new();
        for (k, bad) in BAD.iter().enumerate() {
            let input = [&b"bad "[..], bad, format!(" byte {k}").as_bytes()].concat();
            bytes.extend_from_slice(b"{\"instruction\": \"");
            bytes.extend_from_slice(&input);
            bytes.extend_from_slice(b"\", \"response\": \"fine\"}\n");
            inputs.push(encoding_rs::UTF_8.decode_without_bom_handling(&input).0.into_owned());
        }
        let sniffed = data::read::sniff(&file(&dir, "bad.jsonl", &bytes)).unwrap();
        assert_eq!((sniffed.encoding, sniffed.bom), (encoding_rs::UTF_8, bom));
        let o = try_import_bytes(&dir, "bad.jsonl", &bytes, &[]).unwrap();
        assert_eq!((o.report.rows, o.report.encoding_damaged), (1500 + BAD.len(), BAD.len()));
        let out = std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap();
        let users: Vec<String> = out
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["messages"][0]["content"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(users[0], "how do I sync note 0?");
        assert_eq!(users[1500..], inputs[..]);
    }
}

/// JSON Lines are parsed in parallel batches after the detection's sample: the error reported
/// is still the first one in the file, and nothing is left behind.
#[test]
fn the_first_bad_line_is_reported_after_parallel_parsing() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 1..=6000 {
        text += &match i {
            2500 => "{\"prompt\": \"q\" \"completion\": \"a\"}\n".to_string(),
            2600 => "[1, 2]\n".to_string(),
            5000 => format!("{{\"prompt\": \"{}\"}}\n", "x".repeat(17 << 20)),
            _ => format!("{{\"prompt\": \"question {i}\", \"completion\": \"answer {i}\"}}\n"),
        };
    }
    let error = |text: &str| try_import(&dir, "late.jsonl", text, &[]).unwrap_err().to_string();
    let e = error(&text);
    assert!(e.ends_with("late.jsonl:2500: expected `,` or `}` at column 16"), "{e}");
    // Only the source is left.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    // Without the first bad lines, the next one in the file is named.
    let text = text.replace("{\"prompt\": \"q\" \"completion\": \"a\"}\n", "{}\n");
    let e = error(&text);
    assert!(e.ends_with("late.jsonl:2600: expected a JSON object, found an array"), "{e}");
    let text = text.replace("[1, 2]\n", "{}\n");
    let e = error(&text);
    assert!(
        e.ends_with(
            "late.jsonl:5000: this row is longer than 16 MiB: is this really a dataset row?"
        ),
        "{e}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

/// Batches are measured several at a time, and a short batch after a long one is done first:
/// the error reported is still the one earlier in the file, and the rows are kept in order.
#[test]
fn an_earlier_batch_wins_over_one_measured_first() {
    let dir = tempfile::tempdir().unwrap();
    let long = "word ".repeat(4000);
    let row = |i: usize, text: &str| {
        format!("{{\"prompt\": \"question {i} {text}\", \"completion\": \"answer {i}\"}}\n")
    };
    // Rows 1–256 are the first batch, rows 257–2304 the second (long rows), then short ones;
    // row 5000 repeats row 10 (found while the batches between are measured).
    let text: String = (1..=8000)
        .map(|i| match i {
            5000 => row(10, ""),
            257..=2304 => row(i, &long),
            _ => row(i, ""),
        })
        .collect();
    let (outcome, out) = import(&dir, "order.jsonl", &text, &[]);
    assert_eq!((outcome.report.rows, outcome.report.duplicates), (8000, 1));
    let repeat = outcome.worst.iter().find(|p| p.row == 5000).map(|p| p.reasons.clone());
    assert_eq!(repeat, Some(vec!["duplicate of row 10".to_string()]));
    let firsts: Vec<String> = out
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let user = v["messages"][0]["content"].as_str().unwrap().to_string();
            user.split(' ').take(2).collect::<Vec<_>>().join(" ")
        })
        .collect();
    let expected: Vec<String> =
        (1..=8000).map(|i| format!("question {}", if i == 5000 { 10 } else { i })).collect();
    assert_eq!(firsts, expected);
    // The last long row and the first short one are both bad: the long one is named.
    let bad = |t: &str, i: usize| {
        t.replacen(&format!("\"question {i} "), &format!("\"question {i} \" "), 1)
    };
    let text = bad(&bad(&text, 2304), 2305);
    let e = try_import(&dir, "order.jsonl", &text, &[]).unwrap_err().to_string();
    assert!(e.contains("order.jsonl:2304: "), "{e}");
}
