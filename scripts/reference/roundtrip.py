"""The round trip of an export (issue 22, item 7): the same chat prompts through the merged
Hugging Face export in `transformers` and the GGUF exports in llama.cpp (llama-cpp-python).

Each runtime uses only what the export carries: transformers its `tokenizer_config.json` chat
template (`apply_chat_template`) and `generation_config.json` end tokens (`generate` stops on
them); llama.cpp the GGUF's embedded `tokenizer.chat_template` (rendered with Jinja2, as
llama-cpp-python's chat handler does), its tokenizer, and its end-of-generation tokens
(`llama_vocab_is_eog`). Greedy decoding; at each step the gap between the two best logits is
recorded (a near tie may flip under any change of rounding or quantization).

    python3 scripts/reference/roundtrip.py PROMPTS.json MAX_TOKENS --merged DIR [--gguf FILE]...

PROMPTS.json is a list of conversations ([{"role", "content"}, ...]). Prints one JSON object:
{"transformers": [case...], "llama_cpp": {FILE: [case...]}}, a case being {"prompt_ids",
"generated_ids" (without the end token), "end" (the end token id, or null when MAX_TOKENS ran
out), "gaps"}. Run by crates/cli/tests/it/export.rs. Needs torch, transformers, llama-cpp-python,
jinja2, numpy.
"""
import argparse
import json
import sys

import numpy as np


def transformers_cases(folder, conversations, max_tokens):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    torch.manual_seed(0)
    torch.set_num_threads(2)
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.eval()
    gen = GenerationConfig.from_pretrained(folder)
    ends = gen.eos_token_id if isinstance(gen.eos_token_id, list) else [gen.eos_token_id]
    out = []
    for messages in conversations:
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        # The template's own tokenization must agree with encoding its text.
        direct = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
        if hasattr(direct, "keys"):
            direct = direct["input_ids"]
        if direct and isinstance(direct[0], list):
            direct = direct[0]
        assert list(direct) == list(ids), "apply_chat_template(tokenize=True) differs"
        with torch.no_grad():
            res = model.generate(
                torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=max_tokens,
                do_sample=False,
                output_logits=True,
                return_dict_in_generate=True,
            )
        generated = res.sequences[0, len(ids):].tolist()
        gaps = []
        for logits in res.logits:
            top2 = torch.topk(logits[0].double(), 2).values
            gaps.append(round(float(top2[0] - top2[1]), 5))
        end = None
        if generated and generated[-1] in ends:
            end = generated.pop()
        out.append({"prompt_ids": ids, "generated_ids": generated, "end": end, "gaps": gaps})
    return out


def llama_cpp_cases(path, conversations, max_tokens):
    import jinja2
    import llama_cpp
    from llama_cpp import Llama

    llm = Llama(model_path=path, n_ctx=512, n_threads=2, logits_all=True, verbose=False)
    meta = llm.metadata
    template = meta["tokenizer.chat_template"]
    token = lambda i: llm.detokenize([i], special=True).decode() if i >= 0 else ""
    bos, eos = token(llm.token_bos()), token(llm.token_eos())
    add_bos = meta.get("tokenizer.ggml.add_bos_token", "false") == "true"
    env = jinja2.Environment(loader=jinja2.BaseLoader())

    def raise_exception(message):
        raise jinja2.TemplateError(message)

    env.globals["raise_exception"] = raise_exception
    compiled = env.from_string(template)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    out = []
    for messages in conversations:
        text = compiled.render(messages=messages, add_generation_prompt=True,
                               bos_token=bos, eos_token=eos)
        ids = llm.tokenize(text.encode(), add_bos=add_bos, special=True)
        llm.reset()
        llm.eval(ids)
        generated, gaps, end = [], [], None
        for _ in range(max_tokens):
            logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float64)
            top2 = np.sort(logits)[-2:]
            gaps.append(round(float(top2[1] - top2[0]), 5))
            nxt = int(np.argmax(logits))
            if llama_cpp.llama_vocab_is_eog(vocab, nxt):
                end = nxt
                break
            generated.append(nxt)
            llm.eval([nxt])
        out.append({"prompt_ids": ids, "generated_ids": generated, "end": end, "gaps": gaps})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("prompts")
    ap.add_argument("max_tokens", type=int)
    ap.add_argument("--merged")
    ap.add_argument("--gguf", action="append", default=[])
    a = ap.parse_args()
    conversations = json.load(open(a.prompts))
    result = {"llama_cpp": {}}
    if a.merged:
        result["transformers"] = transformers_cases(a.merged, conversations, a.max_tokens)
    for path in a.gguf:
        result["llama_cpp"][path] = llama_cpp_cases(path, conversations, a.max_tokens)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
