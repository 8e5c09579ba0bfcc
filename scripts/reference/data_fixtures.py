"""Parquet fixtures for crates/data/tests (written by pyarrow, the reader most users' files come from).

Rerun: python3 scripts/reference/data_fixtures.py   (pyarrow; pinned in xtask's Python packages)
"""
import pathlib

import pyarrow as pa
import pyarrow.parquet as pq

OUT = pathlib.Path(__file__).resolve().parents[2] / "crates/data/tests/fixtures"

rows = {
    "id": list(range(1, 7)),
    "question": [
        "How do I undo the last git commit?",
        "What does HTTP 404 mean?",
        "Wie spät ist es?",
        "How do I list files, including hidden ones?",
        None,
        "How do I undo the last git commit?",
    ],
    "answer": [
        "Run `git reset --soft HEAD~1`: the commit is undone and its changes stay staged.",
        "The server cannot find the requested resource.",
        "Es ist drei Uhr.",
        "Use `ls -a`.",
        "An answer without a question.",
        "Run `git reset --soft HEAD~1`: the commit is undone and its changes stay staged.",
    ],
    "score": [0.9, 0.8, 0.7, 0.95, 0.1, 0.9],
}
table = pa.table(rows)
pq.write_table(table, OUT / "qa.snappy.parquet", compression="snappy", row_group_size=4)
pq.write_table(table, OUT / "qa.zstd.parquet", compression="zstd")
print("wrote", OUT)
