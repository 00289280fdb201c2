import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from pipeline import Pipeline  # noqa: E402
from pipeline.export import ExportError, golden_check  # noqa: E402

from test_tagging import EN_TAGS, EN_TOKENS, ZH_SPANS, ZH_TEXTS, tagging_config  # noqa: E402


@pytest.fixture(scope="module")
def en_export(tmp_path_factory):
    # max_length 4 makes most samples long, so splitting runs in the graph too. An ensemble of two
    # CRF taggers: the graph decodes with the members' mean scores and mean transitions.
    p = Pipeline.from_config(tagging_config(max_length=4, features={"chars": {"dim": 4, "units": 4}, "shape": {}}, ensemble=2))
    p.fit(EN_TOKENS * 3, EN_TAGS * 3, epochs=6)
    path = str(tmp_path_factory.mktemp("export") / "saved_model")
    report = p.export(path, samples=["Carl met Anna in Oslo .", "Acme Corp hired Bob Lind in Rome today", "", "ÉLAN ｘ 1996"])
    return p, path, report


def test_tagging_export_passes_its_golden_check(en_export):
    p, _, report = en_export
    assert p.stage("model").is_ensemble
    assert report["checked"] and report["n_samples"] == 4
    assert set(report["signatures"]) == {"serving_default", "serve_text", "serve_tokens"}
    assert report["signatures"]["serving_default"]["inputs"] == ["text"]
    assert "entity_start" in report["signatures"]["serving_default"]["outputs"]
    assert "entity_score" in report["signatures"]["serve_tokens"]["outputs"]


def test_tagging_export_answers_odd_batches_with_the_same_layout(en_export):
    from tests.conftest import check_odd_batches

    out = check_odd_batches(en_export[1]).signatures["serving_default"](text=tf.constant(["", "  "]))
    assert out["lengths"].numpy().tolist() == [0, 0] and out["num_entities"].numpy().tolist() == [0, 0]


def test_tagging_export_tags_tokens_with_viterbi_in_the_graph(en_export):
    p, path, _ = en_export
    loaded = tf.saved_model.load(path)
    tokens = tf.constant([["Anna", "met", "Bob", "in", "Oslo", "."], ["Acme", "Corp", "", "", "", ""]])
    out = loaded.signatures["serve_tokens"](tokens=tokens)
    tags = [[t.decode() for t in row[:n]] for row, n in zip(out["tags"].numpy(), out["lengths"].numpy())]
    assert tags == [a["tags"] for a in p.predict([["Anna", "met", "Bob", "in", "Oslo", "."], ["Acme", "Corp"]])]
    assert out["num_entities"].numpy().tolist() == [len(a["entities"]) for a in p.predict(["Anna met Bob in Oslo .", "Acme Corp"])]


def test_tagging_export_golden_check_notices_a_changed_model(en_export, tmp_path):
    p, path, _ = en_export
    crf = p.stage("model").crf
    saved = crf.transitions.numpy()
    try:
        crf.transitions.assign(saved + np.random.default_rng(0).normal(0, 5.0, saved.shape).astype("float32"))
        with pytest.raises(ExportError, match="disagrees with the Python pipeline"):
            golden_check(p, path, ["Anna met Bob in Oslo .", "Carl Lind works for Acme Corp in Rome ."])
    finally:
        crf.transitions.assign(saved)


def test_tagging_export_of_char_level_chinese_returns_spans_of_the_raw_text(tmp_path):
    cfg = tagging_config(tokenizer="char", output="softmax", features={"bigrams": {"dim": 4}},
                         data={"scheme": "bio", "long_sentences": "truncate"}, max_length=6)
    p = Pipeline.from_config(cfg).fit(ZH_TEXTS * 3, ZH_SPANS * 3, epochs=8)
    texts = ["王芳 在 北京工作。", "张伟和李红去上海工作。"]
    report = p.export(str(tmp_path / "sm"), samples=texts + ["", "ＡＢ 张伟"])
    assert report["checked"]
    out = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"](text=tf.constant(texts))
    for i, answer in enumerate(p.predict(texts)):
        n = int(out["num_entities"][i])
        got = [(out["entity_type"][i][j].numpy().decode(), int(out["entity_start"][i][j]), int(out["entity_end"][i][j]),
                out["entity_text"][i][j].numpy().decode()) for j in range(n)]
        assert got == [(e["type"], e["start"], e["end"], e["text"]) for e in answer["entities"]]


def test_tagging_export_computes_word_boundaries_with_jieba_in_the_graph(tmp_path):
    cfg = tagging_config(tokenizer="char", features={"word_boundary": {"dim": 2}}, max_length=6)
    p = Pipeline.from_config(cfg).fit(ZH_TEXTS * 3, ZH_SPANS * 3, epochs=3)
    report = p.export(str(tmp_path / "sm"), samples=ZH_TEXTS + ["", "ＡＢ 张伟去上海工作", "我来到北京清华大学"])
    assert report["checked"]
    from pipeline.export.tagging_features import GraphWordBoundary

    texts = ["张伟和李红去上海工作。", "我来到北京清华大学", "他来到了网易杭研大厦", ""]
    sentences = p.tokenize(texts)
    normal = tf.ragged.constant([list(s) for s in sentences], dtype=tf.string, ragged_rank=1)
    model = p.stage("model")
    got = GraphWordBoundary(model.feature("word_boundary"), tf.Module())(None, normal)["boundary_ids"].to_list()
    assert got == [model.feature_arrays(s)["boundary_ids"].tolist() if len(s) else [] for s in sentences]


def test_tagging_export_of_a_jieba_word_tagger_maps_words_back_to_the_raw_text(tmp_path):
    cfg = tagging_config(tokenizer="jieba", max_length=5)
    cfg["stages"]["tokenizer"].update(lowercase=True, extra_words=["李红"])
    p = Pipeline.from_config(cfg).fit(ZH_TEXTS * 3, ZH_SPANS * 3, epochs=4)
    texts = ["张伟和李红去上海工作。", "ＡＢ 王芳在北京工作", "", "我来到北京清华大学，他来到了网易杭研大厦"]
    report = p.export(str(tmp_path / "sm"), samples=texts)
    assert report["checked"]
    served = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"](text=tf.constant(texts))
    out = {k: v.numpy() for k, v in served.items()}
    for i, sentence in enumerate(p.tokenize(texts)):
        n = int(out["lengths"][i])
        assert [t.decode() for t in out["tokens"][i][:n]] == sentence.raw
        assert list(zip(out["token_start"][i][:n].tolist(), out["token_end"][i][:n].tolist())) == sentence.spans


def test_tagging_export_refuses_overlapping_jieba_words(tmp_path):
    cfg = tagging_config(tokenizer="jieba")
    cfg["stages"]["tokenizer"]["mode"] = "search"
    p = Pipeline.from_config(cfg).fit(ZH_TEXTS, ZH_SPANS, epochs=1)
    with pytest.raises(ExportError, match="mode: search gives overlapping words"):
        p.export(str(tmp_path / "sm"))
    assert not os.path.exists(tmp_path / "sm")


@pytest.mark.slow
def test_tagging_export_from_the_jax_backend(tmp_path):
    pytest.importorskip("jax")
    tests = os.path.dirname(os.path.abspath(__file__))
    script = textwrap.dedent(
        f"""
        import sys; sys.path.insert(0, {tests!r})
        from pipeline import Pipeline
        from test_tagging import EN_TOKENS, EN_TAGS, tagging_config
        p = Pipeline.from_config(tagging_config()).fit(EN_TOKENS * 3, EN_TAGS * 3, epochs=3)
        r = p.export({str(tmp_path / "sm")!r}, samples=["Anna met Bob in Oslo .", ""])
        assert r["checked"] and r["keras_backend"] == "jax", r
        print("JAX-EXPORT-OK")
        """
    )
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600,
                            cwd=os.path.dirname(tests))
    assert "JAX-EXPORT-OK" in result.stdout, result.stderr[-3000:]


@pytest.mark.parametrize("lexicon_dim", [0, 3])
def test_tagging_export_computes_lexicon_features_in_the_graph(lexicon_dim, tmp_path):
    from pipeline.export.tagging_features import GraphLexicon
    from stages.taggers import LEXICON_CLASSES, lexicon_matrix, lexicon_word_ids

    words = tmp_path / "words.txt"
    words.write_text("北京 ns\n张伟 nr\n上海工作\n工作 n\n海工\n北京工作 nt\n李红去\n", encoding="utf-8")
    # With word vectors: words matched under 4 times in training (上海工作, 海工, 北京工作) share
    # the vector of their part of speech (北京工作: organization) or <unk>.
    vectors = {"pos": True, "word_min_freq": 4} if lexicon_dim else {}
    lexicon_options = {"jieba": False, "path": str(words), "max_length": 4, "dim": lexicon_dim, **vectors}
    cfg = tagging_config(tokenizer="char", features={"bigrams": {"dim": 4}, "lexicon": lexicon_options}, max_length=6)
    # Without word vectors only the in-graph lookup is compared (the export path is the same).
    p = Pipeline.from_config(cfg).fit(ZH_TEXTS * 3, ZH_SPANS * 3, epochs=8 if lexicon_dim else 1)
    texts = ["张伟去上海工作。", "", "北京工作", "张伟和李红去上海工作，王芳在北京工作。", "工"]
    sentences = p.tokenize(texts)
    model = p.stage("model")
    normal = tf.ragged.constant([list(s) for s in sentences], dtype=tf.string, ragged_rank=1)
    lexicon = model.feature("lexicon")
    flags, ids = GraphLexicon(lexicon, tf.Module()).matrices(normal)
    want = np.concatenate([lexicon_matrix(list(s), set(lexicon.lexicon_), 4) for s in sentences])
    assert want.sum() > 10 and flags.numpy().tolist() == want.tolist()
    if lexicon_dim:
        index = dict(zip(lexicon.lexicon_, lexicon.ids_of(lexicon.lexicon_)))
        want_ids = np.concatenate([lexicon_word_ids(list(s), index, 4) for s in sentences])
        assert len(set(want_ids.flat)) > 3 and ids.numpy().tolist() == want_ids.tolist()
        assert index["北京工作"] == 2 + LEXICON_CLASSES.index("organization") and index["海工"] == 1
    if not lexicon_dim:
        return
    # The long sample (split into pieces of 6 characters) keeps the words across the cuts.
    report = p.export(str(tmp_path / "sm"), samples=texts + ["ＡＢ 张伟 上海工作"])
    assert report["checked"] and (tmp_path / "sm" / "assets" / "lexicon.txt").is_file()
