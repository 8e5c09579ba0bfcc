use data::shape::{Mapping, detect};
use serde_json::{Map, Value, json};

fn rows(v: Value) -> Vec<Map<String, Value>> {
    v.as_array().unwrap().iter().map(|r| r.as_object().unwrap().clone()).collect()
}

fn cols(c: &[&str]) -> Vec<String> {
    c.iter().map(|s| s.to_string()).collect()
}

#[test]
fn names_pick_input_and_output_and_distractors_are_unused() {
    let sample = rows(json!([
        {"ticket_id": "1001", "created_at": "2024-05-01T10:00:00Z", "customer_message": "I can't log in, can you help?", "support_reply": "Sorry about that! Reset your password from Settings > Security.", "channel": "email"},
        {"ticket_id": "1002", "created_at": "2024-05-01T11:30:00Z", "customer_message": "Where is my invoice?", "support_reply": "Invoices are under Billing > History; each has a PDF link.", "channel": "chat"},
    ]));
    let d = detect(
        &cols(&["ticket_id", "created_at", "customer_message", "support_reply", "channel"]),
        &sample,
    )
    .unwrap();
    assert_eq!(
        d.mapping,
        Mapping::Columns {
            input: "customer_message".into(),
            output: "support_reply".into(),
            system: None
        }
    );
    assert!(d.confidence >= 0.9, "{d:?}");
    let unused: Vec<(&str, &str)> =
        d.unused.iter().map(|u| (u.column.as_str(), u.reason.as_str())).collect();
    assert_eq!(
        unused,
        [
            ("ticket_id", "an identifier: not needed for training"),
            ("created_at", "a date or time: not needed for training"),
            ("channel", "not needed for training"),
        ]
    );
    assert_eq!(d.evidence[0], "input: 'customer_message' (its name says input)");
}

#[test]
fn openai_sharegpt_and_alpaca() {
    let d = detect(&cols(&["messages"]), &rows(json!([{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}]))).unwrap();
    assert_eq!(d.mapping, Mapping::Messages { column: "messages".into() });
    let d = detect(&cols(&["id", "conversations"]), &rows(json!([{"id": 1, "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}]))).unwrap();
    assert_eq!(d.mapping, Mapping::Sharegpt { column: "conversations".into() });
    let row = json!([{"instruction": "Translate to French", "input": "cat", "output": "chat"}]);
    let d = detect(&cols(&["instruction", "input", "output"]), &rows(row.clone())).unwrap();
    assert_eq!(
        d.mapping,
        Mapping::Alpaca {
            instruction: "instruction".into(),
            input: Some("input".into()),
            output: "output".into(),
            system: None
        }
    );
    let conv = d.mapping.conversation(rows(row).remove(0));
    assert_eq!(
        conv.to_line(),
        r#"{"messages":[{"role":"user","content":"Translate to French\n\ncat"},{"role":"assistant","content":"chat"}]}"#
    );
}

#[test]
fn content_cues_alone_are_below_the_threshold() {
    let sample = rows(json!([
        {"a": "What is the capital of France?", "b": "Paris is the capital and largest city of France."},
        {"a": "How many legs has a spider?", "b": "Spiders have eight legs, unlike insects which have six."},
    ]));
    let d = detect(&cols(&["a", "b"]), &sample).unwrap();
    assert_eq!(d.mapping, Mapping::Columns { input: "a".into(), output: "b".into(), system: None });
    assert!(d.confidence < data::thresholds::MIN_CONFIDENCE, "{d:?}");
    assert!(
        d.evidence.iter().any(|e| e.contains("100 % of its values are questions")),
        "{:?}",
        d.evidence
    );
}

#[test]
fn one_text_column_is_an_error() {
    let err =
        detect(&cols(&["id", "text"]), &rows(json!([{"id": 1, "text": "hello"}]))).unwrap_err();
    assert_eq!(err, "need two text columns (an input and an output), found 1: id, text");
}

#[test]
fn confirmed_mapping_is_checked() {
    let c = cols(&["x", "y"]);
    assert_eq!(
        data::shape::confirmed(&c, "x", "z", None).unwrap_err(),
        "no column 'z': the columns are x, y"
    );
    assert_eq!(data::shape::confirmed(&c, "x", "y", None).unwrap().confidence, 1.0);
}
