import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from pipeline import Pipeline
from pipeline.errors import ConfigError, DataError
from pipeline.tagging import TaggingPipeline, tokenize_with_offsets
from pipeline.tagging_metrics import tags_report
from stages.tokenizers import CharTokenizer, JiebaTokenizer, WhitespaceTokenizer
from tests.test_tagging_metrics import assert_equals_seqeval

EN_TOKENS = [
    ["Anna", "met", "Bob", "in", "Oslo", "."],
    ["Acme", "Corp", "hired", "Carl", "Lind", "."],
    ["Bob", "flew", "to", "Rome", "."],
    ["Carl", "works", "for", "Acme", "Corp", "in", "Rome", "."],
]
EN_TAGS = [
    ["B-PER", "O", "B-PER", "O", "B-LOC", "O"],
    ["B-ORG", "I-ORG", "O", "B-PER", "I-PER", "O"],
    ["B-PER", "O", "O", "B-LOC", "O"],
    ["B-PER", "O", "O", "B-ORG", "I-ORG", "O", "B-LOC", "O"],
]
ZH_TEXTS = ["张伟在北京工作。", "李红去上海。", "王芳在北京。", "张伟和李红去上海工作。"]
ZH_SPANS = [
    [{"start": 0, "end": 2, "type": "PER"}, {"start": 3, "end": 5, "type": "LOC"}],
    [{"start": 0, "end": 2, "type": "PER"}, {"start": 3, "end": 5, "type": "LOC"}],
    [{"start": 0, "end": 2, "type": "PER"}, {"start": 3, "end": 5, "type": "LOC"}],
    [{"start": 0, "end": 2, "type": "PER"}, {"start": 3, "end": 5, "type": "PER"}, {"start": 6, "end": 8, "type": "LOC"}],
]


def tagging_config(tokenizer="whitespace", output="crf", scheme="bioes", data=None, max_length=50, **model):
    model_cfg = {"type": "rnn_tagger", "cell": "gru", "units": 8, "dropout": 0.0, "output": output, "learning_rate": 0.05}
    model_cfg.update(model)
    return {
        "task": "tagging",
        "stages": {
            "tokenizer": {"type": tokenizer},
            "vocabulary": {"max_size": 200},
            "vectorizer": {"type": "embedding", "dim": 8, "max_length": max_length},
            "model": model_cfg,
            "decoder": {"type": "tags", "scheme": scheme},
        },
        "data": data or {"scheme": "bio"},
        "training": {"epochs": 12, "batch_size": 4, "verbose": 0, "plots": False, "checkpoint": False, "csv_log": False},
    }


@pytest.fixture(scope="module")
def en_crf():
    p = Pipeline.from_config(tagging_config(features={"chars": {"kind": "cnn", "dim": 4, "units": 4}, "shape": {}}))
    return p.fit(EN_TOKENS * 3, EN_TAGS * 3)


# -- alignment --------------------------------------------------------------------------------
def test_tokenize_with_offsets_maps_normalised_chars_back_to_the_raw_text():
    t = tokenize_with_offsets(CharTokenizer(lowercase=True), "ＡＢ 京")
    assert list(t) == ["a", "b", "京"]
    assert t.spans == [(0, 1), (1, 2), (3, 4)] and t.raw == ["Ａ", "Ｂ", "京"]


def test_tokenize_with_offsets_finds_whitespace_tokens():
    t = tokenize_with_offsets(WhitespaceTokenizer(), "  Anna  met Bob ")
    assert t.spans == [(2, 6), (8, 11), (12, 15)]


def test_tokenize_with_offsets_finds_jieba_words():
    text = "我来到北京清华大学"
    t = tokenize_with_offsets(JiebaTokenizer(), text)
    assert [text[s:e] for s, e in t.spans] == list(t) and "".join(t) == text


def test_tokenized_text_survives_pickling():
    t = tokenize_with_offsets(WhitespaceTokenizer(), "Anna met Bob")
    again = pickle.loads(pickle.dumps(t))
    assert list(again) == list(t) and again.text == t.text and again.spans == t.spans


# -- config checks ----------------------------------------------------------------------------
def test_tagging_pipeline_rejects_a_classifier_model():
    cfg = tagging_config()
    cfg["stages"]["model"] = {"type": "rnn_classifier"}
    with pytest.raises(ConfigError, match="stages.model.type must be rnn_tagger in a tagging pipeline"):
        Pipeline.from_config(cfg)


def test_tagging_pipeline_rejects_pre_padding():
    cfg = tagging_config()
    cfg["stages"]["vectorizer"]["padding"] = "pre"
    with pytest.raises(ConfigError, match="stages.vectorizer.padding must be post in a tagging pipeline"):
        Pipeline.from_config(cfg)


def test_tagging_pipeline_word_boundary_needs_a_char_tokenizer():
    with pytest.raises(ConfigError, match="stages.model.features.word_boundary needs a char tokenizer"):
        Pipeline.from_config(tagging_config(features={"word_boundary": {}}))


def test_tagging_pipeline_rejects_unknown_data_options():
    cfg = tagging_config(data={"scheme": "bio", "label_column": 3})
    with pytest.raises(ConfigError, match="data.label_column is not a known option"):
        Pipeline.from_config(cfg)


def test_tagging_config_round_trips():
    p = Pipeline.from_config(tagging_config())
    assert Pipeline.from_config(p.get_config()).get_config() == p.get_config()


# -- English word level -----------------------------------------------------------------------
def test_crf_tagger_learns_entities_with_character_offsets(en_crf):
    answer = en_crf.predict(["Carl met Anna in Oslo ."])[0]
    assert answer["tags"] == ["B-PER", "O", "B-PER", "O", "B-LOC", "O"]  # data.scheme (bio), not bioes
    oslo = answer["entities"][-1]
    assert (oslo["type"], oslo["start"], oslo["end"], oslo["text"]) == ("LOC", 17, 21, "Oslo")
    assert (oslo["token_start"], oslo["token_end"]) == (4, 5) and 0.0 < oslo["score"] <= 1.0


def test_crf_entity_scores_are_marginal_probabilities(en_crf):
    confident = en_crf.predict(["Anna met Bob in Oslo ."])[0]["entities"]
    assert all(0.5 < e["score"] <= 1.0 for e in confident)


def test_crf_predictions_do_not_depend_on_the_batch(en_crf):
    alone = en_crf.predict(["Anna met Bob"])[0]
    together = en_crf.predict(["Anna met Bob", "Carl Lind works for Acme Corp in Rome , says Bob . " * 3])[0]
    assert alone["tags"] == together["tags"]
    assert [e["score"] for e in alone["entities"]] == pytest.approx([e["score"] for e in together["entities"]], abs=1e-5)


def test_crf_entity_score_is_the_probability_of_its_tags(en_crf):
    import itertools

    from stages.tag_schemes import convert

    sentence = en_crf.tokenize(["Acme Corp hired"])[0]
    answer = en_crf.predict([sentence])[0]
    decoder = en_crf.stage("decoder")
    tag_ids = np.array([decoder.tags_.index(t) for t in convert(answer["tags"], en_crf.data["scheme"], decoder.scheme)])
    scores = en_crf.stage("model").decode_batch(en_crf.batches([sentence], 4)[0])["scores"][0, :3]
    trans, start, end = (np.asarray(v) for v in en_crf.stage("model").crf.effective_transitions())
    paths = np.array(list(itertools.product(range(scores.shape[1]), repeat=3)))
    log_p = start[paths[:, 0]] + end[paths[:, 2]] + scores[np.arange(3), paths].sum(axis=1)
    log_p += trans[paths[:, 0], paths[:, 1]] + trans[paths[:, 1], paths[:, 2]]
    prob = np.exp(log_p - np.logaddexp.reduce(log_p))
    for entity in answer["entities"]:
        start, end = entity["token_start"], entity["token_end"]
        same = (paths[:, start:end] == tag_ids[start:end]).all(axis=1)
        assert entity["score"] == pytest.approx(prob[same].sum(), rel=1e-4)
    assert answer["entities"]


def test_tagger_accepts_token_lists_and_tokenized_batches(en_crf):
    by_text = en_crf.predict(["Anna met Bob"])
    by_tokens = en_crf.predict([["Anna", "met", "Bob"]])
    by_batch = en_crf.predict_tokens(en_crf.tokenize(["Anna met Bob"]))
    assert by_text == by_tokens == by_batch


def test_tagger_answers_are_json_serialisable(en_crf):
    import json

    json.dumps(en_crf.predict(["Anna met Bob", ""]))
    json.dumps(en_crf.evaluate(EN_TOKENS, EN_TAGS))


def test_tagger_predicts_an_empty_text_as_no_entities(en_crf):
    assert en_crf.predict([""])[0]["entities"] == []


def test_evaluate_equals_seqeval_on_the_predicted_tags(en_crf):
    pytest.importorskip("seqeval.metrics")
    # Gold tags that differ from what the model learned, so hits and misses both occur.
    gold = [
        ["B-PER", "O", "B-ORG", "O", "B-LOC", "O"],
        ["B-ORG", "I-ORG", "I-ORG", "B-PER", "I-PER", "O"],
        ["I-PER", "O", "O", "B-LOC", "I-LOC"],
        ["B-PER", "O", "O", "B-ORG", "I-ORG", "O", "B-LOC", "O"],
    ]
    report = en_crf.evaluate(EN_TOKENS, gold)
    predicted = [a["tags"] for a in en_crf.predict(EN_TOKENS)]
    assert 0.0 < report["f1"] < 1.0
    assert_equals_seqeval(report, gold, predicted)
    assert report["f1"] == pytest.approx(tags_report(gold, predicted)["f1"])


def test_evaluate_reports_entity_types_unseen_in_training(en_crf):
    tags = [["B-PER", "O", "B-PER", "O", "B-GPE", "O"]]
    report = en_crf.evaluate([EN_TOKENS[0]], tags)
    assert report["unseen_types"] == {"GPE": 1}
    assert report["per_type"]["GPE"]["recall"] == 0.0 and report["gold_entities"] == 3


def test_evaluate_refuses_tags_that_do_not_pair_with_tokens(en_crf):
    with pytest.raises(DataError, match="evaluation text 0: has 2 tokens but 1 tags"):
        en_crf.evaluate([["Anna", "met"]], [["B-PER"]])


def test_evaluate_refuses_tags_outside_the_data_scheme(en_crf):
    with pytest.raises(DataError, match="'S-PER' is not a valid tag for the bio scheme"):
        en_crf.evaluate([["Anna"]], [["S-PER"]])


def test_softmax_tagger_scores_entities_by_token_probabilities():
    p = Pipeline.from_config(tagging_config(output="softmax", scheme="bio"))
    p.fit(EN_TOKENS * 3, EN_TAGS * 3)
    answer = p.predict(["Anna met Bob in Oslo ."])[0]
    assert [e["text"] for e in answer["entities"]] == ["Anna", "Bob", "Oslo"]
    assert all(0.0 < e["score"] <= 1.0 for e in answer["entities"])


# -- long sentences ---------------------------------------------------------------------------
def test_long_sentences_are_split_and_reported(en_crf, caplog):
    p = Pipeline.from_config(tagging_config(max_length=4))
    p.fit(EN_TOKENS * 3, EN_TAGS * 3, epochs=2)
    with caplog.at_level("INFO", logger="ktp"):
        answer = p.predict(["Carl works for Acme Corp in Rome ."])[0]
    assert answer["pieces"] == 2 and len(answer["tags"]) == 8
    assert "longer than max_length=4 tokens and were split" in caplog.text


def test_long_sentences_can_be_truncated_and_are_marked():
    p = Pipeline.from_config(tagging_config(max_length=4, data={"scheme": "bio", "long_sentences": "truncate"}))
    p.fit(EN_TOKENS * 3, EN_TAGS * 3, epochs=2)
    answer = p.predict(["Carl works for Acme Corp in Rome ."])[0]
    assert answer["truncated"] is True and answer["tags"][4:] == ["O"] * 4
    assert p.evaluate([EN_TOKENS[3]], [EN_TAGS[3]])["long_sentences"] == 1


# -- Chinese ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def zh_char():
    cfg = tagging_config(tokenizer="char", features={"bigrams": {"dim": 4}, "word_boundary": {"dim": 4}})
    return Pipeline.from_config(cfg).fit(ZH_TEXTS * 3, ZH_SPANS * 3)


def test_char_level_chinese_returns_spans_at_raw_text_offsets(zh_char):
    text = "王芳 在 北京工作。"  # spaces in the raw text shift the offsets
    answer = zh_char.predict([text])[0]
    spans = [(e["type"], e["start"], e["end"], e["text"]) for e in answer["entities"]]
    assert spans == [("PER", 0, 2, "王芳"), ("LOC", 5, 7, "北京")]


def test_char_level_chinese_saves_its_bigram_vocabulary(zh_char, tmp_path):
    zh_char.save(str(tmp_path))
    assert "张伟" in (tmp_path / "model" / "bigrams.txt").read_text(encoding="utf-8").split("\n")
    assert Pipeline.load(str(tmp_path)).predict(ZH_TEXTS) == zh_char.predict(ZH_TEXTS)


def test_char_level_chinese_reads_char_files(tmp_path):
    cfg = tagging_config(tokenizer="char", scheme="bmes", data={"format": "char", "scheme": "bmes"})
    path = tmp_path / "t.bmes"
    path.write_text("张 B-PER\n伟 E-PER\n好 O\n\n京 S-LOC\n", encoding="utf-8")
    p = Pipeline.from_config(cfg)
    corpus = p.read(str(path))
    p.fit(corpus.texts * 4, corpus.labels * 4, epochs=1)
    answer = p.predict([["张", "伟", "好"]])[0]
    assert answer["text"] == "张伟好" and len(answer["tags"]) == 3


def test_jieba_word_level_maps_entities_onto_words_and_back():
    p = Pipeline.from_config(tagging_config(tokenizer="jieba"))
    p.fit(ZH_TEXTS * 3, ZH_SPANS * 3)
    answer = p.predict(["张伟在北京工作。"])[0]
    assert answer["tokens"][:4] == ["张伟", "在", "北京", "工作"]
    assert [(e["type"], e["start"], e["end"]) for e in answer["entities"]] == [("PER", 0, 2), ("LOC", 3, 5)]


def test_jieba_alignment_widens_entities_that_cut_a_word():
    p = Pipeline.from_config(tagging_config(tokenizer="jieba"))
    # "北京" is one jieba word; an entity on "北" alone must be widened, and is counted.
    p.fit(["张伟在北京工作。"] * 2, [[{"start": 3, "end": 4, "type": "LOC"}]] * 2, epochs=1)
    assert p.alignment_ == {"entities_widened": 2}


# -- persistence ------------------------------------------------------------------------------
def test_saved_crf_tagger_predicts_the_same_after_loading(en_crf, tmp_path):
    en_crf.save(str(tmp_path))
    loaded = Pipeline.load(str(tmp_path))
    assert isinstance(loaded, TaggingPipeline)
    texts = ["Carl met Anna in Oslo .", "Acme Corp hired Bob"]
    assert loaded.predict(texts) == en_crf.predict(texts)
    assert sorted(os.listdir(tmp_path / "model")) == ["chars.txt", "model.keras"]
    assert (tmp_path / "decoder" / "tags.txt").read_text(encoding="utf-8").split("\n")[0] == "O"


def test_saved_crf_tagger_trains_on_where_it_stopped(tmp_path):
    p = Pipeline.from_config(tagging_config())
    p.fit(EN_TOKENS * 2, EN_TAGS * 2, epochs=2)
    fresh = p.history_["loss"][0]  # the first epoch of a fresh start
    p.save(str(tmp_path))
    loaded = Pipeline.load(str(tmp_path))
    go_on = p.fit(EN_TOKENS * 2, EN_TAGS * 2, epochs=1, resume=True).history_["loss"][0]
    resumed = loaded.fit(EN_TOKENS * 2, EN_TAGS * 2, epochs=1, resume=True).history_["loss"][0]
    assert resumed == pytest.approx(go_on, rel=1e-3)
    assert resumed < 0.5 * fresh


def test_fit_writes_a_run_folder_with_dev_metrics(tmp_path):
    cfg = tagging_config()
    cfg["training"].update(csv_log=True, checkpoint=True)
    p = Pipeline.from_config(cfg)
    p.fit(EN_TOKENS * 2, EN_TAGS * 2, validation_data=(EN_TOKENS, EN_TAGS), output_dir=str(tmp_path), epochs=2)
    import json

    metrics = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
    assert "f1" in metrics["dev"] and len(metrics["history"]["val_entity_f1"]) == 2
    assert "val_entity_f1" in (tmp_path / "history.csv").read_text(encoding="utf-8").splitlines()[0]


JAX_SCRIPT = textwrap.dedent(
    """
    import sys; sys.path.insert(0, {tests!r})
    import keras
    assert keras.backend.backend() == "jax"
    from pipeline import Pipeline
    from test_tagging import EN_TOKENS, EN_TAGS, tagging_config
    p = Pipeline.from_config(tagging_config(features={"chars": {"kind": "lstm", "dim": 4, "units": 4}}))
    p.fit(EN_TOKENS * 3, EN_TAGS * 3, epochs=6)
    loss = p.history_["loss"]
    assert loss[-1] < 0.5 * loss[0], loss
    assert p.evaluate(EN_TOKENS, EN_TAGS)["f1"] > 0.5
    p.save({path!r})
    assert Pipeline.load({path!r}).predict(["Anna met Bob"]) == p.predict(["Anna met Bob"])
    print("JAX-OK")
    """
)


@pytest.mark.slow  # ~25-35 s on 2 cores: a JAX child process; tests/test_backend.py keeps one JAX run in the default suite
def test_tagging_pipeline_runs_on_the_jax_backend(tmp_path):
    pytest.importorskip("jax")
    tests = os.path.dirname(os.path.abspath(__file__))
    script = JAX_SCRIPT.format(tests=tests, path=str(tmp_path / "p"))
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300,
                            cwd=os.path.dirname(tests))
    assert "JAX-OK" in result.stdout, result.stderr[-3000:]


def test_learning_rate_decay_lowers_the_rate_per_epoch_and_survives_saving(tmp_path):
    p = Pipeline.from_config(tagging_config(learning_rate_decay=0.5))
    p.fit(EN_TOKENS * 2, EN_TAGS * 2, epochs=2)  # 2 batches of 4 per epoch
    optimizer = p.stage("model").model_.optimizer
    assert float(optimizer.learning_rate) == pytest.approx(0.05 / (1 + 0.5 * 2))
    p.save(str(tmp_path))
    loaded = Pipeline.load(str(tmp_path)).stage("model").model_.optimizer
    assert float(loaded.learning_rate) == pytest.approx(float(optimizer.learning_rate))


def test_tagging_monitor_accepts_the_dev_entity_f1_only_among_known_figures():
    cfg = tagging_config()
    cfg["training"]["monitor"] = "val_f1"
    with pytest.raises(ConfigError, match="training.monitor must be one of val_accuracy, val_entity_f1, val_loss"):
        Pipeline.from_config(cfg)


@pytest.mark.parametrize("monitor, best", [("val_entity_f1", 1), ("val_accuracy", 3)])
def test_tagging_monitor_restores_the_epoch_best_and_plots_that_figure(monitor, best, tmp_path, monkeypatch):
    import keras
    from matplotlib.figure import Figure

    titles = []
    real_savefig = Figure.savefig

    def savefig(fig, path, *args, **kwargs):
        titles.extend(ax.get_title() for ax in fig.axes)
        return real_savefig(fig, path, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    cfg = tagging_config()
    cfg["training"].update(monitor=monitor, checkpoint=True, early_stopping_patience=None, plots=True)
    p = Pipeline.from_config(cfg)
    # Scripted dev figures: F1 peaks in epoch 2 (index 1), token accuracy in epoch 4.
    figures = iter([(0.2, 0.1), (0.9, 0.2), (0.5, 0.3), (0.4, 0.95)])
    p._dev_figures = lambda examples: dict(zip(("val_entity_f1", "val_accuracy"), next(figures)))
    weights = []

    class Snapshot(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            weights.append(self.model.get_weights())

    p.fit(EN_TOKENS * 2, EN_TAGS * 2, validation_data=(EN_TOKENS, EN_TAGS), epochs=4, output_dir=str(tmp_path),
          callbacks=[Snapshot()])
    assert p.history_[monitor] == pytest.approx([[0.2, 0.9, 0.5, 0.4], [0.1, 0.2, 0.3, 0.95]][monitor == "val_accuracy"])
    final = p.stage("model").model_.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(final, weights[best]))
    assert not all(np.array_equal(a, b) for a, b in zip(final, weights[-1 if best != 3 else 0]))
    saved = keras.saving.load_model(str(tmp_path / "checkpoints" / "best.keras")).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(saved, weights[best]))
    # The training curves picture plots the monitored dev figure beside loss and accuracy.
    assert (tmp_path / "training_curves.png").is_file()
    assert f"{monitor[4:]} (monitored: {monitor})" in titles
    assert {"loss", "entity_f1", "accuracy"} <= {t.split(" (")[0] for t in titles}


# -- ensembles --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def en_ensemble():
    cfg = tagging_config(ensemble=2)
    cfg["training"]["seed"] = 5
    return Pipeline.from_config(cfg).fit(EN_TOKENS * 2, EN_TAGS * 2, epochs=2)


def test_crf_ensemble_decodes_the_members_mean_scores_with_their_mean_transitions(en_ensemble):
    import keras

    model = en_ensemble.stage("model")
    members = [layer for layer in model.model_.layers if isinstance(layer, keras.Model)]
    assert [m.name for m in members] == ["member_1", "member_2"] and model.is_ensemble
    for joined, *each in zip(model.crf.get_weights(), *(m.crf.get_weights() for m in members)):
        np.testing.assert_allclose(joined, np.mean(each, axis=0), rtol=1e-6)
    inputs = en_ensemble.batches(EN_TOKENS, 8)[0]
    mean = np.mean([np.asarray(m.predict_on_batch(inputs)) for m in members], axis=0)
    np.testing.assert_allclose(model.transform(inputs), mean, rtol=1e-5, atol=1e-6)
    # Viterbi on the mean scores and transitions gives the pipeline's tags.
    mask = inputs["token_ids"] != 0
    tags, _ = model.crf.viterbi(mean, mask)
    np.testing.assert_array_equal(np.asarray(tags) * mask, model.decode_batch(inputs)["tags"] * mask)


def test_crf_ensemble_member_equals_a_single_tagger_trained_with_the_next_seed(en_ensemble):
    cfg = tagging_config()
    cfg["training"]["seed"] = 6
    single = Pipeline.from_config(cfg).fit(EN_TOKENS * 2, EN_TAGS * 2, epochs=2).stage("model").model_
    member = en_ensemble.stage("model").model_.get_layer("member_2")
    for a, b in zip(member.get_weights(), single.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_saved_crf_ensemble_predicts_the_same_and_refuses_to_train_on(en_ensemble, tmp_path):
    en_ensemble.save(str(tmp_path))
    loaded = Pipeline.load(str(tmp_path))
    texts = ["Carl met Anna in Oslo .", "Acme Corp hired Bob"]
    assert loaded.predict(texts) == en_ensemble.predict(texts)
    with pytest.raises(ValueError, match="ensemble of several networks"):
        loaded.fit(EN_TOKENS, EN_TAGS, epochs=1, resume=True)
    with pytest.raises(ConfigError, match="ensemble"):
        Pipeline.from_config(tagging_config(ensemble=0))


def test_tagging_batches_pad_to_rounded_lengths_and_weigh_real_tokens():
    from stages.batching import default_step
    from stages.taggers import TaggingBatches

    items = [{"token_ids": np.arange(1, n + 1, dtype="int32"), "y": np.ones(n, dtype="int32")} for n in (3, 5, 6, 7)]
    batches = TaggingBatches(items, ["token_ids"], 2, shuffle=False)
    (x0, y0, w0), (x1, _, _) = batches[0], batches[1]
    step = default_step()
    assert (x0["token_ids"].shape, x1["token_ids"].shape) == ((2, step), (2, step))
    assert x0["token_ids"][1, :6].tolist() == [1, 2, 3, 4, 5, 0] and w0.sum(axis=1).tolist() == [3, 5]
    assert y0.shape == w0.shape == x0["token_ids"].shape


def test_tagger_token_dropout_trains_and_reloads(tmp_path):
    p = Pipeline.from_config(tagging_config(token_dropout=0.3))
    p.fit(EN_TOKENS * 2, EN_TAGS * 2, epochs=2)
    model = p.stage("model").model_
    assert model.get_layer("token_dropout").rate == 0.3
    p.save(str(tmp_path / "saved"))
    assert Pipeline.load(str(tmp_path / "saved")).predict(EN_TOKENS) == p.predict(EN_TOKENS)
