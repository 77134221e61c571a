"""Seeds the fuzz corpora from the test vectors in docs/PROTOCOL.md.

    python3 fuzz/make_corpus.py [CORPUS_DIR]    # default: fuzz/corpus
"""
import os
import re
import struct
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))
CORPUS = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "corpus")
doc = open(os.path.join(ROOT, "..", "docs", "PROTOCOL.md")).read()
vectors = {}
for name, block in re.findall(r"#### vector: (\w+)\n\n```text\n(.*?)```", doc, re.S):
    vectors[name] = bytes.fromhex("".join(block.split()))
for target in ("decode_frame", "node_datagrams", "ffi_reconcile"):
    os.makedirs(os.path.join(CORPUS, target), exist_ok=True)
for name, data in vectors.items():
    open(os.path.join(CORPUS, "decode_frame", name), "wb").write(data)
seq = b"".join(struct.pack(">HB", len(d), 10) + d for d in vectors.values())
open(os.path.join(CORPUS, "node_datagrams", "all_vectors"), "wb").write(seq)
bowtie = bytes([5, 6, 2, 0, 1, 0, 2, 1, 2, 2, 3, 2, 4, 3, 4, 0, 1, 2, 2, 3, 4]) + b"".join(
    struct.pack("<d", x) for x in (1.0, -0.5, 2.25, 0.75, -1.5, 3.0))
open(os.path.join(CORPUS, "ffi_reconcile", "bowtie"), "wb").write(bowtie)
print(f"corpus: {len(vectors)} vectors")
