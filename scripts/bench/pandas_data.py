"""Peer of `vibeflow bench data`: pandas doing the comparable work on the same JSONL file.

Reads the file (read_json, lines=True), drops duplicates, measures string lengths of the input
and output columns, counts empty ones, and prints one JSON line: rows/s and peak RSS.
Usage: python3 pandas_data.py FILE.jsonl
"""
import json
import sys
import time

import pandas as pd

from common import peak_rss


def main():
    path = sys.argv[1]
    t = time.perf_counter()
    df = pd.read_json(path, lines=True)
    rows = len(df)
    dedup = df.drop_duplicates()
    lengths = {c: df[c].fillna("").str.len() for c in ("instruction", "response")}
    empty = int(sum((v == 0).sum() for v in lengths.values()))
    summary = {c: v.describe(percentiles=[0.5, 0.95]).to_dict() for c, v in lengths.items()}
    secs = time.perf_counter() - t
    print(json.dumps({
        "rows": rows,
        "duplicates": rows - len(dedup),
        "empty": empty,
        "seconds": secs,
        "rows_per_second": rows / secs,
        "peak_rss_bytes": peak_rss(),
        "mean_input_chars": summary["instruction"]["mean"],
    }))


if __name__ == "__main__":
    main()
