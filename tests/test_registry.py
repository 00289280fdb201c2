import pytest
import yaml

from pipeline import registry
from stages.base import Stage


@pytest.mark.parametrize("cls", registry.all_classes(), ids=lambda c: f"{c.kind}:{c.type_name}")
def test_stage_config_round_trips(cls):
    stage = cls()
    config = stage.get_config()
    assert cls.from_config(config).get_config() == config


@pytest.mark.parametrize("cls", registry.all_classes(), ids=lambda c: f"{c.kind}:{c.type_name}")
def test_stage_config_survives_yaml(cls):
    config = cls().get_config()
    assert cls.from_config(yaml.safe_load(yaml.safe_dump(config))).get_config() == config


def test_registry_refuses_a_second_class_under_a_taken_name():
    with pytest.raises(ValueError, match="already registered"):

        @registry.register("tokenizer", "char")
        class Other(Stage):
            pass


def test_registry_lists_builtin_stages():
    names = registry.names()
    assert {"jieba", "nltk", "char", "whitespace"} <= set(names["tokenizer"])
    assert {"onehot", "embedding"} <= set(names["vectorizer"])
    assert "rnn_classifier" in names["model"]
