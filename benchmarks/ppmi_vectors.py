"""Character-bigram and lexicon-word vectors from raw Chinese text, for ``rnn_tagger``'s
``bigram_pretrained`` / ``lexicon_pretrained`` when no pretrained vectors are at hand.

Counts each item (a character bigram, or a lexicon word found anywhere in a sentence, as the
tagger's lexicon features find them) with the characters around it, weighs the counts by
positive pointwise mutual information (context counts smoothed with the power 0.75) and keeps
the top ``--dim`` singular directions (a truncated SVD), one unit-length vector per item. The
output is word2vec text (a ``count dim`` header), which the tagger reads. From the repository root::

    python benchmarks/ppmi_vectors.py bigram --out /tmp/bigram.vec \\
        ../shared/data/resume_ner/train.char.bmes ../shared/data/chnsenticorp/train.tsv#1
    python benchmarks/ppmi_vectors.py lexicon --out /tmp/lexicon.vec --max-length 6 \\
        ../shared/data/resume_ner/train.char.bmes ../shared/data/chnsenticorp/train.tsv#1

Inputs: ``PATH`` (one text a line), ``PATH#COLUMN`` (a tab-separated column, 0-based; a first
line equal to a header is read as text too, which costs nothing here) or a ``*.bmes`` /
``*.char`` file (``char tag`` lines, blank line between sentences). Text is normalised as the
Resume config's tokenizer does (NFKC, lowercase). Needs scipy (it comes with scikit-learn).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import unicodedata
from collections import Counter

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from stages.taggers import BIGRAM_EDGE, jieba_dictionary_path, read_word_list  # noqa: E402


def normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower()


def read_sentences(spec: str):
    path, _, column = spec.partition("#")
    with open(path, encoding="utf-8") as f:
        if path.endswith((".bmes", ".char")):
            chars = []
            for line in f:
                fields = line.split()
                if not fields:
                    if chars:
                        yield normalize("".join(chars))
                    chars = []
                else:
                    chars.append(fields[0])
            if chars:
                yield normalize("".join(chars))
            return
        for line in f:
            line = line.rstrip("\n")
            if column:
                fields = line.split("\t")
                line = fields[int(column)] if int(column) < len(fields) else ""
            if line.strip():
                yield normalize(line.strip())


def items_of(kind: str, chars: list, lexicon: frozenset, max_length: int):
    """(item, start, end) of every bigram (with edge markers) or lexicon word in a sentence."""
    if kind == "bigram":
        padded = [BIGRAM_EDGE, *chars, BIGRAM_EDGE]
        for i in range(len(padded) - 1):
            yield padded[i] + padded[i + 1], i - 1, i + 1  # the characters i-1 and i
        return
    for i in range(len(chars)):
        for n in range(2, max_length + 1):
            if i + n <= len(chars) and "".join(chars[i : i + n]) in lexicon:
                yield "".join(chars[i : i + n]), i, i + n


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=("bigram", "lexicon"))
    parser.add_argument("inputs", nargs="+", help="PATH, PATH#COLUMN or a .bmes/.char file")
    parser.add_argument("--out", required=True)
    parser.add_argument("--dim", type=int, default=50)
    parser.add_argument("--window", type=int, default=2, help="context characters on each side")
    parser.add_argument("--min-count", type=int, default=2, help="leave out rarer items")
    parser.add_argument("--max-length", type=int, default=6, help="longest lexicon word (lexicon)")
    args = parser.parse_args(argv)
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import svds

    t0 = time.perf_counter()
    lexicon = frozenset()
    if args.kind == "lexicon":
        lexicon = frozenset(normalize(w) for w in read_word_list(jieba_dictionary_path()) if 2 <= len(w) <= args.max_length)
    pairs, n_sentences, n_chars = Counter(), 0, 0
    for spec in args.inputs:
        for sentence in read_sentences(spec):
            chars = list(sentence)
            n_sentences += 1
            n_chars += len(chars)
            for item, start, end in items_of(args.kind, chars, lexicon, args.max_length):
                for j in range(max(start - args.window, 0), start):
                    pairs[item, "L" + chars[j]] += 1
                for j in range(max(end, 0), min(end + args.window, len(chars))):
                    pairs[item, "R" + chars[j]] += 1
    item_counts, context_counts = Counter(), Counter()
    for (item, context), c in pairs.items():
        item_counts[item] += c
        context_counts[context] += c
    # Items holding whitespace cannot be written in the vectors format (nor tagged: the tokenizer drops spaces).
    items = sorted(i for i, c in item_counts.items() if c >= args.min_count and not any(ch.isspace() for ch in i))
    item_index = {w: k for k, w in enumerate(items)}
    contexts = sorted(context_counts)
    context_index = {w: k for k, w in enumerate(contexts)}
    rows, cols, values = [], [], []
    smoothed = np.array([context_counts[c] ** 0.75 for c in contexts])
    smoothed /= smoothed.sum()
    for (item, context), c in pairs.items():
        k = item_index.get(item)
        if k is None:
            continue
        j = context_index[context]
        pmi = np.log(c / (item_counts[item] * smoothed[j]))  # log P(item, context) / (P(item) P_0.75(context))
        if pmi > 0:
            rows.append(k)
            cols.append(j)
            values.append(pmi)
    matrix = coo_matrix((values, (rows, cols)), shape=(len(items), len(contexts))).tocsr()
    u, s, _ = svds(matrix, k=min(args.dim, min(matrix.shape) - 1))
    vectors = u * np.sqrt(s)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-8)
    if vectors.shape[1] < args.dim:
        vectors = np.pad(vectors, ((0, 0), (0, args.dim - vectors.shape[1])))
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(f"{len(items)} {args.dim}\n")
        for item, vec in zip(items, vectors):
            f.write(item + " " + " ".join(f"{v:.5f}" for v in vec) + "\n")
    print(f"{args.kind}: {len(items)} vectors ({args.dim} values) from {n_sentences} sentences, {n_chars} characters, "
          f"{len(contexts)} contexts, in {time.perf_counter() - t0:.0f} s -> {args.out}")


if __name__ == "__main__":
    main()
