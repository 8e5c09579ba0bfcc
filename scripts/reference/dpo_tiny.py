"""Reference numbers for the engine's sequence log-probabilities and DPO loss: the committed tiny
random models (tiny_parity.py) with their PEFT adapter (random A and B, so the policy differs from
the reference), on two preference pairs of token ids (CPU, f32). The loss is the DPO paper's
sigmoid loss written in PyTorch, as TRL's DPOTrainer computes it (loss_type "sigmoid", no label
smoothing, log-probabilities summed over the completion's tokens, the loss averaged over pairs):

    loss = -logsigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r))).mean()

with the reference model = the base with the adapter disabled (PEFT's disable_adapter(), what
TRL does when it is given a PEFT model and no ref_model). This is TRL 1.16.0's
DPOTrainer._compute_loss with its defaults (loss_type "sigmoid", f_divergence "reverse_kl", no
ld_alpha, no weighting): logps summed over the completion mask of a [chosen, rejected] batch,
`-F.logsigmoid(beta * delta).mean()`; TRL itself is not run here (it needs a tokenizer and the
`datasets` package the tiny models have no use for).

For each architecture it writes crates/engine/tests/fixtures/tiny-<arch>/preference.safetensors:
  chosen_ids, chosen_labels, rejected_ids, rejected_labels     [2, T] int64, right-padded with 0
                                                               (labels -100 on prompt and padding)
  policy_chosen, policy_rejected                               [2] summed log-probabilities with
                                                               the adapter
  reference_chosen, reference_rejected                         [2] the same without it
  chosen_tokens, rejected_tokens                               [2] label tokens per row
  beta, loss                                                   [1]
  grad.<peft name>                                             dloss/d every LoRA tensor

    python3 scripts/reference/dpo_tiny.py [ARCH ...]     (default: llama qwen2)

Needs torch, transformers, peft, safetensors. Reads the fixtures tiny_parity.py wrote and changes
none of them.
"""
import os
import sys

import torch
import torch.nn.functional as F
from peft import PeftModel
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "../../crates/engine/tests/fixtures")
BETA = 0.1


def pairs():
    """Two pairs whose prompts and completions differ in length, so padding and the label
    boundary differ per row."""
    g = torch.Generator().manual_seed(3)
    tok = lambda n: torch.randint(3, 96, (n,), generator=g).tolist()
    shapes = [(6, 5, 3), (4, 2, 7)]  # (prompt, chosen, rejected) lengths
    out = []
    for p, c, r in shapes:
        prompt = tok(p)
        out.append((prompt, tok(c), tok(r)))
    return out


def batch(rows):
    """[b, T] ids (right-padded with 0), labels (-100 on the prompt and padding), mask."""
    t = max(len(p) + len(c) for p, c in rows)
    ids = torch.zeros((len(rows), t), dtype=torch.int64)
    labels = torch.full((len(rows), t), -100, dtype=torch.int64)
    mask = torch.zeros((len(rows), t), dtype=torch.int64)
    for i, (p, c) in enumerate(rows):
        seq = p + c
        ids[i, : len(seq)] = torch.tensor(seq)
        labels[i, len(p) : len(seq)] = torch.tensor(c)
        mask[i, : len(seq)] = 1
    return ids, labels, mask


def logps(model, ids, labels, mask):
    """Summed log-probability of each row's label tokens, each predicted from the position
    before it, and their count (TRL's concatenated_forward, without its truncation)."""
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    target = labels[:, 1:]
    keep = target != -100
    picked = torch.gather(F.log_softmax(logits, -1), 2, target.clamp(min=0).unsqueeze(2)).squeeze(2)
    return (picked * keep).sum(-1), keep.sum(-1)


def run(arch):
    d = os.path.join(FIXTURES, f"tiny-{arch}")
    base = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, os.path.join(d, "adapter"), is_trainable=True)
    model.train()  # dropout is 0: train mode changes nothing but keeps the adapter trainable
    rows = pairs()
    c_ids, c_labels, c_mask = batch([(p, c) for p, c, _ in rows])
    r_ids, r_labels, r_mask = batch([(p, r) for p, _, r in rows])

    pi_c, n_c = logps(model, c_ids, c_labels, c_mask)
    pi_r, n_r = logps(model, r_ids, r_labels, r_mask)
    with torch.no_grad(), model.disable_adapter():
        ref_c, _ = logps(model, c_ids, c_labels, c_mask)
        ref_r, _ = logps(model, r_ids, r_labels, r_mask)
    loss = -F.logsigmoid(BETA * ((pi_c - ref_c) - (pi_r - ref_r))).mean()
    loss.backward()

    key = lambda n: n.replace(".default", "")
    expected = {
        "chosen_ids": c_ids, "chosen_labels": c_labels,
        "rejected_ids": r_ids, "rejected_labels": r_labels,
        "policy_chosen": pi_c.detach(), "policy_rejected": pi_r.detach(),
        "reference_chosen": ref_c, "reference_rejected": ref_r,
        "chosen_tokens": n_c, "rejected_tokens": n_r,
        "beta": torch.tensor([BETA], dtype=torch.float32),
        "loss": loss.detach().reshape(1),
    }
    for n, p in model.named_parameters():
        if p.requires_grad:
            expected[f"grad.{key(n)}"] = p.grad.detach().clone()
    save_file({k: v.contiguous() for k, v in expected.items()}, os.path.join(d, "preference.safetensors"))
    print(arch, "loss", loss.item(), "policy", pi_c.tolist(), pi_r.tolist(), "reference", ref_c.tolist(), ref_r.tolist())


if __name__ == "__main__":
    torch.set_num_threads(1)
    for arch in sys.argv[1:] or ["llama", "qwen2"]:
        run(arch)
