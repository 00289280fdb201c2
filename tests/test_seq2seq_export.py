"""SavedModel export of translation pipelines (pipeline.seq2seq_export): search in the graph,
golden check against the Python pipeline."""

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
    assert set(report["signatures"]) == {"serving_default", "greedy", "beam", "serve_text"}
    assert report["checked"] and report["n_samples"] == 8
    assert report["beam_widths"] == {"serving_default": 3, "greedy": 1, "beam": 3}


def test_exported_model_translates_raw_text_like_python(exported):
    p, path, _, sources = exported
    loaded = tf.saved_model.load(str(path))
    out = loaded.signatures["serve_text"](text=tf.constant(sources[:4]))
    got = [t.decode() for t in out["translation"].numpy()]
    assert got == [a["translation"] for a in p.predict(sources[:4])]
    assert all(t[:1].isupper() for t in got if t)


def test_golden_check_reports_a_disagreement(exported, monkeypatch):
    from pipeline.export import ExportError
    from pipeline.seq2seq_export import golden_check

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
    from pipeline.seq2seq_export import capitalize_first
    from stages.seq2seq import TextDecoder

    texts = ["", "a", "über uns", "ein hund.", "1 dog"]
    got = [t.decode() for t in capitalize_first(tf, tf.constant(texts)).numpy()]
    assert got == [TextDecoder(capitalize=True).to_text(t.split(), "de") if t else "" for t in texts]
    assert got[2] == "Über uns"
