"""Reference numbers for the engine's parity tests: tiny random Llama and Qwen2 models with PEFT
LoRA on all seven projections (CPU, f32). Four configurations:
  llama           untied head, plain RoPE
  qwen2           tied head (Qwen2.5 0.5B/1.5B), q/k/v biases
  llama3          Llama 3's RoPE scaling (`rope_type: llama3`), tied head (Llama 3.2)
  qwen2-untied    untied head (Qwen2.5 7B)

For each architecture it writes crates/engine/tests/fixtures/tiny-<arch>/:
  config.json, model.safetensors          the random base model (Hugging Face layout)
  adapter/                                a PEFT adapter (random A and B, so every gradient is non-zero)
  expected.safetensors                    input_ids, labels, logits, loss, the gradient of every LoRA
                                          tensor (grad.<name>), every LoRA tensor after one AdamW step
                                          (after.<name>), and full fine-tuning gradients (full.<name>);
                                          for llama3 and qwen2-untied also transformers' RoPE frequencies
                                          (inv_freq) and, for llama3, the rope_freqs.weight llama.cpp's
                                          convert_hf_to_gguf.py would write (per-pair frequency divisors)

    python3 scripts/reference/tiny_parity.py [ARCH ...]     (default: all four)

Needs torch, transformers, peft, safetensors. Deterministic on one machine: rerunning rewrites the
same files (the adapter's target_modules sorted, PEFT's README dropped). Another CPU can change the
floats in their last bits (MKL's kernels), so regenerate only the fixtures you mean to change.
"""
import json
import math
import os
import sys

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "../../crates/engine/tests/fixtures")
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LR, BETAS, EPS, WD = 1e-3, (0.9, 0.999), 1e-8, 0.01


def tiny(arch):
    common = dict(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                  rms_norm_eps=1e-6, tie_word_embeddings=(arch in ("qwen2", "llama3")))
    if arch == "llama":
        return LlamaForCausalLM(LlamaConfig(rope_theta=10000.0, **common))
    if arch == "llama3":
        return LlamaForCausalLM(LlamaConfig(rope_parameters=LLAMA3_ROPE, **common))
    return Qwen2ForCausalLM(Qwen2Config(rope_theta=1000000.0, **common))


# Llama 3.2's scaling (factor 32, low 1, high 4) around a small original context and base, so that
# at head_dim 8 the four pairs' wavelengths (2*pi * 100^(k/4): 6.3, 19.9, 62.8, 198.7) cover all three
# cases of the formula: kept (< 32/4), smoothed (between), divided by the factor (> 32).
LLAMA3_ROPE = dict(rope_type="llama3", rope_theta=100.0, factor=32.0, low_freq_factor=1.0,
                   high_freq_factor=4.0, original_max_position_embeddings=32)


def llama_cpp_rope_freqs(config):
    """rope_freqs.weight as llama.cpp's convert_hf_to_gguf.py (LlamaModel.generate_extra_tensors)
    computes it for `rope_type: llama3`: the divisor of each pair's frequency."""
    rope = config.rope_parameters
    base, dim = rope["rope_theta"], config.head_dim
    freqs = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    factor, low, high = rope["factor"], rope["low_freq_factor"], rope["high_freq_factor"]
    old_context_len = rope["original_max_position_embeddings"]
    low_freq_wavelen, high_freq_wavelen = old_context_len / low, old_context_len / high
    factors = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < high_freq_wavelen:
            factors.append(1)
        elif wavelen > low_freq_wavelen:
            factors.append(factor)
        else:
            smooth = (old_context_len / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return torch.tensor(factors, dtype=torch.float32)


def tidy_adapter(d):
    """PEFT writes target_modules from a set (the order changes with Python's hash seed) and a
    model-card README: sort the one, drop the other."""
    path = os.path.join(d, "adapter_config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["target_modules"] = sorted(cfg["target_modules"])
    with open(path, "w") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True))  # as PEFT writes it
    readme = os.path.join(d, "README.md")
    if os.path.exists(readme):
        os.remove(readme)


def batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 96, (2, 12), generator=g)
    labels = ids.clone()
    labels[:, :5] = -100          # the prompt: no loss
    ids[1, 9:] = 0                # right padding
    labels[1, 9:] = -100
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    return ids, labels, mask


def run(arch):
    torch.manual_seed(0)
    model = tiny(arch).float()
    with torch.no_grad():  # non-trivial norms, so their handling is checked too
        for n, p in model.named_parameters():
            if "norm" in n:
                p.add_(torch.randn_like(p) * 0.1)
    d = os.path.join(OUT, f"tiny-{arch}")
    os.makedirs(os.path.join(d, "adapter"), exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)
    ids, labels, mask = batch()

    # Full fine-tuning gradients.
    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    out.loss.backward()
    full = {f"full.{n}": p.grad.detach().clone() for n, p in model.named_parameters()}
    model.zero_grad()

    cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=TARGETS, task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, cfg)
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn_like(p) * 0.1)
    peft_model.save_pretrained(os.path.join(d, "adapter"))
    tidy_adapter(os.path.join(d, "adapter"))
    out = peft_model(input_ids=ids, attention_mask=mask, labels=labels)
    out.loss.backward()
    lora = [(n, p) for n, p in peft_model.named_parameters() if p.requires_grad]
    key = lambda n: n.replace(".default", "")
    expected = {
        "input_ids": ids.to(torch.int64),
        "labels": labels.to(torch.int64),
        "attention_mask": mask.to(torch.int64),
        "logits": out.logits.detach(),
        "loss": out.loss.detach().reshape(1),
    }
    for n, p in lora:
        expected[f"grad.{key(n)}"] = p.grad.detach().clone()
    opt = torch.optim.AdamW([p for _, p in lora], lr=LR, betas=BETAS, eps=EPS, weight_decay=WD)
    opt.step()
    for n, p in lora:
        expected[f"after.{key(n)}"] = p.detach().clone()
    expected.update(full)
    if arch in ("llama3", "qwen2-untied"):  # (the first two fixtures predate these entries)
        expected["inv_freq"] = model.model.rotary_emb.inv_freq.detach().clone()
    if arch == "llama3":
        expected["rope_freqs"] = llama_cpp_rope_freqs(model.config)
    save_file({k: v.contiguous() for k, v in expected.items()}, os.path.join(d, "expected.safetensors"))
    with open(os.path.join(d, "optimizer.json"), "w") as f:
        json.dump({"lr": LR, "betas": BETAS, "eps": EPS, "weight_decay": WD}, f)
    print(arch, "loss", out.loss.item(), "lora tensors", len(lora))


if __name__ == "__main__":
    torch.set_num_threads(1)
    for arch in sys.argv[1:] or ["llama", "qwen2", "llama3", "qwen2-untied"]:
        run(arch)
