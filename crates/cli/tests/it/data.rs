//! `vibeflow data …` and `train -p`: datasets imported, reported, fixed, split, versioned and
//! trained on, through the binary, with the real default model's tokenizer.

use crate::Home;

/// A support export as users have them: distractor columns, a quoted newline, a duplicate, an
/// empty reply, a row in German, a row without text.
const SUPPORT: &str = "ticket_id,created_at,customer_message,support_reply,channel
1001,2024-05-01T10:00:00Z,\"I can't log in, can you help?\",\"Sorry about that! Reset your password from Settings > Security.\",email
1002,2024-05-01T11:30:00Z,Where is my invoice?,\"Invoices are under Billing > History; each has a PDF link.\",chat
1003,2024-05-01T11:31:00Z,Where is my invoice?,\"Invoices are under Billing > History; each has a PDF link.\",chat
1004,2024-05-02T09:00:00Z,Can I export my notes?,,email
1005,2024-05-02T09:10:00Z,Wie kann ich mein Abonnement kündigen?,\"Du kannst dein Abonnement jederzeit unter Konto > Abonnement kündigen.\",email
1006,2024-05-02T09:20:00Z,???,???,chat
1007,2024-05-03T14:00:00Z,\"Does sync work
offline?\",\"Yes. Changes made offline sync as soon as you reconnect.\",chat
1008,2024-05-03T15:00:00Z,How do I share a notebook?,\"Open the notebook, choose Share and enter your colleague's email address.\",chat
";

fn project(home: &Home) -> &'static str {
    home.ok(&["project", "new", "Support Bot"]);
    "support-bot"
}

#[test]
fn import_report_fix_split_and_versions() {
    let Some(home) = Home::with_default_model() else { return };
    let p = project(&home);
    let file = home.path().join("tickets.csv");
    std::fs::write(&file, SUPPORT).unwrap();
    let f = file.to_str().unwrap();
    let d = home.json(&["data", "import", f, "-p", p, "--json"]);
    assert_eq!(d["detection"]["mapping"], "'customer_message' → user, 'support_reply' → assistant");
    assert!(d["detection"]["confidence"].as_f64().unwrap() >= 0.9);
    let unused: Vec<&str> = d["detection"]["unused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["column"].as_str().unwrap())
        .collect();
    assert_eq!(unused, ["ticket_id", "created_at", "channel"]);
    let r = &d["report"];
    assert_eq!(r["rows"], 8);
    assert_eq!((r["missing_output"].as_u64(), r["duplicates"].as_u64()), (Some(1), Some(1)));
    assert_eq!((r["no_text"].as_u64(), r["language_mismatches"].as_u64()), (Some(1), Some(1)));
    assert_eq!(r["language"]["code"], "eng");
    // Token lengths come from SmolLM2's tokenizer: its template adds a default system prompt, so
    // even the shortest row is longer than its words.
    let total = &r["tokens"]["total"];
    assert!(total["p50"].as_u64().unwrap() > 30, "{total}");
    assert_eq!(r["tokens"]["context"], 8192);
    assert_eq!(d["split"]["test"], 2);
    assert_eq!(d["version"], 1);
    let jsonl =
        std::fs::read_to_string(home.path().join("projects/support-bot/data/tickets.jsonl"))
            .unwrap();
    assert_eq!(jsonl.lines().count(), 8);
    assert!(jsonl.contains(r#"{"role":"user","content":"Does sync work\noffline?"}"#), "{jsonl}");

    // Text output: mapping, issues and fixes.
    let text = home.ok(&["data", "report", "-p", p]);
    assert!(text.contains("Mapping: 'customer_message' → user"), "{text}");
    assert!(text.contains("vibeflow data fix -p support-bot --drop-duplicates"), "{text}");

    // Importing the same file again changes nothing; a changed file is a new version.
    let again = home.json(&["data", "import", f, "-p", p, "--json"]);
    assert_eq!((again["changed"].as_bool(), again["version"].as_u64()), (Some(false), Some(1)));
    std::fs::write(&file, format!("{SUPPORT}1009,2024-05-04T08:00:00Z,Is there a dark theme?,Yes: Settings > Appearance > Dark.,chat\n")).unwrap();
    let v2 = home.json(&["data", "import", f, "-p", p, "--json"]);
    assert_eq!((v2["version"].as_u64(), v2["kept"].as_u64()), (Some(2), Some(9)));

    let fixed = home.json(&[
        "data",
        "fix",
        "-p",
        p,
        "--drop-missing",
        "--drop-duplicates",
        "--language",
        "eng",
        "--min-score",
        "60",
        "--json",
    ]);
    assert_eq!(
        (fixed["version"].as_u64(), fixed["kept"].as_u64(), fixed["dropped"].as_u64()),
        (Some(3), Some(5), Some(4))
    );
    assert_eq!(fixed["result"]["duplicates"], 0);
    // A fix keeps what the import saw.
    assert_eq!(fixed["detection"]["unused"], v2["detection"]["unused"]);
    let manifest =
        std::fs::read_to_string(home.path().join("projects/support-bot/data/tickets.toml"))
            .unwrap();
    assert!(manifest.contains("[[transforms]]\nkind = \"drop_missing\""), "{manifest}");
    assert!(manifest.contains("kind = \"drop_below_score\"\nmin = 60"), "{manifest}");

    let split =
        home.json(&["data", "split", "-p", p, "--test-fraction", "0.4", "--seed", "7", "--json"]);
    assert_eq!((split["version"].as_u64(), split["split"]["test"].as_u64()), (Some(4), Some(2)));

    let list = home.json(&["data", "list", "-p", p, "--json"]);
    let versions: Vec<(u64, u64, bool)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["version"].as_u64().unwrap(),
                d["rows"].as_u64().unwrap(),
                d["current"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(versions, [(1, 8, false), (2, 9, false), (3, 5, false), (4, 5, true)]);
    let history = home.ok(&["history", "-p", p]);
    for expected in [
        "Import dataset tickets v1 from tickets.csv: 8 rows",
        "Import dataset tickets v2 from tickets.csv: 9 rows",
        "Fix dataset tickets v3 from tickets.csv: 5 rows (4 dropped",
        "Split dataset tickets v4: 3 train / 2 test (seed 7)",
    ] {
        assert!(history.contains(expected), "{expected}\n{history}");
    }
}

#[test]
fn uncertain_mapping_must_be_confirmed() {
    let Some(home) = Home::with_default_model() else { return };
    let p = project(&home);
    let file = home.path().join("pairs.tsv");
    std::fs::write(&file, "a\tb\nWhat is two plus two?\tTwo plus two is four.\nName a primary colour?\tRed is a primary colour.\n").unwrap();
    let f = file.to_str().unwrap();
    let e = home.err(&["data", "import", f, "-p", p]);
    assert!(e.starts_with("error: not sure which columns to train on (45 % sure): the best guess is 'a' → user, 'b' → assistant"), "{e}");
    assert!(e.ends_with("confirm with --input COL --output COL [--system COL]"), "{e}");
    assert!(!home.path().join("projects/support-bot/data").exists());
    let d = home.json(&["data", "import", f, "-p", p, "--input", "a", "--output", "b", "--json"]);
    assert_eq!(d["detection"]["confirmed"], true);
    let fixed = home.json(&["data", "fix", "-p", p, "--drop-duplicates", "--json"]);
    assert_eq!(
        (fixed["detection"]["confirmed"].as_bool(), fixed["version"].as_u64()),
        (Some(true), Some(2))
    );
    let e = home.err(&["data", "import", f, "-p", p, "--input", "a", "--output", "c"]);
    assert!(e.ends_with("no column 'c': the columns are a, b"), "{e}");
}

#[test]
fn bad_files_are_one_line_errors_and_leave_nothing() {
    let Some(home) = Home::with_default_model() else { return };
    let p = project(&home);
    let write = |name: &str, bytes: &[u8]| {
        let path = home.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_string()
    };
    let mut late = String::from("question,answer\n");
    for i in 0..3000 {
        late += &format!("Question {i}?,Answer {i}.\n");
    }
    late += "one field only\n";
    let cases = [
        (write("late.csv", late.as_bytes()), "late.csv:3002: this row has 1 fields, the header has 2"),
        (write("empty.jsonl", b""), "empty.jsonl: the file is empty: nothing to import"),
        (write("bin.csv", b"GIF89a\0\0\x01"), "bin.csv: this looks like a binary file"),
        (write("bad.jsonl", b"{\"prompt\": \"a\", \"completion\": \"b\"}\n{\"prompt\": \"c\" \"completion\": \"d\"}\n"), "bad.jsonl:2: expected `,` or `}` at column 16"),
        (write("notext.csv", b"id,score\n1,2\n"), "notext.csv: need two text columns"),
    ];
    for (file, expected) in &cases {
        let e = home.err(&["data", "import", file, "-p", p]);
        assert!(e.contains(expected), "{file}: {e}");
    }
    let mut big = b"{\"prompt\": \"".to_vec();
    big.resize(50 << 20, b'x');
    let e = home.err(&["data", "import", &write("big.jsonl", &big), "-p", p]);
    assert!(
        e.ends_with("big.jsonl:1: this row is longer than 16 MiB: is this really a dataset row?"),
        "{e}"
    );
    // Nothing half-written: no data folder, no dataset row, one commit.
    assert!(!home.path().join("projects/support-bot/data").exists());
    assert_eq!(home.json(&["data", "list", "-p", p, "--json"]), serde_json::json!([]));
    assert_eq!(home.json(&["history", "-p", p, "--json"]).as_array().unwrap().len(), 1);
}

#[test]
fn sample_datasets_import_offline_without_confirmation() {
    let Some(home) = Home::with_default_model() else { return };
    let p = project(&home);
    let samples = home.json(&["data", "samples", "--json"]);
    let samples = samples.as_array().unwrap();
    assert!(samples.len() >= 3, "{samples:?}");
    for s in samples {
        let id = s["id"].as_str().unwrap();
        let d = home.json(&["data", "import", "--sample", id, "-p", p, "--json"]);
        assert!(d["detection"]["confidence"].as_f64().unwrap() >= 0.6, "{id}: {}", d["detection"]);
        assert_eq!(d["report"]["rows"], s["rows"], "{id}");
        assert_eq!(d["report"]["duplicates"], 0, "{id}");
        assert_eq!(
            d["report"]["missing_input"].as_u64().unwrap()
                + d["report"]["missing_output"].as_u64().unwrap(),
            0,
            "{id}"
        );
        assert_eq!(d["report"]["language"]["code"], "eng", "{id}");
        assert_eq!(d["source"]["format"], s["format"], "{id}");
    }
}

#[test]
fn train_on_the_project_dataset_records_a_run() {
    let Some(home) = Home::with_default_model() else { return };
    let p = project(&home);
    let file = home.path().join("tickets.csv");
    std::fs::write(&file, SUPPORT).unwrap();
    home.ok(&["data", "import", file.to_str().unwrap(), "-p", p]);
    home.ok(&["data", "fix", "-p", p, "--drop-missing", "--min-score", "60"]);
    let last = |args: &[&str]| -> serde_json::Value {
        let text = home.ok(args);
        serde_json::from_str(text.lines().last().unwrap()).unwrap()
    };
    let run = last(&[
        "train",
        "-p",
        p,
        "--steps",
        "2",
        "--batch",
        "2",
        "--checkpoint-every",
        "1",
        "--json",
    ]);
    assert_eq!(
        (run["id"].as_str(), run["status"].as_str(), run["dataset_version"].as_u64()),
        (Some("run-1"), Some("done"), Some(2))
    );
    assert_eq!(run["summary"]["steps"], 2);
    let dir = home.path().join("projects/support-bot/runs/run-1");
    let toml = std::fs::read_to_string(dir.join("run.toml")).unwrap();
    assert!(toml.contains("name = \"tickets\"\nversion = 2"), "{toml}");
    assert!(toml.contains("adapter_sha256 = \""), "{toml}");
    assert!(toml.contains("device = \"cpu\""), "where it ran: {toml}");
    assert!(dir.join("adapter/adapter_model.safetensors").is_file());
    let history = home.ok(&["history", "-p", p]);
    assert!(history.contains("Train run-1 on tickets v2 (done, 2 steps)"), "{history}");
    // Weights stay out of git; the run's config and adapter_config.json are in it.
    let repo = home.path().join("projects/support-bot");
    let tracked =
        std::process::Command::new("git").args(["ls-files"]).current_dir(&repo).output().unwrap();
    let tracked = String::from_utf8_lossy(&tracked.stdout);
    assert!(
        tracked.contains("runs/run-1/run.toml")
            && tracked.contains("runs/run-1/adapter/adapter_config.json"),
        "{tracked}"
    );
    assert!(!tracked.contains(".safetensors"), "{tracked}");
    // A finished run has nothing to resume.
    let e = home.err(&["train", "-p", p, "--resume", "run-1"]);
    assert!(e.contains("run 'run-1' is done (2 steps): there is nothing to resume"), "{e}");
}

#[test]
fn large_datasets_go_to_objects_and_only_the_manifest_to_git() {
    let Some(home) = Home::with_default_model() else { return };
    let p = project(&home);
    let file = crate::hardening::big_file(&home);
    let d = home.json(&["data", "import", file.to_str().unwrap(), "-p", p, "--json"]);
    assert_eq!((d["stored"].as_str(), d["kept"].as_u64()), (Some("objects"), Some(9000)));
    let sha = d["sha256"].as_str().unwrap();
    let object = home.path().join("objects/sha256").join(&sha[..2]).join(&sha[2..]);
    assert!(object.metadata().unwrap().len() > 8 << 20);
    let repo = home.path().join("projects/support-bot");
    assert!(!repo.join("data/big.jsonl").exists());
    let tracked =
        std::process::Command::new("git").args(["ls-files"]).current_dir(&repo).output().unwrap();
    let tracked = String::from_utf8_lossy(&tracked.stdout).to_string();
    assert!(tracked.contains("data/big.toml") && !tracked.contains("data/big.jsonl"), "{tracked}");
    // Training reads it from objects/, checked against the manifest's hash.
    // SmolLM2's template adds a ~30-token system prompt: 32 tokens leave no reply to learn.
    let e = home.err(&["train", "-p", p, "--steps", "1", "--max-len", "32", "--eval-rows", "4"]);
    assert!(
        e.ends_with("every example is cut at max_len 32 before its reply starts: raise --max-len"),
        "{e}"
    );
    let text = home.ok(&[
        "train",
        "-p",
        p,
        "--steps",
        "1",
        "--batch",
        "1",
        "--max-len",
        "80",
        "--eval-rows",
        "4",
        "--json",
    ]);
    let run: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(run["status"], "done");
    std::fs::write(&object, "tampered").unwrap();
    let e = home.err(&["train", "-p", p, "--steps", "1", "--eval-rows", "4"]);
    assert!(e.contains("differs from the manifest's hash"), "{e}");
}
