//! `tokenizer::count` (pre-token sums, cached) equals the full encoder's length.

use engine::bundle::Chat;
use engine::tokenizer::{count, encode};

#[test]
fn fast_count_equals_encode_len() {
    let Some(gguf) = crate::default_gguf() else { return };
    let chat = Chat::open(&gguf).unwrap();
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
