//! Bad input: one located line each, nothing half-written.

use crate::{Words, file, records};

fn check(name: &str, bytes: &[u8], expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let p = file(&dir, name, bytes);
    let err = records(&p).map(|r| r.len()).unwrap_err().to_string();
    let err = err.replace(&format!("{}", dir.path().display()), "DIR");
    assert_eq!(err, expected);
}

#[test]
fn malformed_jsonl_names_line_and_column() {
    let mut text = String::new();
    for i in 1..17 {
        text += &format!("{{\"prompt\": \"q{i}\", \"completion\": \"a{i}\"}}\n");
    }
    text += "{\"prompt\": \"q17\", \"completion\": \"a17\" \"extra\": 1}\n";
    check("bad.jsonl", text.as_bytes(), "DIR/bad.jsonl:17: expected `,` or `}` at column 39");
}

#[test]
fn ragged_csv_row_names_its_line() {
    check(
        "ragged.csv",
        b"question,answer\n\"a\",\"b\"\n\"multi\nline\",\"x\"\nonly one field\n",
        "DIR/ragged.csv:5: this row has 1 fields, the header has 2",
    );
}

#[test]
fn empty_binary_and_not_json() {
    check("empty.csv", b"", "DIR/empty.csv: the file is empty: nothing to import");
    check("blank.jsonl", b" \n\n \t\n", "DIR/blank.jsonl: the file is empty: nothing to import");
    check(
        "image.csv",
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR",
        "DIR/image.csv: this looks like a binary file (a NUL byte at offset 8), not CSV, TSV, JSON, JSONL or Parquet",
    );
    check(
        "a.json",
        b"hello",
        "DIR/a.json: expected JSON (an array of objects, or one object per line): the file starts with neither '[' nor '{'",
    );
    check("arr.json", b"[1, 2]", "DIR/arr.json: item 1: expected a JSON object, found a number");
    check(
        "cut.json",
        b"[{\"a\": 1}, {\"a\":",
        "DIR/cut.json:1: EOF while parsing a value (the JSON ends too early)",
    );
    check(
        "bad.parquet",
        b"PAR1 not really",
        "DIR/bad.parquet: not a readable Parquet file (Invalid Parquet file. Corrupt footer)",
    );
}

#[test]
fn a_50_mb_single_line() {
    let mut big = b"{\"prompt\": \"".to_vec();
    big.resize(50 << 20, b'a');
    check(
        "big.jsonl",
        &big,
        "DIR/big.jsonl:1: this row is longer than 16 MiB: is this really a dataset row?",
    );
    let mut csv = b"prompt,completion\n".to_vec();
    csv.resize(50 << 20, b'b');
    check(
        "big.csv",
        &csv,
        "DIR/big.csv:2: this row is longer than 16 MiB: is this really a dataset row?",
    );
}

#[test]
fn pipeline_leaves_nothing_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("question,answer\n");
    for i in 0..5000 {
        text += &format!("q{i}?,a{i}\n");
    }
    text += "broken\n";
    let p = file(&dir, "late.csv", text.as_bytes());
    let sniffed = data::read::sniff(&p).unwrap();
    let (cols, sample) = data::pipeline::sample(&p, &sniffed).unwrap();
    let detection = data::shape::detect(&cols, &sample).unwrap();
    let out = dir.path().join("out.jsonl");
    let opts = data::pipeline::Options {
        detection: &detection,
        transforms: &[],
        tokens: &Words,
        quality: data::quality::Config { context: 8192, cutoff: 512, expected_language: None },
        on_rows: None,
    };
    let err = data::pipeline::run(&p, &sniffed, &opts, &out).unwrap_err().to_string();
    assert!(err.ends_with("late.csv:5002: this row has 1 fields, the header has 2"), "{err}");
    let left: Vec<_> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["late.csv"]);
}

/// An import told to stop stops at the next batch, says so and leaves nothing behind.
#[test]
fn pipeline_stops_when_asked_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("question,answer\n");
    for i in 0..20_000 {
        text += &format!("question {i}?,answer {i}\n");
    }
    let p = file(&dir, "big.csv", text.as_bytes());
    let sniffed = data::read::sniff(&p).unwrap();
    let (cols, sample) = data::pipeline::sample(&p, &sniffed).unwrap();
    let detection = data::shape::detect(&cols, &sample).unwrap();
    let seen = std::sync::Mutex::new(Vec::new());
    let on_rows = |n: usize| {
        seen.lock().unwrap().push(n);
        n < 5000
    };
    let opts = data::pipeline::Options {
        detection: &detection,
        transforms: &[],
        tokens: &Words,
        quality: data::quality::Config { context: 8192, cutoff: 512, expected_language: None },
        on_rows: Some(&on_rows),
    };
    let err = data::pipeline::run(&p, &sniffed, &opts, &dir.path().join("out.jsonl")).unwrap_err();
    assert!(matches!(err, data::Error::Cancelled), "{err}");
    // Told after the small first batch, then after each full one, until it said stop.
    assert_eq!(*seen.lock().unwrap(), [256, 2304, 4352, 6400]);
    let left: Vec<_> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["big.csv"]);
}

/// A file with a header (or brackets) and no row: a one-line error, nothing left behind.
#[test]
fn pipeline_reports_a_file_without_rows() {
    let dir = tempfile::tempdir().unwrap();
    let one = file(&dir, "one.csv", b"question,answer\nq?,a\n");
    let sniffed = data::read::sniff(&one).unwrap();
    let (cols, sample) = data::pipeline::sample(&one, &sniffed).unwrap();
    let detection = data::shape::detect(&cols, &sample).unwrap();
    std::fs::remove_file(&one).unwrap();
    let opts = data::pipeline::Options {
        detection: &detection,
        transforms: &[],
        tokens: &Words,
        quality: data::quality::Config { context: 8192, cutoff: 512, expected_language: None },
        on_rows: None,
    };
    for (name, text) in [("empty.csv", "question,answer\n"), ("empty.json", "[]")] {
        let p = file(&dir, name, text.as_bytes());
        let sniffed = data::read::sniff(&p).unwrap();
        let err = data::pipeline::run(&p, &sniffed, &opts, &dir.path().join("out.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("no rows: the file has a header or brackets but no data"), "{err}");
        let left: Vec<_> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, [name]);
        std::fs::remove_file(&p).unwrap();
    }
}

#[test]
fn fuzz_bodies_survive_seeds_and_mangled_seeds() {
    let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let mut n = 0;
    for dir in std::fs::read_dir(seeds).unwrap() {
        let dir = dir.unwrap().path();
        let ext = dir.file_name().unwrap().to_str().unwrap().to_string();
        for f in std::fs::read_dir(&dir).unwrap() {
            let bytes = std::fs::read(f.unwrap().path()).unwrap();
            data::fuzz_one(&format!("x.{ext}"), &bytes);
            // Every prefix, and every byte flipped in turn: the shapes a crash hides in.
            for cut in 0..bytes.len().min(400) {
                data::fuzz_one(&format!("x.{ext}"), &bytes[..cut]);
                let mut b = bytes.clone();
                b[cut] ^= 0x5a;
                data::fuzz_one(&format!("x.{ext}"), &b);
                n += 2;
            }
        }
    }
    assert!(n > 1000, "{n}");
}
