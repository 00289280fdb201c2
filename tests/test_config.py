import glob
import os

import pytest

from pipeline import ConfigError, Pipeline
from tests.conftest import tiny_config


def _with(section, stage, **options):
    config = tiny_config()
    config[section][stage].update(options) if stage else config[section].update(options)
    return config


def test_config_error_names_path_and_received_value():
    config = tiny_config()
    config["stages"]["vocabulary"]["max_size"] = -3
    with pytest.raises(ConfigError, match=r"stages\.vocabulary\.max_size must be an integer >= 3 or null\. Received: max_size=-3"):
        Pipeline.from_config(config)


def test_config_unknown_stage_option_suggests_the_right_name():
    config = tiny_config()
    config["stages"]["vocabulary"]["maxsize"] = 10
    with pytest.raises(ConfigError, match=r"stages\.vocabulary\.maxsize is not a known option\. Did you mean 'max_size'"):
        Pipeline.from_config(config)


def test_config_wrong_type_is_refused():
    config = tiny_config()
    config["stages"]["model"]["units"] = "big"
    with pytest.raises(ConfigError, match=r"stages\.model\.units must be an integer >= 1\. Received: units='big'"):
        Pipeline.from_config(config)


def test_config_bool_is_not_an_integer():
    config = tiny_config()
    config["stages"]["model"]["layers"] = True
    with pytest.raises(ConfigError, match=r"stages\.model\.layers"):
        Pipeline.from_config(config)


def test_config_unknown_stage_type_lists_the_known_ones():
    config = tiny_config()
    config["stages"]["tokenizer"]["type"] = "spacy"
    with pytest.raises(ConfigError, match=r"stages\.tokenizer\.type must name a registered stage type: .*jieba.*Received: type='spacy'"):
        Pipeline.from_config(config)


def test_config_missing_stage_is_refused():
    config = tiny_config()
    del config["stages"]["decoder"]
    with pytest.raises(ConfigError, match=r"exactly one decoder stage \(found 0\)"):
        Pipeline.from_config(config)


def test_config_stages_out_of_order_are_refused():
    config = tiny_config()
    stages = config["stages"]
    config["stages"] = {"vocabulary": stages["vocabulary"], "tokenizer": stages["tokenizer"], **{k: stages[k] for k in ("vectorizer", "model", "decoder")}}
    with pytest.raises(ConfigError, match="must come in the order tokenizer -> vocabulary"):
        Pipeline.from_config(config)


def test_config_unknown_top_level_key_is_refused():
    config = tiny_config()
    config["trainig"] = {}
    with pytest.raises(ConfigError, match="trainig is not a known option. Did you mean 'training'"):
        Pipeline.from_config(config)


def test_config_unknown_task_is_refused():
    config = tiny_config()
    config["task"] = "regression"
    with pytest.raises(ConfigError, match=r"task must be one of .*classification.*Received: task='regression'"):
        Pipeline.from_config(config)


def test_config_training_section_is_validated():
    config = tiny_config()
    config["training"]["epochs"] = 0
    with pytest.raises(ConfigError, match=r"training\.epochs must be an integer >= 1\. Received: epochs=0"):
        Pipeline.from_config(config)


def test_config_data_section_is_validated():
    config = tiny_config()
    config["data"] = {"format": "xml"}
    with pytest.raises(ConfigError, match=r"data\.format must be one of tsv, csv, jsonl, fasttext, text\. Received: format='xml'"):
        Pipeline.from_config(config)


def test_config_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("stages:\n  tokenizer: {type: char\n  vocabulary: {}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.yaml is not valid YAML at line \d+"):
        Pipeline.from_yaml(str(path))


def test_config_stages_must_be_a_mapping():
    with pytest.raises(ConfigError, match="stages must be a mapping"):
        Pipeline.from_config({"stages": ["char"]})


def test_config_round_trips_through_the_pipeline():
    p = Pipeline.from_config(tiny_config())
    assert Pipeline.from_config(p.get_config()).get_config() == p.get_config()


def test_config_dropout_of_one_is_refused():
    config = tiny_config(dropout=1.0)
    with pytest.raises(ConfigError, match=r"stages\.model\.dropout"):
        Pipeline.from_config(config)


def test_config_yaml_is_read_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("stages: !!python/object/apply:os.system ['echo hacked']\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        Pipeline.from_yaml(str(path))


@pytest.mark.parametrize(
    "path",
    sorted(glob.glob(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "configs", "*.yaml"))),
    ids=os.path.basename,
)
def test_every_shipped_config_builds(path):
    p = Pipeline.from_yaml(path)
    assert p.stages and not p.is_fitted
