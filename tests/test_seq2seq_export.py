"""SavedModel export of translation pipelines (pipeline.export.translation): raw text in, search
in the graph, golden check against the Python pipeline; and of language models
(pipeline.export.language_model)."""

import pytest

from pipeline import Pipeline

tf = pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from tests.test_seq2seq import _config, _toy_pairs

    sources, targets = _toy_pairs(40)
    config = _config()
    config["stages"]["decoder"]["capitalize"] = True  # the graph must upper-case as Python does
    p = Pipeline.from_config(config).fit(sources, targets, epochs=15)
    path = tmp_path_factory.mktemp("export") / "saved_model"
    report = p.export(str(path), samples=sources[:6] + ["hund unbekannt", ""])
    return p, path, report, sources


def test_export_writes_greedy_beam_and_text_signatures(exported):
    _, _, report, _ = exported
    assert set(report["signatures"]) == {"serving_default", "greedy", "beam", "serve_text", "serve_tokens"}
    assert all(report["signatures"][name]["inputs"] == ["text"] for name in ("serving_default", "greedy", "beam"))
    assert report["checked"] and report["n_samples"] == 8
    assert report["beam_widths"] == {"serving_default": 3, "greedy": 1, "beam": 3}


def test_exported_model_translates_raw_text_like_python(exported):
    p, path, _, sources = exported
    loaded = tf.saved_model.load(str(path))
    out = loaded.signatures["serving_default"](text=tf.constant(sources[:4]))
    got = [t.decode() for t in out["translation"].numpy()]
    assert got == [a["translation"] for a in p.predict(sources[:4])]
    assert all(t[:1].isupper() for t in got if t)


def test_exports_answer_odd_batches_with_the_same_layout(exported, lm_export):
    from tests.conftest import check_odd_batches

    check_odd_batches(exported[1])
    check_odd_batches(lm_export[1])


def test_golden_check_reports_a_disagreement(exported, monkeypatch):
    from pipeline.export import ExportError, golden_check

    p, path, _, sources = exported
    real = p.predict_tokens

    def wrong(tokens, **kwargs):
        answers = real(tokens, **kwargs)
        answers[0] = {**answers[0], "tokens": ["wrong"]}
        return answers

    monkeypatch.setattr(p, "predict_tokens", wrong)
    with pytest.raises(ExportError, match="SavedModel .* != Python \\['wrong'\\]"):
        golden_check(p, str(path), sources[:2])


def test_capitalize_first_in_the_graph_matches_python():
    from pipeline.export.translation import capitalize_first
    from stages.seq2seq import TextDecoder

    texts = ["", "a", "über uns", "ein hund.", "1 dog"]
    got = [t.decode() for t in capitalize_first(tf, tf.constant(texts)).numpy()]
    assert got == [TextDecoder(capitalize=True).to_text(t.split(), "de") if t else "" for t in texts]
    assert got[2] == "Über uns"


# -- language models ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lm_export(tmp_path_factory):
    from tests.test_lm import TEXTS, _config

    config = _config()
    config["stages"]["decoder"].update(temperature=0.8, top_k=3, seed=5, max_tokens=6)
    p = Pipeline.from_config(config).fit(TEXTS, epochs=5)
    path = tmp_path_factory.mktemp("lm") / "saved_model"
    return p, path, p.export(str(path))


def test_language_model_export_continues_raw_prompts_greedily_like_python(lm_export):
    p, path, report = lm_export
    assert report["checked"] and set(report["signatures"]) == {"serving_default", "serve_text", "greedy", "serve_tokens"}
    prompts = ["the cat", "", "the dog sat on"]
    out = tf.saved_model.load(str(path)).signatures["greedy"](text=tf.constant(prompts))
    got = [[t.decode() for t in row if t] for row in out["tokens"].numpy()]
    assert got == [a["tokens"] for a in p.predict(prompts, temperature=0)]


def test_language_model_export_samples_within_the_decoder_settings(lm_export):
    p, path, _ = lm_export
    sign = tf.saved_model.load(str(path)).signatures["serving_default"]
    first = sign(text=tf.constant(["the", "the"]))
    rows = [[t.decode() for t in row if t] for row in first["tokens"].numpy()]
    vocab = p.stage("vocabulary")
    assert all(len(r) <= 6 and set(r) <= set(vocab.tokens_[len(vocab.specials):]) for r in rows)
    # A decoder seed makes the graph's sampling repeatable for a prompt.
    assert sign(text=tf.constant(["the", "the"]))["tokens"].numpy().tolist() == first["tokens"].numpy().tolist()
