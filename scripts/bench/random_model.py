"""A catalog model's shape with random weights, in Hugging Face layout, for benchmarks at sizes
whose real weights are not here (both sides load the same safetensors; speed does not depend on
the values).

    python3 scripts/bench/random_model.py models/qwen2.5-0.5b-instruct.toml TOKENIZER.gguf OUT_DIR

The card's [architecture] gives config.json (Llama or Qwen2 family); the weights are
transformers' own initialisation (seed 0) in f32; the tokenizer comes from TOKENIZER.gguf (the
default model's: its ids lie inside any larger vocabulary, and the benchmarks train on random ids).
"""
import os
import sys
import tomllib

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, Qwen2Config


def main():
    card_path, gguf, out = sys.argv[1:4]
    with open(card_path, "rb") as f:
        card = tomllib.load(f)
    a = card["architecture"]
    tok = AutoTokenizer.from_pretrained(os.path.dirname(os.path.abspath(gguf)), gguf_file=os.path.basename(gguf))
    shape = dict(
        hidden_size=a["hidden_size"],
        intermediate_size=a["intermediate_size"],
        num_hidden_layers=a["layers"],
        num_attention_heads=a["heads"],
        num_key_value_heads=a["kv_heads"],
        head_dim=a["head_dim"],
        vocab_size=a["vocab_size"],
        max_position_embeddings=a["context"],
        rope_theta=a["rope_theta"],
        tie_word_embeddings=a["tied_embeddings"],
        rms_norm_eps=1e-6 if card["family"] == "qwen2" else 1e-5,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
    )
    cfg = Qwen2Config(**shape) if card["family"] == "qwen2" else LlamaConfig(**shape)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    os.makedirs(out, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    print(f"{out}: {sum(p.numel() for p in model.parameters())} parameters ({card['name']} shape, random)")


if __name__ == "__main__":
    main()
