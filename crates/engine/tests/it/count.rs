//! `tokenizer::count` (pre-token sums, cached) equals the full encoder's length.

use engine::bundle::Chat;
use engine::tokenizer::{count, encode};

#[test]
fn fast_count_equals_encode_len() {
    let Some(gguf) = crate::default_gguf() else { return };
    let chat = Chat::open(&gguf).unwrap();
    // The context comes with the text side, from the same header read.
    let declared = engine::gguf::inspect(&gguf).unwrap().context_length as usize;
    assert_eq!((chat.context, declared), (Some(8192), 8192));
    let texts = [
        "",
        "Hello",
        " leading space and  double  spaces",
        "How do I reset my password? I tried 3 times since 2024-05-01.",
        "Numbers 1234567890 and 3.14159, emoji 🙂👍, accents café naïve Ärger",
        "Code: `fn main() { println!(\"hi\"); }`\n\n\tTabbed\r\nWindows line",
        "中文文本和日本語のテキスト、한국어 텍스트",
        "Special token inside <|im_start|>user text<|im_end|> stays special",
        "repeated repeated repeated repeated words words words",
    ];
    // Twice: the second pass is served from the per-thread cache.
    for _ in 0..2 {
        for t in texts {
            assert_eq!(
                count(&chat.tokenizer, t),
                encode(&chat.tokenizer, t).unwrap().len(),
                "{t:?}"
            );
        }
    }
}

/// Thousands of texts, short and long, mixing letters of several scripts, digits, whitespace
/// of every kind, contractions, punctuation, emoji and special-token look-alikes: the fast
/// count (our pre-token scanner, then the per-thread cache) equals the encoder's length on each.
#[test]
fn fast_count_equals_encode_len_on_mixed_texts() {
    use rand::{Rng, SeedableRng};
    let Some(gguf) = crate::default_gguf() else { return };
    let chat = Chat::open(&gguf).unwrap();
    const PARTS: &[&str] = &[
        "a",
        "the",
        "The",
        " word",
        "  ",
        "   ",
        "\n",
        "\n\n",
        "\t",
        "\r\n",
        " ",
        "\u{a0}",
        "\u{2028}",
        "\u{3000}",
        "'s",
        "'S",
        "'ll",
        "'re",
        "'ve",
        "'d",
        "'m",
        "'t",
        "'x",
        "'",
        "1",
        "42",
        "3.14",
        "²",
        "½",
        "٣",
        "Ⅻ",
        "café",
        "naïve",
        "e\u{301}",
        "Straße",
        "中文",
        "日本語",
        "한국어",
        "Привет",
        "مرحبا",
        "🙂",
        "👍🏽",
        "?!",
        "...",
        "--",
        "(",
        ")",
        "{",
        "\"",
        "<",
        "<|im_end|>",
        "<|im_start|>",
        "$",
        "_",
        "#",
        "\u{0}",
        "\u{7f}",
        "\u{feff}",
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut texts = Vec::new();
    for i in 0..4000 {
        // Every fourth text long: short pieces are looked up a group of 16 behind their scan.
        let len = if i % 4 == 0 { rng.random_range(24..120) } else { rng.random_range(1..24) };
        let text: String = (0..len).map(|_| PARTS[rng.random_range(0..PARTS.len())]).collect();
        let want = encode(&chat.tokenizer, &text).unwrap().len();
        assert_eq!(count(&chat.tokenizer, &text), want, "text {i}: {text:?}");
        texts.push((text, want));
    }
    // Other threads start with empty tables of their own: their misses are served by the
    // shared table (in shards), all at once.
    std::thread::scope(|s| {
        for t in 0..4 {
            let (tok, texts) = (&chat.tokenizer, &texts);
            s.spawn(move || {
                for (i, (text, want)) in texts.iter().enumerate().skip(t) {
                    assert_eq!(count(tok, text), *want, "thread {t}, text {i}: {text:?}");
                }
            });
        }
    });
}

/// Added tokens are matched whole before pre-tokenizing, whatever they start with (the fast
/// path must not split one that lacks a `<`).
#[test]
fn added_tokens_of_any_spelling_take_the_full_path() {
    use tokenizers::AddedToken;
    let Some(gguf) = crate::default_gguf() else { return };
    let mut tok = Chat::open(&gguf).unwrap().tokenizer;
    // Counted once before the tokens are added: the cache must notice them.
    assert_eq!(
        count(&tok, "hello [INST] world"),
        encode(&tok, "hello [INST] world").unwrap().len()
    );
    tok.add_tokens([AddedToken::from("[INST]", true), AddedToken::from("zqxj", false)]).unwrap();
    for t in ["hello [INST] world", "a zqxj b [INST][INST]", "[INS T] zqx j", "<|im_start|>x"] {
        assert_eq!(count(&tok, t), encode(&tok, t).unwrap().len(), "{t:?}");
    }
}
