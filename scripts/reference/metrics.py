"""Reference outputs for `crates/metrics` (issue 21): SQuAD token scores, sacrebleu's corpus
BLEU, rouge-score's ROUGE-1/2/L, labels, the overall score and Bradley-Terry ratings.

Reads scripts/reference/metrics_inputs.json and writes crates/metrics/tests/fixtures/*.json
(inputs and expected outputs). Run from the repository root:

    pip install --user sacrebleu==2.6.0 rouge-score==0.1.2 scikit-learn numpy
    python3 scripts/reference/metrics.py

Produced with Python 3.11.7, sacrebleu 2.6.0, rouge-score 0.1.2, scikit-learn 1.9.1,
numpy 2.4.6 (Unicode 14.0 in `unicodedata`).
"""

import collections
import json
import math
import os
import re
import string

import numpy as np
import sacrebleu
from rouge_score import rouge_scorer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INPUTS = os.path.join(ROOT, "scripts", "reference", "metrics_inputs.json")
OUT = os.path.join(ROOT, "crates", "metrics", "tests", "fixtures")


# --- SQuAD: normalize_answer from the official v1.1 script, verbatim -----------------------
def normalize_answer(s):
    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def squad_scores(pred, ref):
    """Token precision, recall, F1: the official Counter intersection; when either side has no
    tokens, the SQuAD v2.0 script's rule: 1 if both are empty, else 0 (v1.1 gave 0 always)."""
    p = normalize_answer(pred).split()
    g = normalize_answer(ref).split()
    if not p or not g:
        v = float(p == g)
        return v, v, v
    common = collections.Counter(p) & collections.Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0.0, 0.0, 0.0
    precision = 1.0 * same / len(p)
    recall = 1.0 * same / len(g)
    return precision, recall, (2 * precision * recall) / (precision + recall)


# --- BLEU: sacrebleu itself ----------------------------------------------------------------
TOK13A = sacrebleu.BLEU().tokenizer


def bleu(preds, refs):
    if not preds:
        # sacrebleu rejects an empty corpus; the crate scores it as all zeros with bp 1.
        return dict(score=0.0, counts=[0] * 4, totals=[0] * 4, precisions=[0.0] * 4, bp=1.0,
                    sys_len=0, ref_len=0)
    b = sacrebleu.corpus_bleu(preds, [refs])
    return dict(score=b.score, counts=list(b.counts), totals=list(b.totals),
                precisions=list(b.precisions), bp=b.bp, sys_len=b.sys_len, ref_len=b.ref_len)


# --- ROUGE: rouge-score itself --------------------------------------------------------------
SCORER = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)


def rouge(pred, ref):
    s = SCORER.score(ref, pred)  # score(target, prediction)
    return {k: dict(precision=v.precision, recall=v.recall, f1=v.fmeasure) for k, v in s.items()}


def rouge_tokens(text):
    return SCORER._tokenizer.tokenize(text)


# --- Labels ---------------------------------------------------------------------------------
def norm_label(s):
    return s.strip().lower()


def detect_labels(refs):
    """Labels when every reference is 1-3 words and there are at most 20 distinct values, fewer
    than half the count (compared after strip + lower)."""
    if not refs:
        return False
    if any(not (1 <= len(r.split()) <= 3) for r in refs):
        return False
    distinct = {norm_label(r) for r in refs}
    return len(distinct) <= 20 and 2 * len(distinct) < len(refs)


def label_scores(preds, refs, declared):
    p = [norm_label(x) for x in preds]
    g = [norm_label(x) for x in refs]
    classes = sorted(set(g))
    if not g:
        return dict(accuracy=0.0, macro_f1=0.0, classes=[], declared=declared)
    accuracy = sum(1 for a, b in zip(p, g) if a == b) / len(g)
    f1s = []
    for c in classes:
        tp = sum(1 for a, b in zip(p, g) if a == c and b == c)
        fp = sum(1 for a, b in zip(p, g) if a == c and b != c)
        fn = sum(1 for a, b in zip(p, g) if a != c and b == c)
        f1s.append(2 * tp / (2 * tp + fp + fn))
    macro = sum(f1s) / len(f1s)
    try:
        from sklearn.metrics import accuracy_score, f1_score

        sk = f1_score(g, p, average="macro", labels=classes, zero_division=0)
        assert abs(sk - macro) < 1e-12, (sk, macro)
        assert abs(accuracy_score(g, p) - accuracy) < 1e-12
        checked = "sklearn"
    except ImportError:
        checked = "plain"
    return dict(accuracy=accuracy, macro_f1=macro, classes=classes, declared=declared), checked


# --- Length and the overall score -----------------------------------------------------------
def length_band(ratio):
    if ratio < 0.7:
        return "too_short"
    if ratio < 0.9:
        return "short"
    if ratio <= 1.1:
        return "ideal"
    if ratio <= 1.3:
        return "long"
    return "too_long"


def length_score(ratio):
    if 0.9 <= ratio <= 1.1:
        return 100.0
    if ratio < 0.9:
        return max(0.0, (ratio - 0.5) / 0.4 * 100.0)
    return max(0.0, (1.5 - ratio) / 0.4 * 100.0)


def gate(score):
    return "ready" if score > 70.0 else ("review" if score >= 50.0 else "retrain")


def overall(metrics, judge_average):
    labels = metrics["labels"]
    accuracy = (labels["accuracy"] if labels is not None else metrics["f1"]) * 100.0
    length = length_score(metrics["length_ratio"])
    if judge_average is None:
        judge = None
        score = accuracy * (0.4 / 0.6) + length * (0.2 / 0.6)
    else:
        judge = min(100.0, max(0.0, (judge_average - 1.0) / 4.0 * 100.0))
        score = accuracy * 0.4 + judge * 0.4 + length * 0.2
    return dict(score=score, accuracy=accuracy, judge=judge, length=length, gate=gate(score))


def score_corpus(preds, refs, labels):
    n = len(preds)
    sq = [squad_scores(p, r) for p, r in zip(preds, refs)]
    ro = [rouge(p, r) for p, r in zip(preds, refs)]
    b = bleu(preds, refs)

    def mean(xs):
        return sum(xs) / n if n else 0.0

    def mean_rouge(key):
        return {f: mean([r[key][f] for r in ro]) for f in ("precision", "recall", "f1")}

    ratio = b["sys_len"] / b["ref_len"] if b["ref_len"] else 0.0
    is_labels = detect_labels(refs) if labels is None else labels
    checked = None
    label = None
    if is_labels:
        label, checked = label_scores(preds, refs, labels is True) if refs else (
            dict(accuracy=0.0, macro_f1=0.0, classes=[], declared=labels is True), None)
    metrics = dict(
        count=n,
        exact_match=mean([float(normalize_answer(p) == normalize_answer(r))
                          for p, r in zip(preds, refs)]),
        precision=mean([s[0] for s in sq]),
        recall=mean([s[1] for s in sq]),
        f1=mean([s[2] for s in sq]),
        bleu=b,
        rouge1=mean_rouge("rouge1"),
        rouge2=mean_rouge("rouge2"),
        rouge_l=mean_rouge("rougeL"),
        length_ratio=ratio,
        length_band=length_band(ratio),
        perplexity=None,
        labels=label,
    )
    return metrics, checked


# --- Ratings ----------------------------------------------------------------------------------
MASK = (1 << 64) - 1
PRIOR_GAMES = 1.0  # one virtual tie per model against a fixed 1000-rated opponent


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, n):
        return (self.next() * n) >> 64


def log_sigmoid(x):
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def fit(models, battles):
    """MAP Bradley-Terry (ties = half a win each way, one virtual tie per model against a fixed
    opponent at theta 0), Newton with Armijo backtracking until the Newton step is below 1e-10;
    Elo = 400 log10(gamma), mean 1000."""
    n = len(models)
    idx = {m: i for i, m in enumerate(models)}
    w = [[0.0] * n for _ in range(n)]
    for a, b, s in battles:
        i, j = idx[a], idx[b]
        w[i][j] += s
        w[j][i] += 1.0 - s

    def objective(t):
        v = 0.0
        for i in range(n):
            for j in range(n):
                if w[i][j] > 0.0:
                    v += w[i][j] * log_sigmoid(t[i] - t[j])
            v += 0.5 * PRIOR_GAMES * (log_sigmoid(t[i]) + log_sigmoid(-t[i]))
        return v

    def gradient_hessian(t):
        g = [0.0] * n
        h = [[0.0] * n for _ in range(n)]
        for i in range(n):
            s0 = sigmoid(t[i])
            g[i] += PRIOR_GAMES * (0.5 - s0)
            h[i][i] += PRIOR_GAMES * s0 * (1.0 - s0)
            for j in range(n):
                nij = w[i][j] + w[j][i]
                if j == i or nij == 0.0:
                    continue
                p = sigmoid(t[i] - t[j])
                g[i] += w[i][j] - nij * p
                h[i][i] += nij * p * (1.0 - p)
                h[i][j] -= nij * p * (1.0 - p)
        return g, h

    theta = [0.0] * n
    for _ in range(100):
        g, h = gradient_hessian(theta)
        step = list(np.linalg.solve(np.array(h), np.array(g)))
        f0 = objective(theta)
        slope = sum(a * b for a, b in zip(g, step))
        t = 1.0
        while True:
            cand = [a + t * b for a, b in zip(theta, step)]
            # Armijo, with a slack for rounding: near the optimum the gain is below one ulp.
            if objective(cand) >= f0 + 1e-4 * t * slope - 1e-12 * (1.0 + abs(f0)) or t < 1e-10:
                break
            t *= 0.5
        theta = cand
        if max((abs(x) for x in step), default=0.0) < 1e-10:
            break
    g, _ = gradient_hessian(theta)
    elo = [400.0 / math.log(10.0) * x for x in theta]
    mean = sum(elo) / n if n else 0.0
    return [1000.0 + e - mean for e in elo], g


def percentile(sorted_values, q):
    """numpy's default (linear) percentile."""
    m = len(sorted_values)
    pos = q / 100.0 * (m - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, m - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def ratings(battles, rounds, seed):
    battles = [(b["a"], b["b"], min(1.0, max(0.0, b["score"]))) for b in battles
               if b["a"] != b["b"]]
    models = sorted({m for a, b, _ in battles for m in (a, b)})
    if not models:
        return [], []
    elo, grad = fit(models, battles)
    assert max(abs(x) for x in grad) < 1e-12, grad
    rng = SplitMix64(seed)
    samples = [[] for _ in models]
    for _ in range(rounds):
        resample = [battles[rng.below(len(battles))] for _ in battles]
        e, grad = fit(models, resample)
        assert max(abs(x) for x in grad) < 1e-12, grad
        for k, x in enumerate(e):
            samples[k].append(x)
    out = []
    for k, m in enumerate(models):
        wins = sum(1 for a, b, s in battles if (a == m and s > 0.5) or (b == m and s < 0.5))
        losses = sum(1 for a, b, s in battles if (a == m and s < 0.5) or (b == m and s > 0.5))
        ties = sum(1 for a, b, s in battles if m in (a, b) and s == 0.5)
        s = sorted(samples[k])
        if s:
            assert abs(percentile(s, 2.5) - np.percentile(s, 2.5)) < 1e-9
            low, high = percentile(s, 2.5), percentile(s, 97.5)
        else:
            low = high = elo[k]
        total = wins + losses + ties
        out.append(dict(model=m, elo=elo[k], low=low, high=high, wins=wins, losses=losses,
                        ties=ties, win_rate=(wins + ties / 2) / total if total else 0.0))
    out.sort(key=lambda r: (-r["elo"], r["model"]))
    return out, list(zip(models, elo))


def write(name, value):
    path = os.path.join(OUT, name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print("wrote", os.path.relpath(path, ROOT))


def main():
    inputs = json.load(open(INPUTS, encoding="utf-8"))
    os.makedirs(OUT, exist_ok=True)

    examples = []
    corpora = []
    checked = set()
    for c in inputs["corpora"]:
        preds, refs = c["preds"], c["refs"]
        for p, r in zip(preds, refs):
            prec, rec, f1 = squad_scores(p, r)
            examples.append(dict(
                pred=p, ref=r,
                normalized_pred=normalize_answer(p), normalized_ref=normalize_answer(r),
                exact=normalize_answer(p) == normalize_answer(r),
                precision=prec, recall=rec, f1=f1,
                tok13a_pred=TOK13A(p.rstrip()), tok13a_ref=TOK13A(r.rstrip()),
                rouge_tokens_pred=rouge_tokens(p), rouge_tokens_ref=rouge_tokens(r),
                rouge=rouge(p, r),
                sentence_bleu=bleu([p], [r]),
            ))
        metrics, how = score_corpus(preds, refs, c["labels"])
        if how:
            checked.add(how)
        corpora.append(dict(
            name=c["name"], preds=preds, refs=refs, labels=c["labels"], metrics=metrics,
            overall=[dict(judge_average=j, overall=overall(metrics, j))
                     for j in inputs["judges"]],
        ))
    write("examples.json", examples)
    write("corpora.json", corpora)
    write("detect.json", [dict(refs=d["refs"], labels=detect_labels(d["refs"]))
                          for d in inputs["detect"]])
    print("macro-F1 checked by", ", ".join(sorted(checked)))

    cases = []
    for r in inputs["ratings"]:
        out, bt = ratings(r["battles"], r["rounds"], r["seed"])
        cases.append(dict(name=r["name"], battles=r["battles"], rounds=r["rounds"],
                          seed=r["seed"], bradley_terry=bt, ratings=out))
    streams = []
    for seed in inputs["splitmix_seeds"]:
        rng = SplitMix64(seed)
        streams.append(dict(seed=seed, first=[rng.next() for _ in range(4)],
                            below_10=[rng.below(10) for _ in range(8)]))
    write("ratings.json", dict(splitmix=streams, cases=cases))


if __name__ == "__main__":
    main()
