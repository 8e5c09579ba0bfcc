"""Reference greedy generations of SmolLM2-135M-Instruct's Q4_1 GGUF with llama.cpp
(llama-cpp-python), the peer of our quantized fast path.

Takes the prompts' token ids from `smollm2_greedy.json` (the transformers fixture), decodes 32
greedy tokens with llama.cpp on the GGUF's quantized weights, and records at each step the gap
between llama.cpp's two best logits (a near tie may flip under any change of rounding) and, after
the prompt, its ten best tokens and their logits.

    python3 scripts/reference/llamacpp_greedy.py ~/.cache/vibeflow/SmolLM2-135M-Instruct.Q4_1.gguf

writes crates/engine/tests/fixtures/smollm2_q4_1_llamacpp.json. Needs llama-cpp-python, numpy.
"""
import json
import os
import sys

import numpy as np
from llama_cpp import Llama

NEW_TOKENS = 32
FIXTURES = os.path.join(os.path.dirname(__file__), "../../crates/engine/tests/fixtures")


def main():
    gguf = sys.argv[1]
    cases = json.load(open(os.path.join(FIXTURES, "smollm2_greedy.json")))["cases"]
    llm = Llama(model_path=gguf, n_ctx=512, n_threads=2, logits_all=True, verbose=False)
    out = []
    for case in cases:
        llm.reset()
        llm.eval(case["prompt_ids"])
        tokens, gaps = [], []
        first = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float64)
        top = [[int(i), round(float(first[i]), 4)] for i in np.argsort(-first)[:10]]
        for _ in range(NEW_TOKENS):
            logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float64)
            top2 = np.sort(logits)[-2:]
            tok = int(np.argmax(logits))
            tokens.append(tok)
            gaps.append(round(float(top2[1] - top2[0]), 4))
            llm.eval([tok])
        out.append({"prompt": case["prompt"], "prompt_ids": case["prompt_ids"],
                    "generated_ids": tokens, "top2_gap": gaps, "first_top10": top})
    import llama_cpp
    fx = {"model": os.path.basename(gguf), "llama_cpp_python": llama_cpp.__version__,
          "new_tokens": NEW_TOKENS, "cases": out}
    path = os.path.join(FIXTURES, "smollm2_q4_1_llamacpp.json")
    with open(path, "w") as f:
        json.dump(fx, f, indent=1)
        f.write("\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
