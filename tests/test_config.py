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
    with pytest.raises(ConfigError, match=r"stages\.vocabulary\.max_size must be an integer >= 3 and <= 10000000 or null\. Received: max_size=-3"):
        Pipeline.from_config(config)


def test_config_unknown_stage_option_suggests_the_right_name():
    config = tiny_config()
    config["stages"]["vocabulary"]["maxsize"] = 10
    with pytest.raises(ConfigError, match=r"stages\.vocabulary\.maxsize is not a known option\. Did you mean 'max_size'"):
        Pipeline.from_config(config)


def test_config_wrong_type_is_refused():
    config = tiny_config()
    config["stages"]["model"]["units"] = "big"
    with pytest.raises(ConfigError, match=r"stages\.model\.units must be an integer >= 1 and <= 16384\. Received: units='big'"):
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
    config["task"] = "ranking"
    with pytest.raises(ConfigError, match=r"task must be one of .*classification.*Received: task='ranking'"):
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


# -- reading config files ------------------------------------------------------------------------
def _yaml_file(tmp_path, data, name="c.yaml"):
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return str(path)


def test_config_duplicate_key_names_the_key_and_both_lines(tmp_path):
    path = _yaml_file(tmp_path, "stages:\n  model: {type: rnn_classifier}\n  vocabulary: {}\n  model: {type: rnn_classifier}\n")
    with pytest.raises(ConfigError, match=r"c\.yaml has the key 'model' twice in one mapping \(lines 2 and 4\); keep one"):
        Pipeline.from_yaml(path)


def test_config_merge_keys_may_be_overridden(tmp_path):
    from pipeline.config import load_yaml

    path = _yaml_file(tmp_path, "base: &b {units: 4, cell: gru}\nstages:\n  model:\n    <<: *b\n    units: 8\n")
    assert load_yaml(path)["stages"]["model"] == {"units": 8, "cell": "gru"}


@pytest.mark.parametrize(
    "data, message",
    [
        ("stages: {}\n".encode("utf-16"), r"is UTF-16 text; save the config as UTF-8"),
        ("stages: {}\n".encode("utf-16-le"), r"holds NUL bytes"),
        ("stages: {a: caf\u00e9}\n".encode("latin-1"), r"is not UTF-8 text \(byte 0xe9 on line 1\)"),
        ("stages: " + "[" * 3000 + "]" * 3000, r"nests too deeply to be read"),
        ("stages: " + "[" * 80 + "]" * 80, r"nests more than 64 levels deep"),
        ("stages: &a [*a]\n", r"refers to itself"),
    ],
    ids=["utf16", "utf16_without_bom", "latin1", "deep_for_yaml", "deep", "self_alias"],
)
def test_config_unreadable_files_are_one_line_config_errors(tmp_path, data, message):
    with pytest.raises(ConfigError, match=message):
        Pipeline.from_yaml(_yaml_file(tmp_path, data))


def test_config_alias_bomb_is_refused_quickly(tmp_path):
    import time

    levels = "".join(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}" if i else "x"] * 9) + "]\n" for i in range(10))
    path = _yaml_file(tmp_path, levels + "stages: *l9\n")
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=r"holds more than 1,000,000 values once its YAML aliases are expanded"):
        Pipeline.from_yaml(path)
    assert time.perf_counter() - t0 < 5


def test_config_folder_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"is a folder, not a YAML config file"):
        Pipeline.from_yaml(str(tmp_path))


def test_config_error_shows_at_most_200_characters_of_the_value():
    config = tiny_config()
    config["stages"]["model"]["units"] = "x" * 100_000
    with pytest.raises(ConfigError) as info:
        Pipeline.from_config(config)
    message = str(info.value)
    assert message.endswith("... (100000 characters; cut at 200)") and len(message) < 400


def test_config_stage_name_must_be_an_identifier():
    for name in ("../x", "/etc", "a b", "1st", ""):
        config = tiny_config()
        config["stages"] = {(name if k == "decoder" else k): v for k, v in config["stages"].items()}
        with pytest.raises(ConfigError, match="stages must name each stage with a plain identifier"):
            Pipeline.from_config(config)


def test_config_set_value_is_read_like_the_file():
    from pipeline.config import apply_overrides

    with pytest.raises(ConfigError, match=r"stages\.model has a value that cannot be used: it has the key 'units' twice"):
        apply_overrides({}, ["stages.model={units: 4, units: 8}"])


def test_config_unknown_encoding_is_refused():
    config = tiny_config()
    config["data"] = {"encoding": "klingon"}
    with pytest.raises(ConfigError, match=r"data\.encoding must name a text encoding Python knows"):
        Pipeline.from_config(config)


@pytest.mark.parametrize(
    "section, stage, key, value, limit",
    [
        ("stages", "model", "units", 10**9, "<= 16384"),
        ("stages", "model", "layers", 1000, "<= 64"),
        ("stages", "model", "ensemble", 1000, "<= 64"),
        ("stages", "vectorizer", "max_length", 10**9, "<= 1000000"),
        ("stages", "vocabulary", "max_size", 10**9, "<= 10000000"),
        ("training", None, "batch_size", 10**9, "<= 1048576"),
    ],
)
def test_config_sizes_that_cannot_fit_in_memory_name_the_limit(section, stage, key, value, limit):
    config = _with(section, stage, **{key: value})
    with pytest.raises(ConfigError, match=f"{key} must be an integer >= \\d+ and {limit}"):
        Pipeline.from_config(config)
