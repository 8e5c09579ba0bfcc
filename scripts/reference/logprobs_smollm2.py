"""Reference sequence log-probabilities and perplexity of SmolLM2-135M-Instruct (f32, CPU) with
transformers, on a few chat conversations, labels on the assistant replies only.

Loads the same GGUF the product ships (transformers dequantizes it to f32), renders each
conversation with the model's chat template through its own tokenizer, labels the tokens of each
assistant reply (from the end of the conversation before it, rendered with the generation prompt,
to the end of the conversation through it: the reply and its end-of-turn tokens), and sums the
log-probability of each label token given the tokens before it.

    python3 scripts/reference/logprobs_smollm2.py ~/.cache/vibeflow/SmolLM2-135M-Instruct.Q4_1.gguf

writes crates/engine/tests/fixtures/smollm2_logprobs.json:
  conversations[]: messages, ids, labels (-100 outside the replies), logprob (summed), tokens
  perplexity: exp(-sum logprob / sum tokens) over all of them
Needs torch, transformers, gguf.
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer

CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"},
     {"role": "assistant", "content": "The capital of France is Paris."}],
    [{"role": "system", "content": "You answer in one short sentence."},
     {"role": "user", "content": "Why is the sky blue?"},
     {"role": "assistant", "content": "Air scatters blue sunlight more than red, so the sky looks blue."}],
    [{"role": "user", "content": "Give me a number between 1 and 10."},
     {"role": "assistant", "content": "7"},
     {"role": "user", "content": "Another one, please."},
     {"role": "assistant", "content": "Sure: 3."}],
    [{"role": "user", "content": "Translate 'good morning' to Spanish."},
     {"role": "assistant", "content": "Buenos días."}],
]


def encode(tok, messages, generation_prompt):
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    return tok(text, add_special_tokens=False)["input_ids"]


def main():
    gguf = os.path.abspath(sys.argv[1])
    folder, name = os.path.dirname(gguf), os.path.basename(gguf)
    torch.set_num_threads(2)
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model.eval()
    cases, total, count = [], 0.0, 0
    for messages in CONVERSATIONS:
        ids = encode(tok, messages, False)
        labels = [-100] * len(ids)
        for k, m in enumerate(messages):
            if m["role"] != "assistant":
                continue
            start = len(encode(tok, messages[:k], True))
            end = len(encode(tok, messages[: k + 1], False))
            for i in range(start, min(end, len(ids))):
                labels[i] = ids[i]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, :-1].double()
        target = torch.tensor(labels[1:])
        keep = target != -100
        logp = torch.gather(F.log_softmax(logits, -1), 1, target.clamp(min=0).unsqueeze(1)).squeeze(1)
        logprob, tokens = float((logp * keep).sum()), int(keep.sum())
        total, count = total + logprob, count + tokens
        cases.append({"messages": messages, "ids": ids, "labels": labels,
                      "logprob": logprob, "tokens": tokens})
    out = {
        "model": name,
        "transformers": __import__("transformers").__version__,
        "torch": torch.__version__,
        "conversations": cases,
        "perplexity": math.exp(-total / count),
    }
    out_path = os.path.join(os.path.dirname(__file__), "../../crates/engine/tests/fixtures/smollm2_logprobs.json")
    with open(out_path, "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print("perplexity", out["perplexity"], [(c["logprob"], c["tokens"]) for c in cases])


if __name__ == "__main__":
    main()
