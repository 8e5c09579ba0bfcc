"""A catalog model's shape with random weights, in Hugging Face layout, for benchmarks at sizes
whose real weights are not here (both sides load the same safetensors; speed does not depend on
the values).

    python3 scripts/bench/random_model.py models/qwen2.5-0.5b-instruct.toml TOKENIZER.gguf OUT_DIR [--gguf]

The card's [architecture] gives config.json (Llama or Qwen2 family); the weights are
transformers' own initialisation (seed 0) in f32; the tokenizer comes from TOKENIZER.gguf (the
default model's: its ids lie inside any larger vocabulary, and the benchmarks train on random ids).
With --gguf, also OUT_DIR/model.Q4_1.gguf for the decoding benchmarks: the same weights under
llama.cpp's names, projections in Q4_1 and the embedding in Q8_0 (as the default model's file),
norms and biases f32, TOKENIZER.gguf's tokenizer keys with its vocabulary padded to the model's
(unused tokens) — Qwen2 family only (its RoPE needs no row permutation).
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
    if "--gguf" in sys.argv:
        write_gguf(model, cfg, card, gguf, os.path.join(out, "model.Q4_1.gguf"))


def write_gguf(model, cfg, card, tokenizer_gguf, path):
    import gguf
    import numpy as np

    if card["family"] != "qwen2":
        sys.exit("--gguf writes the Qwen2 family only")
    src = gguf.GGUFReader(tokenizer_gguf)
    w = gguf.GGUFWriter(path, "qwen2")
    w.add_name(f"{card['name']} (random weights)")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_freq_base(card["architecture"]["rope_theta"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_1)
    for name, field in src.fields.items():
        if not name.startswith("tokenizer."):
            continue
        value = field.contents()
        if name == "tokenizer.ggml.tokens":
            value = value + [f"<|unused_{i}|>" for i in range(len(value), cfg.vocab_size)]
        elif name == "tokenizer.ggml.token_type":
            value = value + [gguf.TokenType.UNUSED] * (cfg.vocab_size - len(value))
        vtype = field.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            w.add_key_value(name, value, vtype, sub_type=field.types[-1])
        else:
            w.add_key_value(name, value, vtype)
    names = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
    for hf, t in model.state_dict().items():
        if hf == "lm_head.weight" and cfg.tie_word_embeddings:
            continue
        if hf == "model.embed_tokens.weight":
            name, qtype = "token_embd.weight", gguf.GGMLQuantizationType.Q8_0
        elif hf == "model.norm.weight":
            name, qtype = "output_norm.weight", None
        elif hf == "lm_head.weight":
            name, qtype = "output.weight", gguf.GGMLQuantizationType.Q8_0
        else:
            _, _, i, rest = hf.split(".", 3)
            module, kind = rest.rsplit(".", 1)
            name = f"blk.{i}.{names[module]}.{kind}"
            qtype = gguf.GGMLQuantizationType.Q4_1 if kind == "weight" and t.dim() == 2 else None
        data = t.detach().float().numpy()
        if qtype is None:
            w.add_tensor(name, data)
        else:
            q = gguf.quants.quantize(data, qtype)
            w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{path}: Q4_1 GGUF")


if __name__ == "__main__":
    main()
