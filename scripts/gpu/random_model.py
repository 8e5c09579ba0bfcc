"""A model of a given shape with random weights, in Hugging Face layout, for speed checks on a
machine that cannot fetch the real weights (the GPU machines here are offline, and the default
model's GGUF is too large to send along).

    python3 scripts/gpu/random_model.py SHAPE_DIR OUT_DIR

SHAPE_DIR holds config.json and the tokenizer files (for SmolLM2: written from the default
GGUF by transformers, see scripts/gpu/build.sh); OUT_DIR gets them plus model.safetensors with
transformers' own initialisation (seed 0). Speed does not depend on the values.
"""
import os
import shutil
import sys

import torch
from transformers import AutoConfig, AutoModelForCausalLM


def main():
    shape, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    cfg = AutoConfig.from_pretrained(shape)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    model.save_pretrained(out, safe_serialization=True)
    for f in os.listdir(shape):
        if f != "config.json":
            shutil.copy(os.path.join(shape, f), os.path.join(out, f))
    print(f"{out}: {sum(p.numel() for p in model.parameters())} parameters")


if __name__ == "__main__":
    main()
