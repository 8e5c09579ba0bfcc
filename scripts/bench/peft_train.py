"""The peer of `vibeflow bench train --vs-peer`: LoRA training steps with PyTorch + PEFT.

    python3 scripts/bench/peft_train.py MODEL.gguf STEPS BATCH SEQ THREADS [CHECKPOINTING]

Same shape as ours: f32, r=8 on all seven projections, AdamW, every token labelled, random ids
from a fixed seed; CHECKPOINTING=1 recomputes each decoder block in the backward pass
(`gradient_checkpointing_enable`, as ours does by default). Prints one JSON object: tokens_per_second (timed steps after one warmup
step) and peak_rss_bytes.
"""
import json
import os
import sys
import time

from common import peak_rss

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM


def main():
    path, steps, batch, seq, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    checkpointing = len(sys.argv) > 6 and sys.argv[6] == "1"
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(os.path.dirname(os.path.abspath(path)), gguf_file=os.path.basename(path), dtype=torch.float32)
    cfg = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM",
                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model = get_peft_model(model, cfg)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(3, 49000, (batch, seq), generator=torch.Generator().manual_seed(1))

    def step():
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()

    step()  # warmup
    t = time.perf_counter()
    for _ in range(steps):
        step()
    secs = time.perf_counter() - t
    rss = peak_rss()
    print(json.dumps({"tokens_per_second": steps * batch * seq / secs, "peak_rss_bytes": rss}))


if __name__ == "__main__":
    main()
