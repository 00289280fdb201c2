"""Translation: the rnn_seq2seq model stage, its layers, the text decoder and TranslationPipeline."""

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from pipeline import ConfigError, Pipeline
from stages.seq2seq import (
    MaskedSequenceLoss,
    RNNSeq2Seq,
    SequenceAttention,
    TextDecoder,
    detokenize,
)

WORDS = {"ein": "a", "hund": "dog", "katze": "cat", "sieht": "sees", "mag": "likes", "rot": "red", "klein": "small"}


def _toy_pairs(n=40, seed=0):
    rng = np.random.default_rng(seed)
    src_words = list(WORDS)
    sources, targets = [], []
    for _ in range(n):
        words = [src_words[i] for i in rng.integers(0, len(src_words), size=rng.integers(2, 5))]
        sources.append(" ".join(words))
        targets.append(" ".join(WORDS[w] for w in words))
    return sources, targets


def _config(**model):
    return {
        "task": "translation",
        "data": {"source_lang": "de", "target_lang": "en"},
        "stages": {
            "source_tokenizer": {"type": "whitespace"},
            "target_tokenizer": {"type": "whitespace"},
            "source_vocabulary": {"type": "vocabulary"},
            "target_vocabulary": {"type": "vocabulary", "reserved": ["<bos>", "<eos>"]},
            "vectorizer": {"type": "embedding", "dim": 16, "max_length": 12},
            "model": {"type": "rnn_seq2seq", "units": 16, "learning_rate": 0.02, "dropout": 0.0, **model},
            "decoder": {"type": "text", "beam_width": 3, "max_length": 8},
        },
        "training": {"batch_size": 8, "seed": 1, "verbose": 0, "restore_best": False, "checkpoint": False},
    }


@pytest.fixture(scope="module")
def trained():
    sources, targets = _toy_pairs()
    p = Pipeline.from_config(_config())
    p.fit(sources, targets, epochs=25)
    return p, sources, targets


# -- layers and loss -----------------------------------------------------------------------------------
@pytest.mark.parametrize("score", ["bahdanau", "dot", "general"])
def test_sequence_attention_gives_padding_no_weight(score):
    rng = np.random.default_rng(0)
    q = rng.normal(size=(2, 3, 4)).astype("float32")
    v = rng.normal(size=(2, 5, 4)).astype("float32")
    mask = np.array([[True] * 5, [True, True, False, False, False]])
    context, weights = SequenceAttention(score)(q, v, mask)
    weights = np.asarray(weights)
    assert context.shape == (2, 3, 4)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
    assert np.abs(weights[1, :, 2:]).max() < 1e-6


@pytest.mark.parametrize("score, value_dim", [("bahdanau", 6), ("general", 6), ("dot", 4)])
def test_sequence_attention_attend_with_keys_equals_full_sequence_call(score, value_dim):
    # Decoding scores one step at a time with keys computed once; training scores all steps.
    rng = np.random.default_rng(1)
    q = rng.normal(size=(2, 3, 4)).astype("float32")
    v = rng.normal(size=(2, 5, value_dim)).astype("float32")
    mask = np.array([[True] * 5, [True, True, True, False, False]])
    att = SequenceAttention(score, units=3 if score == "bahdanau" else None)
    att(q, v, mask)
    if score == "bahdanau":  # a trained bias is not zero: it must reach the keys
        att.bias.assign(rng.normal(size=(3,)).astype("float32"))
    context, weights = (np.asarray(t) for t in att(q, v, mask))
    keys = att.keys(v)
    for t in range(3):
        c_t, w_t = att.attend(q[:, t], keys, v, mask)
        np.testing.assert_allclose(np.asarray(c_t), context[:, t], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(w_t), weights[:, t], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("attention, score", [("bahdanau", "general"), ("luong", "general"), ("luong", "dot")])
def test_rnn_seq2seq_step_equals_teacher_forced_model(attention, score):
    from keras import ops

    from stages import EmbeddingVectorizer

    m = RNNSeq2Seq(cell="gru", units=4, attention=attention, luong_score=score, dropout=0.0)
    m.build(EmbeddingVectorizer(dim=4).input_layer(9), EmbeddingVectorizer(dim=4).input_layer(8), 8)
    src = np.array([[3, 4, 5, 0], [6, 7, 0, 0]], "int32")
    tgt_in = np.array([[1, 4, 5], [1, 6, 3]], "int32")
    log_probs = np.asarray(ops.log_softmax(m.model_.predict_on_batch((src, tgt_in)), axis=-1))
    context, state = m.encode(src)
    assert len(context) == (2 if score == "dot" and attention == "luong" else 3)  # keys precomputed
    for t in range(tgt_in.shape[1]):
        # The two-tensor context of earlier versions (keys computed in the step) agrees too.
        old_form, _, _ = m.step(tgt_in[:, t], state, context[:2])
        step_log_probs, state, _ = m.step(tgt_in[:, t], state, context)
        np.testing.assert_allclose(np.asarray(step_log_probs), log_probs[:, t], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(old_form), np.asarray(step_log_probs), rtol=1e-5, atol=1e-6)


def test_sequence_attention_dot_refuses_unequal_sizes():
    with pytest.raises(ValueError, match="dot attention needs"):
        SequenceAttention("dot")(np.ones((1, 2, 4), "float32"), np.ones((1, 3, 6), "float32"))


def test_masked_sequence_loss_ignores_padding_targets():
    logits = np.random.default_rng(0).normal(size=(1, 3, 5)).astype("float32")
    full = float(MaskedSequenceLoss()(np.array([[2, 3, 0]]), logits))
    changed = logits.copy()
    changed[0, 2] += 100.0  # the padding step's logits must not matter
    assert float(MaskedSequenceLoss()(np.array([[2, 3, 0]]), changed)) == pytest.approx(full)


def test_masked_sequence_loss_label_smoothing_penalises_confidence():
    logits = np.zeros((1, 1, 4), "float32")
    logits[0, 0, 2] = 20.0
    plain = float(MaskedSequenceLoss()(np.array([[2]]), logits))
    smoothed = float(MaskedSequenceLoss(label_smoothing=0.1)(np.array([[2]]), logits))
    assert smoothed > plain + 1.0


# -- stage configs ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "options, match",
    [
        ({"attention": "additive"}, "attention must be one of none, bahdanau, luong"),
        ({"luong_score": "concat"}, "luong_score must be one of general, dot"),
        ({"decoder_layers": 0}, "decoder_layers must be an integer >= 1"),
        ({"label_smoothing": 1.0}, "label_smoothing must be < 1"),
    ],
)
def test_rnn_seq2seq_refuses_bad_options(options, match):
    with pytest.raises(ConfigError, match=match):
        RNNSeq2Seq.from_config(options, path="stages.model")


@pytest.mark.parametrize(
    "options, match",
    [
        ({"beam_width": 0}, "beam_width must be an integer >= 1"),
        ({"max_length": 0}, "max_length must be an integer >= 1"),
        ({"detokenize": "moses"}, "detokenize must be one of"),
        ({"beam_width": 2, "n_best": 3}, "n_best must be <= beam_width"),
    ],
)
def test_text_decoder_refuses_bad_options(options, match):
    with pytest.raises(ConfigError, match="stages.decoder." + match):
        TextDecoder.from_config(options, path="stages.decoder")


@pytest.mark.parametrize(
    "cell, attention, score",
    [("simple_rnn", "none", "general"), ("lstm", "bahdanau", "general"), ("gru", "luong", "dot"), ("lstm", "luong", "general")],
)
def test_rnn_seq2seq_builds_trains_and_decodes_every_cell_and_attention(cell, attention, score):
    from stages import EmbeddingVectorizer

    m = RNNSeq2Seq(cell=cell, units=4, layers=2, decoder_layers=2, attention=attention, luong_score=score)
    m.build(EmbeddingVectorizer(dim=4).input_layer(9), EmbeddingVectorizer(dim=4).input_layer(8), 8)
    src = np.array([[3, 4, 5, 0], [6, 7, 0, 0]])
    tgt_in = np.array([[1, 4, 5], [1, 6, 0]])
    tgt_out = np.array([[4, 5, 2], [6, 2, 0]])
    logs = m.model_.train_on_batch((src, tgt_in), tgt_out, return_dict=True)
    assert np.isfinite(float(logs["loss"])) and float(logs["perplexity"]) > 1
    out = m.search_model(1, 2, beam_width=2, max_length=5).predict_on_batch(src)
    assert out["tokens"].shape == (2, 2, 5)


# -- pipeline structure -------------------------------------------------------------------------------
def test_translation_pipeline_needs_both_sides():
    config = _config()
    del config["stages"]["target_vocabulary"]
    with pytest.raises(ConfigError, match="needs target_vocabulary"):
        Pipeline.from_config(config)


def test_translation_pipeline_target_vocabulary_needs_bos_eos():
    config = _config()
    config["stages"]["target_vocabulary"] = {"type": "vocabulary"}
    with pytest.raises(ConfigError, match=r"stages.target_vocabulary.reserved must include <bos> and <eos>"):
        Pipeline.from_config(config)


def test_translation_pipeline_refuses_shared_and_split_stage():
    config = _config()
    config["stages"]["source_vectorizer"] = {"type": "embedding", "dim": 8}
    with pytest.raises(ConfigError, match="has both a shared vectorizer and source_vectorizer"):
        Pipeline.from_config(config)


def test_translation_pipeline_shared_vocabulary_serves_both_sides():
    config = _config()
    stages = config["stages"]
    del stages["source_vocabulary"], stages["target_vocabulary"]
    stages = {"vocabulary": {"type": "vocabulary", "reserved": ["<bos>", "<eos>"]}, **stages}
    config["stages"] = stages
    p = Pipeline.from_config(config)
    sources, targets = _toy_pairs(8)
    p.fit(sources, targets, epochs=1)
    vocab = p["vocabulary"]
    assert p.side("vocabulary", "source") is vocab is p.side("vocabulary", "target")
    assert "hund" in vocab.index_ and "dog" in vocab.index_


def test_translation_config_round_trips():
    p = Pipeline.from_config(_config(attention="luong"))
    assert Pipeline.from_config(p.get_config()).get_config() == p.get_config()


# -- training, decoding, persistence -------------------------------------------------------------------
def test_translation_pipeline_learns_toy_task(trained):
    p, sources, targets = trained
    answers = p.predict(sources[:10])
    assert sum(a["translation"] == t for a, t in zip(answers, targets[:10])) >= 8
    assert set(answers[0]) == {"translation", "tokens", "score"}


def test_translation_evaluate_reports_bleu_and_perplexity(trained):
    p, sources, targets = trained
    report = p.evaluate(sources, targets)
    assert report["bleu"] > 60
    assert 1.0 <= report["perplexity"] < 3.0
    assert report["bleu_tokenize"] == "13a" and "tok:13a" in report["bleu_signature"]
    assert report["bleu_cased"] == report["bleu"] and not report["lowercase"]


def test_translation_evaluate_reports_cased_bleu_beside_case_insensitive_bleu(trained, monkeypatch):
    p, sources, targets = trained
    monkeypatch.setattr(p.side("tokenizer", "target"), "lowercase", True)
    report = p.evaluate(sources, [t.capitalize() for t in targets])  # the model writes lower case
    assert report["lowercase"] and report["bleu"] > 60
    assert report["bleu_cased"] < report["bleu"] - 10


def test_translation_batched_decoding_equals_one_sentence_at_a_time(trained):
    p, sources, _ = trained
    batched = p.predict(sources[:6], beam=3)
    single = [p.predict([s], beam=3)[0] for s in sources[:6]]
    assert [a["tokens"] for a in batched] == [a["tokens"] for a in single]
    np.testing.assert_allclose([a["score"] for a in batched], [a["score"] for a in single], rtol=1e-4, atol=1e-5)


def test_translation_beam_width_above_vocabulary_is_refused(trained):
    p, sources, _ = trained
    with pytest.raises(ConfigError, match="beam_width must not exceed the target vocabulary size"):
        p.predict(sources[:1], beam=1000)


def test_translation_beam_width_zero_is_refused(trained):
    p, sources, _ = trained
    with pytest.raises(ConfigError, match="beam_width must be an integer >= 1"):
        p.predict(sources[:1], beam=0)


def test_translation_n_best_lists_alternatives(trained):
    p, sources, _ = trained
    answer = p.predict(sources[:1], beam=3, n_best=3)[0]
    assert len(answer["alternatives"]) == 3
    scores = [a["score"] for a in answer["alternatives"]]
    assert scores == sorted(scores, reverse=True)


def test_translation_decoding_stops_at_max_length(trained):
    p, sources, _ = trained
    out = p.search_ids(p.source_ids(p.tokenize(sources[:3])), beam=2, max_length=2)
    assert out["tokens"].shape == (3, 2, 2)


def test_translation_translate_returns_attention_matrix(trained):
    p, sources, _ = trained
    answer = p.translate(sources[0])
    attention = np.array(answer["attention"])
    assert attention.shape == (len(answer["target_tokens"]), len(answer["source_tokens"]))
    np.testing.assert_allclose(attention.sum(1), 1.0, rtol=1e-4)
    assert answer["target_tokens"][-1] == "<eos>"


def test_translation_plot_attention_writes_png(trained, tmp_path):
    p, sources, _ = trained
    path = tmp_path / "attention.png"
    p.plot_attention(sources[0], str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_attention_warns_without_cjk_font(monkeypatch, tmp_path):
    import pipeline.seq2seq as s2s
    from pipeline import plots

    monkeypatch.setattr(plots, "find_cjk_font", lambda: None)
    warnings.filterwarnings("ignore", message="Glyph .* missing from font")
    with pytest.warns(UserWarning, match="No font with Chinese glyphs"):
        s2s.plot_attention(np.eye(2), ["我", "爱"], ["i", "love"], str(tmp_path / "a.png"))
    assert (tmp_path / "a.png").exists()


def test_plot_attention_uses_a_cjk_font_when_installed(tmp_path):
    import pipeline.seq2seq as s2s

    if s2s.find_cjk_font() is None:
        pytest.skip("no CJK font installed on this machine")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither our warning nor matplotlib's "missing glyph" one
        s2s.plot_attention(np.eye(2), ["我", "爱"], ["i", "love"], str(tmp_path / "a.png"))


def _drawn_fonts(monkeypatch):
    """Record, for every picture saved, each non-empty text and the font file it is drawn with."""
    from matplotlib import font_manager
    from matplotlib.figure import Figure
    from matplotlib.text import Text

    drawn = []
    real_savefig = Figure.savefig

    def savefig(fig, path, *args, **kwargs):
        drawn.extend((t.get_text(), font_manager.findfont(t.get_fontproperties(), fallback_to_default=False))
                     for t in fig.findobj(Text) if t.get_text())
        return real_savefig(fig, path, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return drawn


def _draw_chinese_pictures(tmp_path):
    from pipeline import plots

    plots.plot_confusion_matrix([[3, 1], [0, 4]], ["正面", "负面"], str(tmp_path / "cm.png"))
    plots.plot_attention(np.eye(2), ["我", "爱"], ["i", "love"], str(tmp_path / "att.png"), title="我爱")
    plots.plot_history({"loss": [1.0, 0.5], "val_loss": [1.1, 0.7]}, str(tmp_path / "curves.png"), monitor="val_loss")


def test_every_picture_draws_chinese_with_the_font_of_the_one_lookup(monkeypatch, tmp_path):
    import matplotlib

    from pipeline import plots

    # Any font file stands for "the CJK font found"; what matters is that every picture with
    # Chinese text draws it with the font the lookup returned.
    font = os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSerif.ttf")
    calls = []
    monkeypatch.setattr(plots, "find_cjk_font", lambda: calls.append(1) or font)
    drawn = _drawn_fonts(monkeypatch)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from")
        _draw_chinese_pictures(tmp_path)
    chinese = [(text, path) for text, path in drawn if plots.has_cjk([text])]
    assert {text for text, _ in chinese} >= {"正面", "负面", "我", "爱", "我爱"}
    assert {os.path.realpath(path) for _, path in chinese} == {os.path.realpath(font)}
    assert len(calls) == 2  # the confusion matrix and the attention map; the curves hold no Chinese


def _installed_cjk_fonts():
    import shutil

    if not shutil.which("fc-list"):
        return []
    done = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True, timeout=30, check=False)
    return [line.split(":")[0].strip() for line in done.stdout.splitlines() if line.strip()]


@pytest.mark.skipif(not _installed_cjk_fonts(), reason="no CJK font installed on this machine (fc-list :lang=zh lists none)")
def test_chinese_labels_use_the_installed_cjk_font(monkeypatch, tmp_path):
    from pipeline import plots

    monkeypatch.delenv("KTP_CJK_FONT", raising=False)
    found = plots.find_cjk_font()
    assert found in _installed_cjk_fonts()
    drawn = _drawn_fonts(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither our warning nor matplotlib's "missing glyph" one
        _draw_chinese_pictures(tmp_path)
    chinese = {os.path.realpath(path) for text, path in drawn if plots.has_cjk([text])}
    assert chinese == {os.path.realpath(found)}


def test_translation_save_load_gives_same_translations(trained, tmp_path):
    p, sources, _ = trained
    p.save(str(tmp_path / "tr"))
    q = Pipeline.load(str(tmp_path / "tr"))
    assert [a["tokens"] for a in q.predict(sources[:5])] == [a["tokens"] for a in p.predict(sources[:5])]
    assert (tmp_path / "tr" / "target_vocabulary" / "vocab.txt").read_text().split("\n")[2:4] == ["<bos>", "<eos>"]


def test_translation_predict_tokens_matches_predict(trained):
    p, sources, _ = trained
    assert p.predict_tokens(p.tokenize(sources[:3])) == p.predict(sources[:3])


def test_translation_fit_writes_a_run_folder_with_checkpoint(tmp_path):
    sources, targets = _toy_pairs(8)
    config = _config()
    config["training"].update({"checkpoint": True, "restore_best": True, "plots": True})
    p = Pipeline.from_config(config)
    p.fit(sources, targets, validation_data=(sources[:4], targets[:4]), epochs=2, output_dir=str(tmp_path / "run"))
    for name in ("pipeline.yaml", "metrics.json", "history.csv", "training_curves.png", "checkpoints/best.keras"):
        assert (tmp_path / "run" / name).exists(), name
    assert "bleu" in __import__("json").loads((tmp_path / "run" / "metrics.json").read_text())["dev"]


def test_translation_weight_averaging_keeps_and_saves_the_averaged_weights(tmp_path):
    import keras

    sources, targets = _toy_pairs(16)
    p = Pipeline.from_config(_config(ema_momentum=0.9))
    p.fit(sources, targets, validation_data=(sources[:4], targets[:4]), epochs=2)
    model = p.stages["model"].model_
    optimizer = model.optimizer
    assert optimizer.use_ema and optimizer.ema_momentum == 0.9
    for variable, average in zip(optimizer._trainable_variables, optimizer._model_variables_moving_average):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), keras.ops.convert_to_numpy(average))
    # the last epoch's dev loss is that of the weights kept, the averaged ones (Keras alone
    # would validate the raw weights and copy the averages in only after the last epoch)
    src, tgt = p.tokenize(sources[:4]), p.tokenize_targets(targets[:4])
    dev = p.batches(src, tgt, 64)
    np.testing.assert_allclose(p.stages["model"].evaluate(dev)["loss"], p.history_["val_loss"][-1], rtol=1e-5)
    p.save(str(tmp_path / "tr"))
    q = Pipeline.load(str(tmp_path / "tr"))
    assert q.stages["model"].ema_momentum == 0.9
    assert [a["tokens"] for a in q.predict(sources[:4])] == [a["tokens"] for a in p.predict(sources[:4])]


@pytest.mark.parametrize("option, bad", [("ema_momentum", 0), ("ema_momentum", 1), ("ema_momentum", "0.9"), ("label_smoothing", 1.0), ("label_smoothing", -0.1)])
def test_generative_models_check_averaging_and_smoothing(option, bad):
    from stages.seq2seq import RNNLanguageModel

    for cls in (RNNSeq2Seq, RNNLanguageModel):
        with pytest.raises(ConfigError, match=option):
            cls(**{option: bad})


def test_translation_fit_refuses_unpaired_data():
    p = Pipeline.from_config(_config())
    with pytest.raises(ValueError, match="2 source sentences but 1 targets"):
        p.fit(["a b", "c"], ["x"])


# -- detokenisation -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "tokens, language, expected",
    [
        (["a", "dog", "'s", "ball", "."], "en", "a dog's ball."),
        (["ein", "hund", ",", "zwei", "katzen", "!"], "de", "ein hund, zwei katzen!"),
        (["我", "爱", "北京", "。"], "zh", "我爱北京。"),
        (["我", "有", "iPhone", "12", "。"], "zh", "我有iPhone 12。"),
    ],
)
def test_detokenize_by_target_language(tokens, language, expected):
    assert detokenize(tokens, "auto", language) == expected


def test_detokenize_space_mode_joins_with_spaces():
    assert detokenize(["a", "."], "space") == "a ."


def test_text_decoder_capitalize_upper_cases_the_first_character_only():
    decoder = TextDecoder(capitalize=True)
    assert decoder.to_text(["ein", "hund", "läuft", "."], "de") == "Ein hund läuft."
    assert decoder.to_text(["über", "uns"], "de") == "Über uns"
    assert decoder.to_text([], "en") == ""
    assert TextDecoder().to_text(["a", "dog"], "en") == "a dog"
    with pytest.raises(ConfigError, match="capitalize"):
        TextDecoder.from_config({"capitalize": "yes"}, path="stages.decoder")


# -- other backend -------------------------------------------------------------------------------------
@pytest.mark.slow  # ~25-35 s on 2 cores: a JAX child process; tests/test_backend.py keeps one JAX run in the default suite
def test_translation_trains_and_decodes_under_jax_backend(tmp_path):
    pytest.importorskip("jax")
    script = (
        "import sys; sys.path.insert(0, {root!r})\n"
        "import keras; assert keras.backend.backend() == 'jax'\n"
        "from pipeline import Pipeline\n"
        "from tests.test_seq2seq import _config, _toy_pairs\n"
        "p = Pipeline.from_config(_config(cell='lstm', attention='luong', units=4))\n"
        "s, t = _toy_pairs(8)\n"
        "p.fit(s, t, epochs=2)\n"
        "print(len(p.predict(s[:2], beam=2)), p.evaluate(s[:2], t[:2])['perplexity'] > 1)\n"
    ).format(root=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "2 True"
