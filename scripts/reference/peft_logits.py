"""Logits of a base model with a VibeFlow-trained adapter, as Python PEFT computes them.

    python3 scripts/reference/peft_logits.py BASE ADAPTER_DIR IDS_JSON OUT_JSON

BASE is a .gguf file (loaded with transformers' gguf_file=, dequantized to f32) or a Hugging Face
folder. IDS_JSON holds a list of token ids; OUT_JSON receives the last position's logits.
Used by the engine's tests to check that `peft` loads our adapters and agrees with our numbers.
"""
import json
import os
import sys

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM


def main():
    base, adapter, ids_path, out_path = sys.argv[1:5]
    torch.set_num_threads(2)
    if base.endswith(".gguf"):
        model = AutoModelForCausalLM.from_pretrained(
            os.path.dirname(os.path.abspath(base)), gguf_file=os.path.basename(base), dtype=torch.float32)
    else:
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model = PeftModel.from_pretrained(model, adapter)
    model.eval()
    ids = json.load(open(ids_path))
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, -1]
    json.dump(logits.tolist(), open(out_path, "w"))


if __name__ == "__main__":
    main()
