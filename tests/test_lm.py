"""Language models: the rnn_language_model stage, the sampler decoder and LanguageModelPipeline."""

import os

import numpy as np
import pytest

from pipeline import ConfigError, DataError, Pipeline
from stages.seq2seq import RNNLanguageModel, SamplerDecoder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXTS = [
    "the cat sat on the mat",
    "the dog sat on the rug",
    "the cat saw the dog",
    "the dog saw the cat on the mat",
    "a cat sat on a rug",
    "a dog sat on a mat",
] * 2


def _config(cell="gru", max_length=20, size=16, **decoder):
    """A small language model; ``size`` is the embedding dim and the units, ``decoder`` the sampler's options."""
    return {
        "task": "language_model",
        "data": {"language": "en"},
        "stages": {
            "tokenizer": {"type": "whitespace"},
            "vocabulary": {"reserved": ["<bos>", "<eos>"]},
            "vectorizer": {"type": "embedding", "dim": size, "max_length": max_length},
            "model": {"type": "rnn_language_model", "cell": cell, "units": size, "dropout": 0.0, "learning_rate": 0.02},
            "decoder": {"type": "sampler", "max_tokens": 10, "temperature": 1.0, **decoder},
        },
        "training": {"batch_size": 4, "seed": 3, "verbose": 0, "restore_best": False, "checkpoint": False},
    }


@pytest.fixture(scope="module")
def lm():
    p = Pipeline.from_config(_config())
    p.fit(TEXTS, epochs=20)
    return p


def test_lm_learns_corpus_perplexity_far_below_uniform(lm):
    report = lm.evaluate(TEXTS)
    assert report["perplexity"] < 0.3 * len(lm["vocabulary"])
    assert report["tokens"] == sum(len(t.split()) + 1 for t in TEXTS)


def test_lm_perplexity_falls_during_training(lm):
    history = lm.history_["perplexity"]
    assert history[-1] < history[0] / 2


def test_lm_greedy_generation_is_deterministic_and_in_vocabulary(lm):
    first = lm.generate("the", temperature=0)
    assert first == lm.generate("the", temperature=0)
    assert set(first.split()) <= set(lm["vocabulary"].tokens_)


def test_lm_top_k_1_is_greedy(lm):
    assert lm.generate("the cat", top_k=1, seed=5) == lm.generate("the cat", temperature=0)


def test_lm_same_seed_same_sample(lm):
    assert lm.generate("a", seed=11) == lm.generate("a", seed=11)


def test_lm_generation_respects_max_tokens(lm):
    assert len(lm.predict(["the"], max_tokens=2, temperature=1.5, seed=0)[0]["tokens"]) <= 2


def test_lm_generate_refuses_bad_settings(lm):
    with pytest.raises(ValueError, match="temperature must be a number >= 0"):
        lm.generate("the", temperature=-1)
    with pytest.raises(ValueError, match="max_tokens must be an integer >= 1"):
        lm.generate("the", max_tokens=0)


def test_lm_predict_gives_one_answer_per_prompt(lm):
    answers = lm.predict(["the", "a dog"])
    assert [a["prompt"] for a in answers] == ["the", "a dog"]
    assert all(isinstance(a["generated"], str) for a in answers)


def test_lm_save_load_same_greedy_text(lm, tmp_path):
    lm.save(str(tmp_path / "lm"))
    loaded = Pipeline.load(str(tmp_path / "lm"))
    assert loaded.generate("the dog", temperature=0) == lm.generate("the dog", temperature=0)
    assert loaded.evaluate(TEXTS[:3])["perplexity"] == pytest.approx(lm.evaluate(TEXTS[:3])["perplexity"], rel=1e-4)


def test_lm_windows_cut_long_texts_without_losing_tokens():
    p = Pipeline.from_config(_config(max_length=4))
    p.stage("tokenizer").fit([])
    p.stage("vocabulary").fit([["a", "b", "c", "d", "e", "f", "g"]])
    windows = p.batches([["a", "b", "c", "d", "e", "f", "g"]])
    inputs, targets = windows.columns["inputs"], windows.columns["targets"]
    assert all(len(x) <= 4 for x in inputs)
    vocab = p.stage("vocabulary")
    flat = [t for row in targets for t in row]
    assert flat == vocab.transform([["a", "b", "c", "d", "e", "f", "g"]])[0] + [vocab.id_of("<eos>")]
    assert inputs[1][0] == targets[0][-1]  # each window continues where the last one stopped


@pytest.mark.parametrize("cell", ["simple_rnn", "lstm", "gru"])
def test_rnn_language_model_trains_with_every_cell(cell):
    from stages import EmbeddingVectorizer

    m = RNNLanguageModel(cell=cell, units=4, layers=2)
    m.build(EmbeddingVectorizer(dim=4).input_layer(9), 9)
    logs = m.model_.train_on_batch(np.array([[1, 4, 5, 0]]), np.array([[4, 5, 2, 0]]), return_dict=True)
    assert np.isfinite(float(logs["loss"]))
    log_probs, state, _ = m.step(np.array([1], "int32"), m.initial_state(1))
    assert log_probs.shape == (1, 9) and len(state) == (4 if cell == "lstm" else 2)


def test_sampler_pick_temperature_zero_is_argmax():
    rng = np.random.default_rng(0)
    assert SamplerDecoder.pick(np.log([0.1, 0.6, 0.3]), 0.0, 0, rng) == 1


def test_sampler_pick_top_k_never_leaves_the_top():
    rng = np.random.default_rng(0)
    picks = {SamplerDecoder.pick(np.log([0.05, 0.5, 0.4, 0.05]), 2.0, 2, rng) for _ in range(200)}
    assert picks == {1, 2}


def test_sampler_pick_never_draws_banned_ids():
    rng = np.random.default_rng(0)
    assert {SamplerDecoder.pick(np.log([0.9, 0.05, 0.05]), 1.0, 0, rng, banned=[0]) for _ in range(50)} <= {1, 2}


def test_sampler_refuses_negative_top_k():
    with pytest.raises(ConfigError, match="stages.decoder.top_k must be an integer >= 0"):
        SamplerDecoder.from_config({"top_k": -1}, path="stages.decoder")


def test_lm_vocabulary_needs_bos_and_eos():
    config = _config()
    config["stages"]["vocabulary"] = {}
    with pytest.raises(ConfigError, match="stages.vocabulary.reserved must include <bos> and <eos>"):
        Pipeline.from_config(config)


def test_lm_needs_a_language_model_stage():
    config = _config()
    config["stages"]["model"] = {"type": "rnn_classifier"}
    with pytest.raises(ConfigError, match="stages.model.type must be rnn_language_model"):
        Pipeline.from_config(config)


def test_lm_read_leaves_blank_lines_out(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("the cat\n\nthe dog\n   \n", encoding="utf-8")
    corpus = Pipeline.from_config(_config()).read(str(path))
    assert corpus.texts == ["the cat", "the dog"] and corpus.blank_lines == 2


def test_lm_read_refuses_an_all_blank_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match="no non-blank lines"):
        Pipeline.from_config(_config()).read(str(path))


def test_lm_sample_configs_build():
    for name in ("lm_en", "lm_zh"):
        p = Pipeline.from_yaml(os.path.join(ROOT, "data", "configs", f"{name}.yaml"))
        assert p.task == "language_model"
