"""The peer of `vibeflow bench generate --vs-peer`: greedy decoding with llama.cpp
(llama-cpp-python) on the same GGUF and thread count.

    python3 scripts/bench/llamacpp_generate.py MODEL.gguf PROMPT_IDS_JSON NEW_TOKENS THREADS

Prints one JSON object: tokens_per_second (decode only, after the prompt) and peak_rss_bytes.
"""
import json
import sys
import time

from common import peak_rss

from llama_cpp import Llama


def main():
    path, ids_path, n, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    ids = json.load(open(ids_path))
    llm = Llama(model_path=path, n_ctx=2048, n_threads=threads, n_threads_batch=threads, verbose=False)
    llm.eval(ids)  # the prompt
    t = time.perf_counter()
    for _ in range(n):
        tok = llm.sample(temp=0.0)
        llm.eval([tok])
    secs = time.perf_counter() - t
    rss = peak_rss()
    print(json.dumps({"tokens_per_second": n / secs, "peak_rss_bytes": rss}))


if __name__ == "__main__":
    main()
