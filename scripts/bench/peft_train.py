"""The peer of `vibeflow bench train --vs-peer`: LoRA training steps with PyTorch + PEFT.

    python3 scripts/bench/peft_train.py MODEL STEPS BATCH SEQ THREADS [CHECKPOINTING] [DEVICE] [TF32] [DTYPE] [METHOD]

Same shape as ours: r=8 on all seven projections, AdamW (PyTorch's fused one where available),
every token labelled, random ids
from a fixed seed; CHECKPOINTING=1 recomputes each decoder block in the backward pass
(`gradient_checkpointing_enable`, as ours does by default); DEVICE is cpu (default) or cuda;
TF32=1 lets cuBLAS run f32 products on TF32 tensor cores (as `vibeflow --tf32`); DTYPE is f32
(default) or bf16: the base model loaded in bfloat16, PEFT's adapters kept f32 over it (its
default `autocast_adapter_dtype`), as `vibeflow --dtype bf16` trains. METHOD is lora (default),
qlora (the same pairs over a base loaded in 4 bits by bitsandbytes, NF4, computing in DTYPE) or
full (no PEFT: every weight trains).
MODEL is a GGUF file or a Hugging Face folder. Prints one JSON object: tokens_per_second (timed
steps after one warmup step), peak_rss_bytes and, on cuda, peak_gpu_bytes (the driver's count of
GPU memory in use, sampled every 5 ms as ours is: the CUDA context and the caching allocator's
reserve included).
"""
import json
import os
import sys
import threading
import time

from common import peak_rss

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM


def main():
    path, steps, batch, seq, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    checkpointing = len(sys.argv) > 6 and sys.argv[6] == "1"
    device = sys.argv[7] if len(sys.argv) > 7 else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = len(sys.argv) > 8 and sys.argv[8] == "1"
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[sys.argv[9] if len(sys.argv) > 9 else "f32"]
    method = sys.argv[10] if len(sys.argv) > 10 else "lora"
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    extra = {}
    if method == "qlora":
        from transformers import BitsAndBytesConfig
        extra["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype)
    converted = None
    if not os.path.isdir(path) and extra:
        # transformers loads a GGUF file only dequantized: bitsandbytes quantizes from a folder.
        path = converted = hf_folder(path, dtype)
    if os.path.isdir(path):
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **extra)
        if converted:
            import shutil
            shutil.rmtree(converted)
    else:
        model = AutoModelForCausalLM.from_pretrained(os.path.dirname(os.path.abspath(path)), gguf_file=os.path.basename(path), dtype=dtype)
    if method != "qlora":
        model = model.to(device)
    gpu_peak = GpuPeak() if device == "cuda" else None
    cfg = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM",
                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if method != "full":
            model.enable_input_require_grads()
    if method != "full":
        model = get_peft_model(model, cfg)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    # The peer at its fastest: PyTorch's fused AdamW (one kernel for every parameter) where this
    # build has it for the device, else its default (foreach).
    try:
        opt = torch.optim.AdamW(trainable, lr=1e-4, fused=True)
    except (RuntimeError, TypeError):
        opt = torch.optim.AdamW(trainable, lr=1e-4)
    ids = torch.randint(3, 49000, (batch, seq), generator=torch.Generator().manual_seed(1)).to(device)

    def step():
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    step()  # warmup
    sync()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    secs = time.perf_counter() - t
    out = {"tokens_per_second": steps * batch * seq / secs, "peak_rss_bytes": peak_rss()}
    if gpu_peak is not None:
        out["peak_gpu_bytes"] = gpu_peak.finish()
    print(json.dumps(out))


def hf_folder(gguf, dtype):
    """The GGUF file's model as a Hugging Face folder (safetensors + config) in a temporary
    directory."""
    import tempfile
    from safetensors.torch import save_file
    model = AutoModelForCausalLM.from_pretrained(os.path.dirname(os.path.abspath(gguf)), gguf_file=os.path.basename(gguf), dtype=dtype)
    out = tempfile.mkdtemp(prefix="vibeflow-bench-")
    weights = {k: v.contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        weights.pop("lm_head.weight", None)
    save_file(weights, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.save_pretrained(out)
    return out


class GpuPeak:
    """The highest GPU memory in use (total - free, as the driver counts it), sampled every 5 ms."""

    def __init__(self):
        self.peak = self.used()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    @staticmethod
    def used():
        free, total = torch.cuda.mem_get_info()
        return total - free

    def run(self):
        while not self.done.wait(0.005):
            self.peak = max(self.peak, self.used())

    def finish(self):
        self.done.set()
        self.thread.join()
        return max(self.peak, self.used())


if __name__ == "__main__":
    main()
