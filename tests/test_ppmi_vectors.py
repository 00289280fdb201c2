import importlib.util
import os

import numpy as np
import pytest

from stages.vectorizers import read_vectors

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _script():
    spec = importlib.util.spec_from_file_location("ppmi_vectors", os.path.join(ROOT, "benchmarks", "ppmi_vectors.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("kind", ["bigram", "lexicon"])
def test_ppmi_vectors_put_items_of_the_same_contexts_together(kind, tmp_path):
    # 北京 and 上海 occur in the same contexts, 喜欢 in others.
    lines = ["我在北京工作", "我在上海工作", "他在北京上学", "他在上海上学", "我很喜欢你", "他很喜欢我"] * 3
    text = tmp_path / "text.tsv"
    text.write_text("\n".join(f"1\t{line}" for line in lines) + "\n", encoding="utf-8")
    out = tmp_path / "vectors.vec"
    _script().main([kind, f"{text}#1", "--out", str(out), "--dim", "4"])
    vectors, dim = read_vectors(str(out))
    assert dim == 4 and {"北京", "上海", "喜欢"} <= set(vectors)
    assert ("<s>我" in vectors) == (kind == "bigram")
    assert all(abs(np.linalg.norm(v) - 1) < 1e-3 for v in vectors.values())
    assert vectors["北京"] @ vectors["上海"] > 0.9 > vectors["北京"] @ vectors["喜欢"]
