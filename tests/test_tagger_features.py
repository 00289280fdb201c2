"""The tagger's token feature plug-ins (stages.tagging.features): the nested ``features``
option, its validation, and the flat options of earlier versions."""

import os
import warnings

import pytest
import yaml

from pipeline import ConfigError, Pipeline
from stages.tagging import FEATURES, RNNTagger, TokenFeature
from stages.tagging.families import LEGACY_OPTIONS

from test_tagging import EN_TAGS, EN_TOKENS, ZH_SPANS, ZH_TEXTS, tagging_config

FLAT = {"char_features": "cnn", "char_dim": 4, "char_units": 4, "case_features": True, "bigram_features": False,
        "bigram_dim": 7, "word_boundary": False, "boundary_dim": 20, "lexicon_features": False, "lexicon_dim": 0}


def test_every_family_is_a_token_feature_with_its_own_inputs():
    names = [name for cls in FEATURES.values() for name in (cls().input_names if cls.name != "lexicon" else ["lexicon"])]
    assert list(FEATURES) == ["chars", "shape", "bigrams", "word_boundary", "lexicon"]
    assert all(issubclass(cls, TokenFeature) for cls in FEATURES.values())
    assert names == ["char_ids", "case_ids", "bigram_ids", "boundary_ids", "lexicon"]


def test_features_are_read_in_a_fixed_order_with_defaults_filled_in():
    m = RNNTagger(features={"lexicon": {"dim": 3}, "chars": {"kind": "lstm"}, "shape": {}})
    assert [f.name for f in m.feature_families()] == ["chars", "shape", "lexicon"]
    assert m.feature("chars").options == {"kind": "lstm", "dim": 25, "units": 25, "kernel": 3, "max_length": 20, "min_freq": 1}
    assert m.feature_names() == ["char_ids", "case_ids", "lexicon", "lexicon_ids"]
    assert m.feature("bigrams") is None
    assert RNNTagger.from_config(m.get_config()).get_config() == m.get_config()


@pytest.mark.parametrize(
    "features, message",
    [
        ({"char": {}}, r"features.char is not a known option. Did you mean 'chars'\?"),
        ({"chars": {"dimm": 3}}, r"features.chars.dimm is not a known option. Did you mean 'dim'\?"),
        ({"chars": {"kind": "rnn"}}, "features.chars.kind must be one of cnn, lstm"),
        ({"shape": {"dim": 0}}, "features.shape.dim must be an integer >= 1"),
        ({"bigrams": []}, "features.bigrams must be a mapping of options"),
        ([], "features must be a mapping of feature families"),
    ],
)
def test_feature_options_are_validated_with_their_path(features, message):
    with pytest.raises(ConfigError, match=message):
        Pipeline.from_config(tagging_config(features=features))


def test_flat_options_of_earlier_versions_are_read_with_a_warning_that_shows_the_new_form():
    with pytest.warns(FutureWarning, match=r"stages.model: the flat tagger feature options .* are deprecated; this config is "
                      r"read as features: \{chars: \{kind: cnn, dim: 4, units: 4\}, shape: \{\}\}\. Write that instead\. "
                      r"Ignored, as before \(their feature is off\): bigram_dim=7\."):
        p = Pipeline.from_config(tagging_config(**FLAT))
    model = p.stage("model")
    assert model.get_config()["features"] == {"chars": {"kind": "cnn", "dim": 4, "units": 4}, "shape": {}}
    assert not any(key in model.get_config() for key in LEGACY_OPTIONS)


def test_flat_and_nested_feature_options_cannot_be_mixed():
    with pytest.raises(ConfigError, match="stages.model.features cannot be combined with the older flat options case_features"):
        Pipeline.from_config(tagging_config(features={"chars": {}}, case_features=True))


def test_a_pipeline_saved_with_flat_options_loads_and_predicts_the_same(tmp_path):
    nested = {"chars": {"dim": 4, "units": 4}, "shape": {}}
    p = Pipeline.from_config(tagging_config(features=nested)).fit(EN_TOKENS, EN_TAGS, epochs=2)
    p.save(str(tmp_path))
    # The layout earlier versions wrote: every flat option in pipeline.yaml, the same assets.
    path = tmp_path / "pipeline.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    model = config["stages"]["model"]
    del model["features"]
    model.update(FLAT, bigram_dim=50, char_kernel=3, char_max_length=20, char_min_freq=1, case_dim=8, lexicon_path=None)
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    assert os.path.isfile(tmp_path / "model" / "chars.txt")
    with pytest.warns(FutureWarning, match="deprecated"):
        loaded = Pipeline.load(str(tmp_path))
    texts = ["Anna met Bob in Oslo .", "Acme Corp hired Carl"]
    assert loaded.predict(texts) == p.predict(texts)


def test_the_char_tokenizer_check_names_the_feature():
    with pytest.raises(ConfigError, match="stages.model.features.word_boundary needs a char tokenizer"):
        Pipeline.from_config(tagging_config(features={"word_boundary": {}}))


def test_word_boundary_feature_marks_each_characters_place_in_its_jieba_word():
    p = Pipeline.from_config(tagging_config(tokenizer="char", features={"word_boundary": {"dim": 2}}))
    p.fit(ZH_TEXTS, ZH_SPANS, epochs=1)
    sentence = p.tokenize(["我来到北京清华大学"])[0]
    # jieba: 我 / 来到 / 北京 / 清华大学 -> S, B E, B E, B M M E (ids 4, 1 3, 1 3, 1 2 2 3)
    assert p.stage("model").feature_arrays(sentence)["boundary_ids"].tolist() == [4, 1, 3, 1, 3, 1, 2, 2, 3]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the nested form gives no deprecation warning
        Pipeline.from_config(p.get_config())
