"""Reference numbers for the engine's parity tests: tiny random Llama and Qwen2 models with PEFT
LoRA on all seven projections (CPU, f32).

For each architecture it writes crates/engine/tests/fixtures/tiny-<arch>/:
  config.json, model.safetensors          the random base model (Hugging Face layout)
  adapter/                                a PEFT adapter (random A and B, so every gradient is non-zero)
  expected.safetensors                    input_ids, labels, logits, loss, the gradient of every LoRA
                                          tensor (grad.<name>), every LoRA tensor after one AdamW step
                                          (after.<name>), and full fine-tuning gradients (full.<name>)

    python3 scripts/reference/tiny_parity.py

Needs torch, transformers, peft, safetensors. Deterministic: rerunning rewrites the same files.
"""
import json
import os

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
                  rms_norm_eps=1e-6, tie_word_embeddings=(arch == "qwen2"))
    if arch == "llama":
        return LlamaForCausalLM(LlamaConfig(rope_theta=10000.0, **common))
    return Qwen2ForCausalLM(Qwen2Config(rope_theta=1000000.0, **common))


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
    save_file({k: v.contiguous() for k, v in expected.items()}, os.path.join(d, "expected.safetensors"))
    with open(os.path.join(d, "optimizer.json"), "w") as f:
        json.dump({"lr": LR, "betas": BETAS, "eps": EPS, "weight_decay": WD}, f)
    print(arch, "loss", out.loss.item(), "lora tensors", len(lora))


if __name__ == "__main__":
    torch.set_num_threads(1)
    for arch in ["llama", "qwen2"]:
        run(arch)
