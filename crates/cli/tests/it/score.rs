//! `vibeflow score`: metrics over two JSON Lines files paired by id, and the errors that name
//! the file and line.

use std::path::PathBuf;

use crate::Home;

fn write(home: &Home, name: &str, text: &str) -> String {
    let path: PathBuf = home.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn score(home: &Home, preds: &str, refs: &str) -> Vec<String> {
    let p = write(home, "preds.jsonl", preds);
    let r = write(home, "refs.jsonl", refs);
    vec!["score".into(), "--predictions".into(), p, "--references".into(), r]
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn good_files_give_metrics_as_json_and_a_table() {
    let home = Home::new();
    let cmd = score(
        &home,
        "{\"id\": 2, \"text\": \"The capital is Paris.\"}\n{\"id\": \"1\", \"text\": \"yes\"}\n",
        "{\"id\": 1, \"text\": \"Yes\"}\n\n{\"id\": \"2\", \"text\": \"Paris is the capital.\"}\n",
    );
    let mut json = args(&cmd);
    json.push("--json");
    let m = home.json(&json);
    assert_eq!(m["count"], 2);
    assert_eq!(m["exact_match"], 0.5, "{m}");
    assert_eq!(m["f1"], 1.0, "the same tokens in another order: {m}");
    assert_eq!(m["bleu"]["sys_len"], 6);
    assert_eq!(m["bleu"]["ref_len"], 6);
    assert_eq!(m["length_band"], "ideal");
    assert!(m["labels"].is_null() && m["perplexity"].is_null(), "{m}");

    let mut labels = json.clone();
    labels.push("--labels");
    let m = home.json(&labels);
    assert_eq!(m["labels"]["declared"], true);
    assert_eq!(m["labels"]["accuracy"], 0.5);

    let text = home.ok(&args(&cmd));
    assert!(text.contains("Exact match     50.0 %") && text.contains("BLEU"), "{text}");
}

#[test]
fn mismatched_ids_are_named() {
    let home = Home::new();
    let cmd = score(
        &home,
        "{\"id\": 1, \"text\": \"a\"}\n{\"id\": 3, \"text\": \"c\"}\n",
        "{\"id\": 1, \"text\": \"a\"}\n{\"id\": 2, \"text\": \"b\"}\n",
    );
    let e = home.err(&args(&cmd));
    assert!(
        e.contains("the files' ids differ")
            && e.contains("preds.jsonl has no prediction for 1 id (\"2\")")
            && e.contains("refs.jsonl has no reference for 1 id (\"3\")"),
        "{e}"
    );
}

#[test]
fn an_empty_file_is_an_error() {
    let home = Home::new();
    let cmd = score(&home, "{\"id\": 1, \"text\": \"a\"}\n", "\n  \n");
    let e = home.err(&args(&cmd));
    assert!(
        e.ends_with("refs.jsonl: no lines: expected one {\"id\": …, \"text\": …} object per line"),
        "{e}"
    );
}

#[test]
fn a_malformed_line_is_located() {
    let home = Home::new();
    let ok = "{\"id\": 1, \"text\": \"a\"}\n";
    let cmd = score(&home, &format!("{ok}{{\"id\": 2, \"text\": \n"), ok);
    let e = home.err(&args(&cmd));
    assert!(e.contains("preds.jsonl:2: "), "{e}");
    let cmd = score(&home, &format!("{ok}{{\"id\": 2}}\n"), ok);
    let e = home.err(&args(&cmd));
    assert!(e.contains("preds.jsonl:2: no \"text\""), "{e}");
    let cmd = score(&home, &format!("{ok}{ok}"), ok);
    let e = home.err(&args(&cmd));
    assert!(e.contains("preds.jsonl:2: id \"1\" again (first on line 1)"), "{e}");
}
