"""Reference greedy generations of SmolLM2-135M-Instruct (f32, CPU) with transformers.

Loads the same GGUF the product ships (transformers dequantizes it to f32), renders each prompt
with the model's chat template, and records the prompt's token ids and 32 greedy tokens.

    python3 scripts/reference/greedy_smollm2.py ~/.cache/vibeflow/SmolLM2-135M-Instruct.Q4_1.gguf

writes crates/engine/tests/fixtures/smollm2_greedy.json. Needs torch, transformers, gguf.
"""
import json
import os
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Explain what a LoRA adapter is in one sentence.",
    "List three prime numbers.",
    "How do I reverse a list in Python?",
]
NEW_TOKENS = 32


def main():
    gguf = os.path.abspath(sys.argv[1])
    folder, name = os.path.dirname(gguf), os.path.basename(gguf)
    torch.manual_seed(0)
    torch.set_num_threads(2)
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model.eval()
    cases = []
    for prompt in PROMPTS:
        messages = [{"role": "user", "content": prompt}]
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            out = model.generate(
                torch.tensor([ids]),
                max_new_tokens=NEW_TOKENS,
                do_sample=False,
                eos_token_id=None,
                pad_token_id=tok.eos_token_id,
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            )
            first = model(torch.tensor([ids])).logits[0, -1]
        gen = out[0, len(ids):].tolist()
        cases.append({
            "prompt": prompt,
            "text": text,
            "prompt_ids": ids,
            "generated_ids": gen,
            "generated_text": tok.decode(gen),
            "first_logits_top5": torch.topk(first, 5).indices.tolist(),
            "first_logits_top5_values": [round(v, 5) for v in torch.topk(first, 5).values.tolist()],
        })
    out_path = os.path.join(os.path.dirname(__file__), "../../crates/engine/tests/fixtures/smollm2_greedy.json")
    with open(out_path, "w") as f:
        json.dump({"model": name, "new_tokens": NEW_TOKENS, "transformers": __import__("transformers").__version__,
                   "torch": torch.__version__, "cases": cases}, f, indent=1)
    print("wrote", os.path.normpath(out_path))


if __name__ == "__main__":
    main()
