#!/usr/bin/env bash
# The LLaMA-Factory round trip: a project's run handed to LLaMA-Factory and back.
#
#   scripts/llamafactory/roundtrip.sh            (from the repository root, after `cargo xtask setup`)
#
# 1. `vibeflow export --format llamafactory --base-weights`: the sample dataset, the
#    recommended settings and the default model in Hugging Face layout;
# 2. LLaMA-Factory 0.9.5 (from PyPI, in its own virtual environment on top of the system's
#    torch: it pins older transformers/peft than the reference scripts use) trains 3 steps on
#    the CPU from that folder, launched as its README says;
# 3. `vibeflow runs import` brings its adapter back as a run (evaluated on held-out rows);
# 4. the imported run answers greedy through our engine, and PEFT on the exported base with
#    LLaMA-Factory's adapter gives the same tokens.
#
# Outside the test suite: it installs ~200 MB of Python packages. Prints one JSON line last.
# LF_VENV (default target/llamafactory-venv) keeps the environment between runs.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
venv=${LF_VENV:-$target/llamafactory-venv}
gguf=${VIBEFLOW_DEFAULT_GGUF:-$HOME/.cache/vibeflow/SmolLM2-135M-Instruct.Q4_1.gguf}
[ -f "$gguf" ] || { echo "no default model at $gguf: run cargo xtask setup" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

(cd "$root" && cargo build --release -p cli --quiet)
vibeflow="$target/release/vibeflow"
export VIBEFLOW_HOME="$work/home"
"$vibeflow" models import "$gguf" >/dev/null
"$vibeflow" project new Lab >/dev/null
"$vibeflow" data import --sample tech-qa -p lab >/dev/null
"$vibeflow" export -p lab --format llamafactory --base-weights --out "$work/lf" >&2

if [ ! -x "$venv/bin/llamafactory-cli" ]; then
    python3 -m venv --system-site-packages "$venv"
    "$venv/bin/pip" install --quiet llamafactory==0.9.5
fi

# As the export's README says for a CPU check: in the folder, a few steps. No network.
start=$(date +%s)
(cd "$work/lf" && HF_HUB_OFFLINE=1 HF_DATASETS_CACHE="$work/datasets" CUDA_VISIBLE_DEVICES= \
    "$venv/bin/llamafactory-cli" train llamafactory.yaml max_steps=3 >"$work/lf.log" 2>&1) || {
    tail -40 "$work/lf.log" >&2
    exit 1
}
lf_seconds=$(($(date +%s) - start))

"$vibeflow" runs import -p lab "$work/lf" --eval-rows 16 --json >"$work/import.json"
run=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$work/import.json")
adapter="$VIBEFLOW_HOME/projects/lab/runs/$run/adapter"
prompt="My API call returns 401 Unauthorized. What does that mean?"
ours=$("$vibeflow" generate --model "$gguf" --adapter "$adapter" --temperature 0 --max-tokens 24 \
    --prompt "$prompt")

# PEFT with LLaMA-Factory's own adapter on the exported base, the same greedy prompt (the
# system turn is the model's default, which the chat template adds).
peft=$("$venv/bin/python" - "$work/lf/base" "$work/lf/output" "$prompt" <<'EOF'
import sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from peft import PeftModel
base, adapter, prompt = sys.argv[1:]
tok = AutoTokenizer.from_pretrained(base)
model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).eval()
chat = [{"role": "user", "content": prompt}]
inputs = tok.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
with torch.no_grad():
    out = model.generate(**inputs, max_new_tokens=24, do_sample=False)
print(tok.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))
EOF
)

python3 - "$work/import.json" "$lf_seconds" "$ours" "$peft" <<'EOF'
import json, sys
run = json.load(open(sys.argv[1]))
ours, peft = sys.argv[3].strip(), sys.argv[4].strip()
s = run["summary"]
print(json.dumps({
    "run": run["id"], "tag": run["tag"], "status": run["status"], "steps": s["steps"],
    "llamafactory_losses": s["losses"], "llamafactory_seconds": int(sys.argv[2]),
    "eval_loss_before": s["eval_loss_before"], "eval_loss_after": s["eval_loss_after"],
    "ours": ours, "peft": peft, "same_answer": ours == peft,
}))
sys.exit(0 if ours == peft and run["status"] == "done" else 1)
EOF
