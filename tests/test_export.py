import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from pipeline import Pipeline  # noqa: E402
from pipeline.export import (  # noqa: E402
    ExportError,
    GraphText,
    export_pipeline,
    float32_at_least,
    golden_check,
    padded_ids,
)
from pipeline.tagging import tokenize_with_offsets  # noqa: E402
from stages import (  # noqa: E402
    CharTokenizer,
    EmbeddingVectorizer,
    JiebaTokenizer,
    LabelDecoder,
    NLTKTokenizer,
    OneHotVectorizer,
    RNNClassifier,
    Vocabulary,
    WhitespaceTokenizer,
)
from tests.conftest import ZH_NEG, ZH_POS  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXTS = ZH_POS[:4] + ZH_NEG[:4] + ["ＯＫ，iPhone12很好", "Bad ＭＯＶＩＥ，太差"]
LABELS = ["pos"] * 4 + ["neg"] * 4 + ["pos", "neg"]
# Full-width letters and digits, upper case, ideographic spaces, accents and unknown characters.
TRICKY = ["ＧＲＥＡＴ电影！", "ＢＡＤ　ｍｏｖｉｅ", "IPHONE１２很好", "Café ÉLAN", "", "   ", "☃🙂", "好" * 30]
SUBPROCESS_ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow")


def _fit(tokenizer, vectorizer, decoder, texts=TEXTS, labels=LABELS, ensemble=1, ngrams=0, ngram_norm="sum"):
    # ngram_scale 20: after one epoch the n-gram bag's scores are large enough to matter in
    # the golden check's comparison
    p = Pipeline.from_stages(
        tokenizer=tokenizer,
        vocabulary=Vocabulary(),
        vectorizer=vectorizer,
        model=RNNClassifier(cell="gru", units=4, bidirectional=False, dropout=0.1, ensemble=ensemble, ngrams=ngrams, ngram_scale=20.0,
                             ngram_norm=ngram_norm),
        decoder=decoder,
    )
    return p.fit(texts, labels, epochs=1, batch_size=4, seed=1, verbose=0)


@pytest.fixture(scope="module")
def char_export(tmp_path_factory):
    """A tiny char-level classifier (alnum runs, lower-case, NFKC, top 2) and its SavedModel."""
    p = _fit(
        CharTokenizer(keep_alnum_runs=True, lowercase=True),
        OneHotVectorizer(max_length=8),
        LabelDecoder(top_k=2),
    )
    path = str(tmp_path_factory.mktemp("char") / "saved_model")
    return p, path, p.export(path)


@pytest.fixture(scope="module")
def jieba_export(tmp_path_factory):
    """A tiny jieba word-level multi-label classifier, pre-truncated and pre-padded, with a
    bag of uni- and bigrams divided by the root of the token count (so the graph must count
    the real tokens of pre-padded rows)."""
    labels = [["pos", "zh"] if y == "pos" else ["neg", "zh"] for y in LABELS]
    p = _fit(
        JiebaTokenizer(),
        EmbeddingVectorizer(dim=4, max_length=5, truncation="pre", padding="pre"),
        LabelDecoder(multi_label=True, threshold=0.5),
        labels=labels,
        ngrams=2,
        ngram_norm="sqrt",
    )
    path = str(tmp_path_factory.mktemp("jieba") / "saved_model")
    return p, path, p.export(path)


def _loaded(path):
    return tf.saved_model.load(path)


# -- signatures and the report ------------------------------------------------------------------
SIGNATURES = ["serve_text", "serve_tokens", "serving_default"]


def test_export_default_signature_takes_raw_text(char_export):
    _, path, report = char_export
    assert sorted(report["signatures"]) == SIGNATURES
    assert sorted(_loaded(path).signatures) == SIGNATURES
    assert report["signatures"]["serving_default"]["inputs"] == ["text"]
    assert report["signatures"]["serve_text"]["inputs"] == ["text"]
    assert report["signatures"]["serve_tokens"]["inputs"] == ["tokens"]
    assert report["signatures"]["serving_default"]["outputs"] == ["label", "score", "scores", "top_k_labels", "top_k_scores"]


def test_export_jieba_pipeline_segments_raw_text_in_the_graph(jieba_export):
    p, path, report = jieba_export
    assert sorted(report["signatures"]) == SIGNATURES
    assert "over_threshold" in report["signatures"]["serving_default"]["outputs"]
    loaded = _loaded(path)
    texts = ["这部电影很好看，服务很好", "ＯＫ，iPhone12很好", ""]
    got = [[t.decode() for t in row] for row in loaded.tokenize(tf.constant(texts)).to_list()]
    assert got == p.tokenize(texts)
    out = loaded.signatures["serving_default"](text=tf.constant(texts))
    np.testing.assert_allclose(out["scores"].numpy(), p.predict_scores(texts), atol=1e-5)


def test_export_answers_odd_batches_with_the_same_layout(char_export, jieba_export):
    from tests.conftest import check_odd_batches

    for p, path, _ in (char_export, jieba_export):
        loaded = check_odd_batches(path)
        out = loaded.signatures["serving_default"](text=tf.constant(["", "   "]))
        np.testing.assert_allclose(out["scores"].numpy(), p.predict_scores(["", "   "]), atol=1e-5)


def test_export_report_counts_checked_samples(char_export):
    _, path, report = char_export
    assert report["checked"] and report["path"] == os.path.abspath(path)
    assert report["n_samples"] >= 20
    assert 0.0 <= report["max_score_difference"] <= 1e-5


def test_export_writes_vocabulary_and_labels_assets(char_export):
    p, path, _ = char_export
    with open(os.path.join(path, "assets", "labels.txt"), encoding="utf-8") as f:
        assert f.read().split("\n")[:-1] == p.labels
    with open(os.path.join(path, "assets", "vocab.txt"), encoding="utf-8") as f:
        assert f.read().split("\n")[:-1] == p.stage("vocabulary").tokens_
    assert [b.decode() for b in _loaded(path).label_names.numpy()] == p.labels


# -- answers agree with Python ------------------------------------------------------------------
def test_export_text_signature_agrees_on_full_width_and_upper_case(char_export):
    p, path, _ = char_export
    loaded = _loaded(path)
    tokens = [[t.decode() for t in row] for row in loaded.tokenize(tf.constant(TRICKY)).to_list()]
    assert tokens == p.tokenize(TRICKY)
    assert tokens[0][:1] == ["great"] and tokens[2][:1] == ["iphone12"]
    out = loaded.signatures["serving_default"](text=tf.constant(TRICKY))
    answers = p.predict(TRICKY)
    assert [b.decode() for b in out["label"].numpy()] == [a["label"] for a in answers]
    np.testing.assert_allclose(out["scores"].numpy(), p.predict_scores(TRICKY), atol=1e-5)
    assert [[b.decode() for b in row] for row in out["top_k_labels"].numpy()] == [
        [t["label"] for t in a["top_k"]] for a in answers
    ]


def test_export_tokens_signature_truncates_and_pads_like_the_vectorizer(jieba_export):
    p, path, _ = jieba_export
    texts = ["这部电影很好看，服务很好，质量不错，非常喜欢", "太差", ""]
    tokens = p.tokenize(texts)
    width = max(len(t) for t in tokens)
    padded = [t + [""] * (width - len(t)) for t in tokens]
    out = _loaded(path).signatures["serve_tokens"](tokens=tf.constant(padded))
    np.testing.assert_allclose(out["scores"].numpy(), p.predict_scores(texts), atol=1e-5)
    answers = p.predict(texts)
    chosen = [[lab for lab, on in zip(p.labels, row) if on] for row in out["over_threshold"].numpy()]
    assert [sorted(c) for c in chosen] == [sorted(a["labels"]) for a in answers]


def test_export_loads_and_answers_without_the_project_packages(char_export, jieba_export, tmp_path):
    script = textwrap.dedent(
        """
        import importlib.abc, json, sys

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("pipeline", "stages", "jieba", "nltk"):
                    raise ImportError("this process must not import " + name)

        sys.meta_path.insert(0, Block())
        import tensorflow as tf

        char = tf.saved_model.load(sys.argv[1])
        jieba = tf.saved_model.load(sys.argv[2])
        texts = json.loads(sys.argv[3])
        tokens = tf.ragged.constant(json.loads(sys.argv[4])).to_tensor(default_value="")
        char_out = char.signatures["serving_default"](text=tf.constant(texts))
        jieba_out = jieba.signatures["serving_default"](text=tf.constant(texts))
        token_out = jieba.signatures["serve_tokens"](tokens=tokens)
        print(json.dumps({
            "char": [b.decode() for b in char_out["label"].numpy()],
            "jieba": [b.decode() for b in jieba_out["label"].numpy()],
            "jieba_tokens": [b.decode() for b in token_out["label"].numpy()],
            "leaked": sorted(m for m in sys.modules if m.split(".")[0] in ("pipeline", "stages", "jieba", "nltk")),
        }))
        """
    )
    char_p, char_path, _ = char_export
    jieba_p, jieba_path, _ = jieba_export
    args = [char_path, jieba_path, json.dumps(TRICKY), json.dumps(jieba_p.tokenize(TRICKY))]
    # -I: isolated mode, so neither PYTHONPATH nor the working folder can bring our packages in.
    out = subprocess.run(
        [sys.executable, "-I", "-c", script, *args], capture_output=True, text=True, env=SUBPROCESS_ENV,
        cwd=str(tmp_path), timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["leaked"] == []
    assert result["char"] == [a["label"] for a in char_p.predict(TRICKY)]
    assert result["jieba"] == result["jieba_tokens"] == [a["label"] for a in jieba_p.predict(TRICKY)]


def _cli(*args):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    if not os.path.exists(cli):
        pytest.skip("saved_model_cli is not installed next to this Python")
    return subprocess.run([cli, *args], capture_output=True, text=True, env=SUBPROCESS_ENV, timeout=300)


def test_export_saved_model_cli_show_lists_the_signatures(char_export):
    _, path, _ = char_export
    out = _cli("show", "--dir", path, "--all")
    assert out.returncode == 0, out.stderr[-3000:]
    assert all(f"signature_def['{name}']" in out.stdout for name in SIGNATURES)
    assert "inputs['text']" in out.stdout and "inputs['tokens']" in out.stdout


def test_export_saved_model_cli_run_takes_input_exprs(char_export):
    p, path, _ = char_export
    texts = ["ＧＲＥＡＴ电影", "太差"]
    out = _cli("run", "--dir", path, "--tag_set", "serve", "--signature_def", "serving_default",
               "--input_exprs", f"text={texts!r}")
    assert out.returncode == 0, out.stderr[-3000:]
    printed = out.stdout.split("Result for output key label:")[1].split("Result for")[0].strip()
    assert printed == "[" + " ".join(repr(a["label"].encode()) for a in p.predict(texts)) + "]"


# -- the golden check ---------------------------------------------------------------------------
def test_golden_check_raises_on_a_different_label(char_export, monkeypatch, tmp_path):
    p, _, _ = char_export
    real_predict = p.predict

    def tampered(texts, batch_size=None):
        answers = real_predict(texts, batch_size)
        flip = {p.labels[0]: p.labels[1], p.labels[1]: p.labels[0]}
        answers[1] = dict(answers[1], label=flip[answers[1]["label"]])
        return answers

    monkeypatch.setattr(p, "predict", tampered)
    target = tmp_path / "tampered"
    with pytest.raises(ExportError, match=r"(?s)disagrees with the Python pipeline on 1 of 2 .*\[1\] '太差': label"):
        p.export(str(target), samples=["很好看", "太差"])
    assert not target.exists()
    assert os.listdir(tmp_path) == []


def test_golden_check_raises_on_a_score_difference(char_export, monkeypatch):
    p, path, _ = char_export
    real_scores = p.predict_scores
    monkeypatch.setattr(p, "predict_scores", lambda texts, batch_size=None: real_scores(texts) + 1e-3)
    with pytest.raises(ExportError, match="scores differ by 0.001"):
        golden_check(p, path, ["很好看"])


def test_export_of_an_ensemble_answers_like_the_pipeline(tmp_path):
    # with a bag of 1- to 3-grams, so the hashing runs in the exported graph too
    p = _fit(CharTokenizer(), OneHotVectorizer(max_length=8), LabelDecoder(), ensemble=2, ngrams=3)
    assert "ngram_bag" in [layer.name for layer in p.stage("model").model_.get_layer("member_1").layers]
    report = p.export(str(tmp_path / "saved_model"))  # the golden check compares every sample
    assert report["checked"] and report["n_samples"] >= 20 and report["max_score_difference"] <= 1e-5
    served = _loaded(str(tmp_path / "saved_model")).signatures["serving_default"](text=tf.constant(["好看", "难看"]))
    expected = p.predict_scores(["好看", "难看"]).max(axis=1)
    np.testing.assert_allclose(served["score"].numpy().reshape(2, -1)[:, 0], expected, rtol=1e-5)


def test_golden_check_passes_on_the_default_samples(jieba_export):
    p, path, report = jieba_export
    assert report["checked"] and report["max_score_difference"] <= 1e-5
    assert golden_check(p, path, ["", "很好看"])["n_samples"] == 2


# -- destination handling and refusals ------------------------------------------------------------
def test_export_refuses_an_existing_saved_model_without_overwrite(char_export):
    p, path, _ = char_export
    with pytest.raises(FileExistsError, match="--overwrite"):
        p.export(path)


def test_export_refuses_a_folder_that_is_not_a_saved_model(char_export, tmp_path):
    p, _, _ = char_export
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        p.export(str(tmp_path), overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_export_overwrite_replaces_a_saved_model(char_export, tmp_path):
    p, path, _ = char_export
    target = tmp_path / "again"
    shutil.copytree(path, target)
    (target / "stale.txt").write_text("old")
    report = p.export(str(target), overwrite=True, check=False)
    assert not report["checked"] and not (target / "stale.txt").exists()
    assert sorted(_loaded(str(target)).signatures) == SIGNATURES


def test_export_refuses_an_unfitted_pipeline(tmp_path):
    from pipeline import NotFittedError

    p = Pipeline.from_stages(
        tokenizer=CharTokenizer(), vocabulary=Vocabulary(), vectorizer=OneHotVectorizer(),
        model=RNNClassifier(units=4), decoder=LabelDecoder(),
    )
    with pytest.raises(NotFittedError, match="Cannot export"):
        export_pipeline(p, str(tmp_path / "x"))


def test_export_refuses_a_single_string_as_samples(char_export, tmp_path):
    p, _, _ = char_export
    with pytest.raises(TypeError, match="wrap it in a list"):
        p.export(str(tmp_path / "x"), samples="很好")


# -- graph pieces, without a model --------------------------------------------------------------
GRAPH_TEXTS = [
    "", "  \t", "ＡＢＣ ｄｅｆ １２３！", "Café ÉLAN naïve", "ΟΔΟΣ ΟΔΟΣ.", "İSTANBUL", "这部电影\u3000真好看",
    "a\tb\nc\x0bd\x1ce\x85f\u2028g\u00a0h\u202fi", "ﬁne ㎏ ①② Ⅻ", "iPhone12很好用OK", "x\x00Y", "𐕰Ꟁ",
    "🙂👍🏽", "\ufeffBOM", "ｶﾞｷﾞ ﾊﾟ", "e\u0301 a\u0302\u0323 \u1100\u1161\u11a8", "A1-b2_c3",
    'He said "no" -- it\'s (not) ``fine\'\'...', "我来到北京清华大学，他来到了网易杭研大厦", "3.5%的增长 C++和C#\r\n",
]


@pytest.mark.parametrize(
    "tokenizer",
    [
        CharTokenizer(),
        CharTokenizer(lowercase=True),
        CharTokenizer(keep_alnum_runs=True, lowercase=True),
        CharTokenizer(keep_alnum_runs=True, nfkc=False),
        WhitespaceTokenizer(),
        WhitespaceTokenizer(lowercase=True, nfkc=False),
        NLTKTokenizer(),
        NLTKTokenizer(method="treebank", lowercase=True),
        NLTKTokenizer(method="wordpunct"),
        NLTKTokenizer(method="regexp", pattern=r"[A-Za-z]+|\d+(?:\.\d+)?|\S"),
        JiebaTokenizer(),
        JiebaTokenizer(hmm=False, lowercase=True, extra_words=["好用OK"]),
    ],
    ids=repr,
)
def test_graph_text_tokens_and_offsets_match_python(tokenizer):
    graph = GraphText(tokenizer)
    out = tf.function(graph.segment)(tf.constant(GRAPH_TEXTS))
    tokens = [[t.decode("utf-8") for t in row] for row in out["tokens"].to_list()]
    assert tokens == tokenizer.transform(GRAPH_TEXTS)
    python = [tokenize_with_offsets(tokenizer, t) for t in GRAPH_TEXTS]
    assert [[t.decode("utf-8") for t in row] for row in out["raw"].to_list()] == [s.raw for s in python]
    spans = [list(zip(a, b)) for a, b in zip(out["start"].to_list(), out["end"].to_list())]
    assert spans == [s.spans for s in python]


def test_graph_text_of_an_empty_batch_is_empty():
    out = GraphText(CharTokenizer(lowercase=True)).segment(tf.constant([], tf.string))
    assert out["tokens"].to_list() == [] and out["start"].to_list() == []


def test_graph_text_replaces_bytes_that_are_not_utf8_as_python_does():
    bad = [b"\xff", b"a\xe4\xb8", b"\xed\xa0\x80x", b"\xc0\xaf", b"\xe4\xb8\xe4\xb8\xad"]
    got = GraphText(CharTokenizer()).tokenize(tf.constant(bad)).to_list()
    assert [[t.decode("utf-8") for t in row] for row in got] == CharTokenizer().transform([b.decode("utf-8", "replace") for b in bad])


def test_graph_text_refuses_options_it_cannot_reproduce():
    with pytest.raises(ExportError, match="mode: full"):
        GraphText(JiebaTokenizer(mode="full"))
    with pytest.raises(ExportError, match="tweet"):
        GraphText(NLTKTokenizer(method="tweet"))


@pytest.mark.parametrize("max_length", [None, 1, 3, 6])
@pytest.mark.parametrize("truncation", ["post", "pre"])
@pytest.mark.parametrize("padding", ["post", "pre"])
def test_padded_ids_match_the_vectorizer(max_length, truncation, padding):
    rows = [[], [5], [2, 3, 4], [9, 8, 7, 6, 5, 4], [0, 1, 7]]
    vectorizer = OneHotVectorizer(max_length=max_length, truncation=truncation, padding=padding)
    got = padded_ids(tf.ragged.constant(rows, dtype=tf.int64), max_length, truncation, padding).numpy()
    np.testing.assert_array_equal(got, vectorizer.transform(rows))


@pytest.mark.parametrize("threshold", [0.5, 0.3, 0.1, 0.7, 1 / 3])
def test_float32_threshold_matches_the_float64_comparison(threshold):
    t = float32_at_least(threshold)
    below = np.nextafter(t, np.float32(-np.inf))
    assert float(t) >= threshold and float(below) < threshold


# -- another Keras backend ----------------------------------------------------------------------
JAX_EXPORT = textwrap.dedent(
    """
    import json, sys
    import keras
    from pipeline import Pipeline
    from stages import CharTokenizer, Vocabulary, OneHotVectorizer, RNNClassifier, LabelDecoder
    from tests.conftest import ZH_POS, ZH_NEG
    assert keras.backend.backend() == "jax"
    p = Pipeline.from_stages(tokenizer=CharTokenizer(), vocabulary=Vocabulary(), vectorizer=OneHotVectorizer(max_length=8),
                             model=RNNClassifier(cell="gru", units=4, bidirectional=False), decoder=LabelDecoder())
    p.fit(ZH_POS + ZH_NEG, ["pos"] * 6 + ["neg"] * 6, epochs=1, verbose=0)
    report = p.export(sys.argv[1])
    print(json.dumps({"report": report, "labels": [a["label"] for a in p.predict(["很好看", "太差"])]}))
    """
)


@pytest.mark.slow
def test_export_from_the_jax_backend_writes_in_a_tensorflow_child(tmp_path):
    pytest.importorskip("jax")
    env = dict(SUBPROCESS_ENV, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-c", JAX_EXPORT, str(tmp_path / "sm")], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["report"]["keras_backend"] == "jax" and result["report"]["checked"]
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    labels = loaded.signatures["serving_default"](text=tf.constant(["很好看", "太差"]))["label"].numpy()
    assert [b.decode() for b in labels] == result["labels"]
