import json
import os

import numpy as np
import pytest
import yaml

from pipeline import ConfigError, NotFittedError, Pipeline
from stages import CharTokenizer, LabelDecoder, OneHotVectorizer, RNNClassifier, Vocabulary
from tests.conftest import tiny_config


def test_pipeline_predicts_label_and_score(fitted_zh):
    answers = fitted_zh.predict(["很好看", "太差了"])
    assert len(answers) == 2
    assert all(a["label"] in {"pos", "neg"} and 0.0 <= a["score"] <= 1.0 for a in answers)


def test_pipeline_empty_and_whitespace_texts_predict(fitted_zh):
    answers = fitted_zh.predict(["", "   ", "好"])
    assert [a["label"] in {"pos", "neg"} for a in answers] == [True, True, True]


def test_pipeline_predict_of_nothing_is_empty(fitted_zh):
    assert fitted_zh.predict([]) == []


def test_pipeline_refuses_a_single_string(fitted_zh):
    with pytest.raises(TypeError, match="wrap it in a list"):
        fitted_zh.predict("好")


def test_pipeline_unfitted_predict_says_what_to_do():
    with pytest.raises(NotFittedError, match="call fit"):
        Pipeline.from_config(tiny_config()).predict(["好"])


def test_pipeline_save_load_gives_identical_predictions(fitted_zh, tmp_path):
    texts = ["很好看", "太差了", "", "没见过的字"]
    fitted_zh.save(str(tmp_path / "p"))
    loaded = Pipeline.load(str(tmp_path / "p"))
    np.testing.assert_array_equal(loaded.predict_scores(texts), fitted_zh.predict_scores(texts))
    assert loaded.get_config() == fitted_zh.get_config()


def test_pipeline_saved_folder_holds_plain_assets(fitted_zh, tmp_path):
    fitted_zh.save(str(tmp_path / "p"))
    root = tmp_path / "p"
    assert (root / "vocabulary" / "vocab.txt").read_text(encoding="utf-8").startswith("<pad>\n<unk>\n")
    assert (root / "decoder" / "labels.txt").read_text(encoding="utf-8") == "neg\npos\n"
    assert (root / "model" / "model.keras").is_file()
    meta = json.loads((root / "metadata.json").read_text(encoding="utf-8"))
    assert meta["task"] == "classification" and "keras" in meta["versions"] and "jieba" in meta["versions"]
    assert "tokenizer" in meta["tokenizer_fingerprints"]
    assert yaml.safe_load((root / "pipeline.yaml").read_text(encoding="utf-8"))["stages"]["tokenizer"]["type"] == "char"


def test_pipeline_load_names_a_missing_file(fitted_zh, tmp_path):
    fitted_zh.save(str(tmp_path / "p"))
    os.remove(tmp_path / "p" / "vocabulary" / "vocab.txt")
    with pytest.raises(FileNotFoundError, match="vocab.txt is missing"):
        Pipeline.load(str(tmp_path / "p"))


def test_pipeline_load_refuses_a_folder_without_metadata(tmp_path):
    (tmp_path / "p").mkdir()
    with pytest.raises(FileNotFoundError, match="pipeline.yaml is missing"):
        Pipeline.load(str(tmp_path / "p"))


def _save_with_metadata(pipeline, folder, change):
    """Save ``pipeline`` to ``folder`` and apply ``change(metadata dict)`` to its metadata.json."""
    pipeline.save(str(folder))
    meta_path = folder / "metadata.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    change(meta)
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    return str(folder)


def test_pipeline_load_warns_about_another_package_version(fitted_zh, tmp_path):
    path = _save_with_metadata(fitted_zh, tmp_path / "p", lambda meta: meta["versions"].update({"keras-text-pipeline": "0.0.1"}))
    with pytest.warns(UserWarning, match="saved by keras-text-pipeline 0.0.1"):
        Pipeline.load(path)


def test_pipeline_load_refuses_an_unknown_format_version(fitted_zh, tmp_path):
    path = _save_with_metadata(fitted_zh, tmp_path / "p", lambda meta: meta.update(format_version=99))
    with pytest.raises(ValueError, match="saved-pipeline format 99"):
        Pipeline.load(path)


def test_pipeline_load_refuses_a_symlinked_asset(fitted_zh, tmp_path):
    from pipeline import DataError

    fitted_zh.save(str(tmp_path / "p"))
    labels = tmp_path / "p" / "decoder" / "labels.txt"
    (tmp_path / "elsewhere.txt").write_text("neg\npos\n", encoding="utf-8")
    labels.unlink()
    labels.symlink_to(tmp_path / "elsewhere.txt")
    with pytest.raises(DataError, match=r"decoder/labels\.txt is a symbolic link; a saved pipeline folder must hold plain files"):
        Pipeline.load(str(tmp_path / "p"))


def test_pipeline_load_may_reach_the_folder_itself_through_a_link(fitted_zh, tmp_path):
    fitted_zh.save(str(tmp_path / "p"))
    (tmp_path / "latest").symlink_to(tmp_path / "p")
    assert Pipeline.load(str(tmp_path / "latest")).predict(["好"]) == fitted_zh.predict(["好"])


def test_pipeline_load_checks_the_label_count_against_the_model(fitted_zh, tmp_path):
    from pipeline import DataError

    fitted_zh.save(str(tmp_path / "p"))
    (tmp_path / "p" / "decoder" / "labels.txt").write_text("neg\npos\nmaybe\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"labels\.txt lists 3 labels but the model .*model\.keras scores 2"):
        Pipeline.load(str(tmp_path / "p"))


def test_pipeline_load_checks_the_vocabulary_size_against_the_embedding(fitted_zh, tmp_path):
    from pipeline import DataError

    fitted_zh.save(str(tmp_path / "p"))
    with open(tmp_path / "p" / "vocabulary" / "vocab.txt", "a", encoding="utf-8") as f:
        f.write("多\n")
    n = len(fitted_zh.stage("vocabulary").tokens_)
    with pytest.raises(DataError, match=rf"vocab\.txt has {n + 1} tokens but the layer 'onehot' of .*model\.keras takes {n} ids"):
        Pipeline.load(str(tmp_path / "p"))


def test_pipeline_load_reports_a_damaged_model_file_in_one_line(fitted_zh, tmp_path):
    from pipeline import DataError

    fitted_zh.save(str(tmp_path / "p"))
    (tmp_path / "p" / "model" / "model.keras").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match=r"model\.keras cannot be loaded \(safe mode\)") as info:
        Pipeline.load(str(tmp_path / "p"))
    assert "\n" not in str(info.value)


def test_pipeline_load_refuses_metadata_that_is_not_json(fitted_zh, tmp_path):
    from pipeline import DataError

    fitted_zh.save(str(tmp_path / "p"))
    (tmp_path / "p" / "metadata.json").write_bytes(b"\xff{")
    with pytest.raises(DataError, match=r"metadata\.json is not valid JSON"):
        Pipeline.load(str(tmp_path / "p"))


def test_pipeline_from_stages_refuses_a_name_that_is_not_an_identifier():
    from pipeline import ConfigError

    stages = {"tokenizer": CharTokenizer(), "vocabulary": Vocabulary(), "vectorizer": OneHotVectorizer(), "model": RNNClassifier(), "../decoder": LabelDecoder()}
    with pytest.raises(ConfigError, match="stages must name each stage with a plain identifier"):
        Pipeline.from_stages(**stages)


def test_pipeline_evaluate_reports_accuracy_f1_and_confusion(fitted_zh, zh_data):
    report = fitted_zh.evaluate(*zh_data)
    assert set(report) >= {"accuracy", "macro_f1", "micro_f1", "per_class", "confusion_matrix"}
    assert sum(map(sum, report["confusion_matrix"])) == len(zh_data[0])


def test_pipeline_learns_an_easy_task(zh_data):
    config = tiny_config(units=16)
    config["training"]["epochs"] = 30
    config["stages"]["model"]["learning_rate"] = 0.01
    p = Pipeline.from_config(config).fit(*zh_data)
    assert p.evaluate(*zh_data)["accuracy"] >= 0.9


def test_pipeline_fit_with_run_folder_writes_logs_and_pictures(zh_data, tmp_path):
    config = tiny_config()
    config["training"].update({"epochs": 2, "plots": True})
    out = tmp_path / "run"
    p = Pipeline.from_config(config).fit(*zh_data, validation_data=zh_data, output_dir=str(out))
    for name in ("history.csv", "metrics.json", "training_curves.png", "confusion_matrix.png", "checkpoints/best.keras", "pipeline.yaml"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert len(metrics["history"]["loss"]) == 2 and "accuracy" in metrics["dev"]
    assert p.dev_coverage_["coverage"] == 1.0


def _bucketed_config(**vectorizer):
    config = tiny_config(vectorizer="embedding", pooling="mean")
    config["stages"]["vectorizer"].update(max_length=40, **vectorizer)
    config["training"].update(length_buckets=True, epochs=2, restore_best=False)
    return config


@pytest.mark.parametrize("padding", ["post", "pre"])
def test_pipeline_length_buckets_score_dev_as_the_full_width_arrays_do(zh_data, padding):
    # Dev is scored on batches of similar-length texts padded to their own width (8 or 16 here,
    # not max_length 40); with the padding masked that must equal the loss on the full arrays.
    p = Pipeline.from_config(_bucketed_config(padding=padding)).fit(*zh_data, validation_data=zh_data)
    x, y = p.encode(zh_data[0]), p.stage("decoder").encode(zh_data[1])
    assert x.shape[1] == 40 and max(map(len, zh_data[0])) <= 16
    full = p.stage("model").model_.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
    np.testing.assert_allclose(p.history_["val_loss"][-1], full["loss"], rtol=1e-4)
    np.testing.assert_allclose(p.history_["val_accuracy"][-1], full["accuracy"], rtol=1e-6)


def test_pipeline_length_buckets_learn_an_easy_task(zh_data):
    config = _bucketed_config()
    config["training"]["epochs"] = 30
    config["stages"]["model"].update(units=16, learning_rate=0.01)
    p = Pipeline.from_config(config).fit(*zh_data)
    assert p.evaluate(*zh_data)["accuracy"] >= 0.9


def test_pipeline_length_buckets_need_masked_padding(zh_data):
    p = Pipeline.from_config(_bucketed_config(mask=False))
    with pytest.raises(ConfigError, match=r"training.length_buckets needs a vectorizer that masks its padding"):
        p.fit(*zh_data)


def test_pipeline_length_buckets_is_a_boolean():
    config = tiny_config()
    config["training"]["length_buckets"] = "yes"
    with pytest.raises(ConfigError, match="training.length_buckets"):
        Pipeline.from_config(config)


def test_pipeline_same_seed_gives_same_model(zh_data):
    a = Pipeline.from_config(tiny_config()).fit(*zh_data, seed=7)
    b = Pipeline.from_config(tiny_config()).fit(*zh_data, seed=7)
    np.testing.assert_allclose(a.predict_scores(["好看"]), b.predict_scores(["好看"]), rtol=1e-6)


def test_pipeline_texts_and_labels_must_pair_up():
    with pytest.raises(ValueError, match="Got 2 texts but 1 labels"):
        Pipeline.from_config(tiny_config()).fit(["a", "b"], ["x"])


def test_pipeline_composed_from_stage_objects(zh_data):
    p = Pipeline.from_stages(
        tokenizer=CharTokenizer(),
        vocabulary=Vocabulary(),
        vectorizer=OneHotVectorizer(max_length=10),
        model=RNNClassifier(cell="simple_rnn", units=4, bidirectional=False),
        decoder=LabelDecoder(),
        training={"epochs": 1, "verbose": 0},
    )
    assert p.fit(*zh_data).predict(["好"])[0]["label"] in {"pos", "neg"}


@pytest.mark.parametrize("tokenizer", ["jieba", "nltk", "whitespace"])
def test_pipeline_word_tokenizers_with_embeddings(tokenizer, zh_data, en_data):
    data = zh_data if tokenizer == "jieba" else en_data
    p = Pipeline.from_config(tiny_config(tokenizer=tokenizer, vectorizer="embedding", cell="lstm", pooling="last"))
    assert len(p.fit(*data).predict(data[0][:2])) == 2


def test_pipeline_multi_label(tmp_path):
    config = tiny_config()
    config["stages"]["decoder"]["multi_label"] = True
    texts = ["好看好听", "好看", "好听", "一般"]
    labels = [["look", "sound"], ["look"], ["sound"], []]
    p = Pipeline.from_config(config).fit(texts, labels)
    answer = p.predict(["好看"])[0]
    assert "labels" in answer and isinstance(answer["scores"], list)
    assert "accuracy" in p.evaluate(texts, labels)
    p.save(str(tmp_path / "m"))
    np.testing.assert_array_equal(Pipeline.load(str(tmp_path / "m")).predict_scores(texts), p.predict_scores(texts))


def test_pipeline_reads_its_data_format(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("1 good film\n0 bad film\n", encoding="utf-8")
    config = tiny_config()
    config["data"] = {"format": "fasttext"}
    corpus = Pipeline.from_config(config).read(str(path))
    assert corpus.labels == ["1", "0"]


def test_pipeline_fit_runs_extra_callbacks(zh_data):
    import keras

    seen = []

    class Count(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(epoch)

    config = tiny_config()
    config["training"]["epochs"] = 2
    Pipeline.from_config(config).fit(*zh_data, callbacks=[Count()])
    assert seen == [0, 1]


def test_pipeline_ensemble_answers_with_the_mean_of_its_members(zh_data, tmp_path):
    config = tiny_config(ensemble=3)
    config["training"].update({"epochs": 2, "plots": True})
    out = tmp_path / "run"
    p = Pipeline.from_config(config).fit(*zh_data, validation_data=zh_data, seed=5, output_dir=str(out))
    x = p.encode(["好看", "很差劲", ""])
    members = [layer for layer in p.stage("model").model_.layers if layer.name.startswith("member_")]
    assert [m.name for m in members] == ["member_1", "member_2", "member_3"]
    outputs = [np.asarray(m.predict(x, verbose=0)) for m in members]
    np.testing.assert_allclose(p.predict_scores(["好看", "很差劲", ""]), np.mean(outputs, axis=0), rtol=1e-5, atol=1e-6)
    assert not np.allclose(outputs[0], outputs[1]), "members trained with different seeds should differ"
    # Each member keeps its own logs; the run's metrics list every member's history.
    for i in (1, 2, 3):
        for name in ("history.csv", "checkpoints/best.keras", "training_curves.png"):
            assert (out / "members" / f"member_{i}" / name).is_file(), (i, name)
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert len(metrics["member_histories"]) == 3 and "accuracy" in metrics["dev"]
    # One saved model holds all members.
    loaded = Pipeline.load(str(out))
    np.testing.assert_allclose(loaded.predict_scores(["好看", "很差劲"]), p.predict_scores(["好看", "很差劲"]), rtol=1e-6)
    assert loaded.get_config()["stages"]["model"]["ensemble"] == 3


def test_pipeline_ensemble_member_equals_a_single_network_with_the_next_seed(zh_data):
    ensemble = Pipeline.from_config(tiny_config(ensemble=2)).fit(*zh_data, seed=11)
    single = Pipeline.from_config(tiny_config()).fit(*zh_data, seed=12)
    member_2 = ensemble.stage("model").model_.get_layer("member_2")
    x = single.encode(["好看", "难看"])
    np.testing.assert_allclose(member_2.predict(x, verbose=0), single.predict_scores(["好看", "难看"]), rtol=1e-5, atol=1e-6)


def test_pipeline_ensemble_members_draw_their_own_rows_beside_pretrained_vectors(zh_data, tmp_path):
    texts, labels = zh_data
    vectors = tmp_path / "v.vec"
    vectors.write_text("1 8\n好 " + " ".join(["0.5"] * 8) + "\n", encoding="utf-8")
    config = tiny_config(vectorizer="embedding", ensemble=2)
    config["stages"]["vectorizer"].update(pretrained=str(vectors), trainable=False)
    p = Pipeline.from_config(config).fit(texts, labels, seed=3)
    vocab = p.stage("vocabulary")
    tables = [p.stage("model").model_.get_layer(f"member_{i}").get_layer("embedding").get_weights()[0] for i in (1, 2)]
    np.testing.assert_allclose(tables[0][vocab.id_of("好")], 0.5)
    np.testing.assert_allclose(tables[1][vocab.id_of("好")], 0.5)
    other = [i for i in range(2, len(vocab)) if vocab.tokens_[i] != "好"]
    assert not np.allclose(tables[0][other], tables[1][other])  # frozen, so still the two draws


def test_pipeline_ensemble_size_must_be_a_positive_integer():
    from pipeline import ConfigError

    with pytest.raises(ConfigError, match="stages.model.ensemble"):
        Pipeline.from_config(tiny_config(ensemble=0))
