import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# As many pytest-xdist workers as cores (the README's `-n 2` on 2 cores): one TensorFlow thread
# per worker, instead of each worker's pools contending for every core. Child processes inherit it.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0")) >= (os.cpu_count() or 1):
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

import pytest  # noqa: E402

ZH_POS = ["这部电影很好看", "服务很好，很满意", "质量不错，推荐购买", "非常喜欢，好看", "酒店干净，服务周到", "味道很好，下次再来"]
ZH_NEG = ["这部电影很难看", "服务太差，不满意", "质量很差，不推荐", "非常失望，难看", "酒店很脏，服务差劲", "味道很差，不会再来"]
EN_POS = ["a great and moving film", "i loved it , wonderful", "superb acting , great story", "really good fun", "wonderful , i loved the music", "great value and good quality"]
EN_NEG = ["a dull and boring film", "i hated it , awful", "terrible acting , bad story", "really bad and boring", "awful , i hated the music", "bad value and poor quality"]


@pytest.fixture(scope="session")
def zh_data():
    texts = ZH_POS + ZH_NEG
    labels = ["pos"] * len(ZH_POS) + ["neg"] * len(ZH_NEG)
    return texts, labels


@pytest.fixture(scope="session")
def en_data():
    texts = EN_POS + EN_NEG
    labels = ["pos"] * len(EN_POS) + ["neg"] * len(EN_NEG)
    return texts, labels


def tiny_config(tokenizer="char", vectorizer="onehot", **model):
    """A small, fast classification config for tests."""
    model_cfg = {"type": "rnn_classifier", "cell": "gru", "units": 4, "bidirectional": False, "dropout": 0.0}
    model_cfg.update(model)
    vec = {"type": vectorizer, "max_length": 12}
    if vectorizer == "embedding":
        vec["dim"] = 8
    return {
        "task": "classification",
        "stages": {
            "tokenizer": {"type": tokenizer},
            "vocabulary": {"max_size": 200},
            "vectorizer": vec,
            "model": model_cfg,
            "decoder": {"type": "label"},
        },
        "training": {"epochs": 1, "batch_size": 4, "verbose": 0, "plots": False},
    }


@pytest.fixture(scope="session")
def fitted_zh(zh_data, tmp_path_factory):
    """A tiny fitted char-level classifier, shared by tests that only read it."""
    from pipeline import Pipeline

    p = Pipeline.from_config(tiny_config())
    p.fit(*zh_data)
    return p


@pytest.fixture(scope="session")
def saved_zh(fitted_zh, tmp_path_factory):
    """``fitted_zh`` saved to a folder (shared, never modified: tests copy it)."""
    path = str(tmp_path_factory.mktemp("saved_zh") / "model")
    fitted_zh.save(path)
    return path


def check_odd_batches(path):
    """Every signature of the SavedModel at ``path`` answers an empty batch, empty and
    whitespace-only texts, bytes that are not UTF-8 and empty token rows with outputs of the
    same rank as for a normal batch, one row per input row. Returns the loaded model."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    for name, fn in loaded.signatures.items():
        (spec,) = fn.structured_input_signature[1].values()
        if spec.shape.rank == 1:
            cases = [tf.constant([], tf.string), tf.constant(["", " ", "\t\n"]), tf.constant([b"\xff\xfe", b"ok \xe4\xb8"])]
        else:
            cases = [tf.zeros([0, 0], tf.string), tf.fill([2, 0], ""), tf.constant([["", ""], ["", ""]])]
        normal = fn(**{spec.name: cases[1]})
        for batch in cases:
            out = fn(**{spec.name: batch})
            assert set(out) == set(normal), name
            for key, value in out.items():
                assert value.shape.rank == normal[key].shape.rank, (name, key)
                assert value.shape[0] == batch.shape[0], (name, key, value.shape)
    return loaded
