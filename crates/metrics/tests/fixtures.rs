//! The crate against the Python packages it imitates: fixtures written by
//! `scripts/reference/metrics.py` (sacrebleu 2.6.0, rouge-score 0.1.2, scikit-learn 1.9.1,
//! SQuAD's `normalize_answer`, the ratings' reference). Counts must be equal, scores within 1e-6.

use api::eval::{Battle, Bleu, Metrics, Overall, Rating, Rouge};
use serde_json::Value;

const TOLERANCE: f64 = 1e-6;

fn fixture(text: &str) -> Value {
    serde_json::from_str(text).expect("fixture parses")
}

fn close(what: &str, got: f64, want: f64) {
    assert!((got - want).abs() <= TOLERANCE, "{what}: got {got}, want {want}");
}

fn close_rouge(what: &str, got: Rouge, want: &Value) {
    let want: Rouge = serde_json::from_value(want.clone()).unwrap();
    close(&format!("{what} precision"), got.precision, want.precision);
    close(&format!("{what} recall"), got.recall, want.recall);
    close(&format!("{what} f1"), got.f1, want.f1);
}

fn check_bleu(what: &str, got: &Bleu, want: &Value) {
    let want: Bleu = serde_json::from_value(want.clone()).unwrap();
    assert_eq!(
        (got.counts, got.totals, got.sys_len, got.ref_len),
        (want.counts, want.totals, want.sys_len, want.ref_len),
        "{what}: BLEU statistics"
    );
    close(&format!("{what}: BLEU"), got.score, want.score);
    close(&format!("{what}: BP"), got.bp, want.bp);
    for n in 0..4 {
        close(&format!("{what}: precision {}", n + 1), got.precisions[n], want.precisions[n]);
    }
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap()
}

#[test]
fn examples() {
    let cases = fixture(include_str!("fixtures/examples.json"));
    for case in cases.as_array().unwrap() {
        let (pred, reference) = (str_of(&case["pred"]), str_of(&case["ref"]));
        let what = format!("{pred:?} / {reference:?}");
        assert_eq!(metrics::normalize_answer(pred), str_of(&case["normalized_pred"]), "{what}");
        assert_eq!(metrics::normalize_answer(reference), str_of(&case["normalized_ref"]), "{what}");
        assert_eq!(metrics::tokenize_13a(pred), str_of(&case["tok13a_pred"]), "{what}");
        assert_eq!(metrics::tokenize_13a(reference), str_of(&case["tok13a_ref"]), "{what}");
        let tokens = |v: &Value| -> Vec<String> { serde_json::from_value(v.clone()).unwrap() };
        assert_eq!(metrics::rouge_tokens(pred), tokens(&case["rouge_tokens_pred"]), "{what}");
        assert_eq!(metrics::rouge_tokens(reference), tokens(&case["rouge_tokens_ref"]), "{what}");

        let t = metrics::token_scores(pred, reference);
        close(&format!("{what} precision"), t.precision, case["precision"].as_f64().unwrap());
        close(&format!("{what} recall"), t.recall, case["recall"].as_f64().unwrap());
        close(&format!("{what} f1"), t.f1, case["f1"].as_f64().unwrap());

        let r = metrics::rouge(pred, reference);
        close_rouge(&format!("{what} rouge1"), r.rouge1, &case["rouge"]["rouge1"]);
        close_rouge(&format!("{what} rouge2"), r.rouge2, &case["rouge"]["rouge2"]);
        close_rouge(&format!("{what} rougeL"), r.rouge_l, &case["rouge"]["rougeL"]);

        check_bleu(&what, &metrics::corpus_bleu(&[pred], &[reference]), &case["sentence_bleu"]);

        let e = metrics::example(pred, reference);
        assert_eq!(e.exact, case["exact"].as_bool().unwrap(), "{what}");
        close(&format!("{what} example f1"), e.f1, t.f1);
        close(&format!("{what} example rougeL"), e.rouge_l, r.rouge_l.f1);
    }
}

#[test]
fn corpora() {
    let corpora = fixture(include_str!("fixtures/corpora.json"));
    for corpus in corpora.as_array().unwrap() {
        let name = str_of(&corpus["name"]);
        let strings = |v: &Value| -> Vec<String> { serde_json::from_value(v.clone()).unwrap() };
        let (preds, refs) = (strings(&corpus["preds"]), strings(&corpus["refs"]));
        let preds: Vec<&str> = preds.iter().map(String::as_str).collect();
        let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
        let got = metrics::score(&preds, &refs, corpus["labels"].as_bool());
        let want: Metrics = serde_json::from_value(corpus["metrics"].clone()).unwrap();

        assert_eq!(got.count, want.count, "{name}");
        close(&format!("{name}: exact match"), got.exact_match, want.exact_match);
        close(&format!("{name}: precision"), got.precision, want.precision);
        close(&format!("{name}: recall"), got.recall, want.recall);
        close(&format!("{name}: f1"), got.f1, want.f1);
        check_bleu(name, &got.bleu, &corpus["metrics"]["bleu"]);
        close_rouge(&format!("{name}: rouge1"), got.rouge1, &corpus["metrics"]["rouge1"]);
        close_rouge(&format!("{name}: rouge2"), got.rouge2, &corpus["metrics"]["rouge2"]);
        close_rouge(&format!("{name}: rougeL"), got.rouge_l, &corpus["metrics"]["rouge_l"]);
        close(&format!("{name}: length ratio"), got.length_ratio, want.length_ratio);
        assert_eq!(got.length_band, want.length_band, "{name}");
        assert_eq!(got.perplexity, None);
        match (&got.labels, &want.labels) {
            (Some(g), Some(w)) => {
                assert_eq!((&g.classes, g.declared), (&w.classes, w.declared), "{name}");
                close(&format!("{name}: label accuracy"), g.accuracy, w.accuracy);
                close(&format!("{name}: macro-F1"), g.macro_f1, w.macro_f1);
            }
            (g, w) => assert_eq!(g.is_none(), w.is_none(), "{name}: labels {g:?} vs {w:?}"),
        }

        for case in corpus["overall"].as_array().unwrap() {
            let judge = case["judge_average"].as_f64();
            let what = format!("{name}, judge {judge:?}");
            let got = metrics::overall(&got, judge);
            let want: Overall = serde_json::from_value(case["overall"].clone()).unwrap();
            close(&format!("{what}: score"), got.score, want.score);
            close(&format!("{what}: accuracy"), got.accuracy, want.accuracy);
            close(&format!("{what}: length"), got.length, want.length);
            assert_eq!(got.judge.is_some(), want.judge.is_some(), "{what}");
            close(&format!("{what}: judge"), got.judge.unwrap_or(0.0), want.judge.unwrap_or(0.0));
            assert_eq!(got.gate, want.gate, "{what}");
        }
    }
}

#[test]
fn label_detection() {
    let cases = fixture(include_str!("fixtures/detect.json"));
    for case in cases.as_array().unwrap() {
        let refs: Vec<String> = serde_json::from_value(case["refs"].clone()).unwrap();
        let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
        assert_eq!(metrics::detect_labels(&refs), case["labels"].as_bool().unwrap(), "{refs:?}");
    }
}

#[test]
fn ratings() {
    let fixture = fixture(include_str!("fixtures/ratings.json"));
    for stream in fixture["splitmix"].as_array().unwrap() {
        let mut rng = metrics::SplitMix64::new(stream["seed"].as_u64().unwrap());
        let first: Vec<u64> = (0..4).map(|_| rng.next_u64()).collect();
        let below: Vec<u64> = (0..8).map(|_| rng.below(10)).collect();
        assert_eq!(first, serde_json::from_value::<Vec<u64>>(stream["first"].clone()).unwrap());
        assert_eq!(below, serde_json::from_value::<Vec<u64>>(stream["below_10"].clone()).unwrap());
    }
    for case in fixture["cases"].as_array().unwrap() {
        let name = str_of(&case["name"]);
        let battles: Vec<Battle> = serde_json::from_value(case["battles"].clone()).unwrap();
        let bt: Vec<(String, f64)> = serde_json::from_value(case["bradley_terry"].clone()).unwrap();
        let got = metrics::bradley_terry(&battles);
        assert_eq!(got.len(), bt.len(), "{name}");
        for ((model, elo), (want_model, want_elo)) in got.iter().zip(&bt) {
            assert_eq!(model, want_model, "{name}");
            close(&format!("{name}: {model}"), *elo, *want_elo);
        }

        let rounds = case["rounds"].as_u64().unwrap() as usize;
        let got = metrics::ratings(&battles, rounds, case["seed"].as_u64().unwrap());
        let want: Vec<Rating> = serde_json::from_value(case["ratings"].clone()).unwrap();
        assert_eq!(got.len(), want.len(), "{name}");
        for (g, w) in got.iter().zip(&want) {
            let what = format!("{name}: {}", w.model);
            assert_eq!(
                (&g.model, g.wins, g.losses, g.ties),
                (&w.model, w.wins, w.losses, w.ties),
                "{what}"
            );
            close(&format!("{what} elo"), g.elo, w.elo);
            close(&format!("{what} low"), g.low, w.low);
            close(&format!("{what} high"), g.high, w.high);
            close(&format!("{what} win rate"), g.win_rate, w.win_rate);
        }
    }
}
