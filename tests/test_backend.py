import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from pipeline import Pipeline
from stages import backend

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: JAX comes with the test extra; a plain install without it has no second backend to try.
needs_jax = pytest.mark.skipif(
    importlib.util.find_spec("jax") is None, reason="jax is not installed (pip install '.[test]' brings it)"
)

JAX_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import keras
    from pipeline import Pipeline
    from tests.conftest import tiny_config, ZH_POS, ZH_NEG
    assert keras.backend.backend() == "jax", keras.backend.backend()
    texts = ZH_POS + ZH_NEG
    labels = ["pos"] * len(ZH_POS) + ["neg"] * len(ZH_NEG)
    config = tiny_config(tokenizer="jieba", vectorizer="embedding", cell="lstm", bidirectional=True)
    config["training"]["epochs"] = 2
    p = Pipeline.from_config(config).fit(texts, labels, validation_data=(texts, labels))
    p.save(sys.argv[1])
    q = Pipeline.load(sys.argv[1])
    probe = ["很好看", "太差了", ""]
    print(json.dumps({"backend": keras.backend.backend(),
                      "scores": q.predict_scores(probe).tolist(),
                      "same": bool((q.predict_scores(probe) == p.predict_scores(probe)).all()),
                      "accuracy": p.evaluate(texts, labels)["accuracy"]}))
    """
)


@needs_jax
def test_backend_jax_trains_saves_and_loads_a_classifier(tmp_path):
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT, str(tmp_path / "jax_model")],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["backend"] == "jax" and result["same"]
    # The saved folder is backend-neutral: the TensorFlow backend loads it and agrees.
    loaded = Pipeline.load(str(tmp_path / "jax_model"))
    np.testing.assert_allclose(loaded.predict_scores(["很好看", "太差了", ""]), result["scores"], rtol=1e-4, atol=1e-5)


def test_backend_missing_tensorflow_says_how_to_install(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    monkeypatch.setattr(backend.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[cpu\]"'):
        backend.ensure_backend()


def test_backend_require_tensorflow_names_the_feature(monkeypatch):
    monkeypatch.setattr(backend.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match="SavedModel export needs TensorFlow"):
        backend.require_tensorflow("SavedModel export")


JAX_SEQUENCE_SCRIPT = textwrap.dedent(
    """
    import json
    import keras
    from pipeline import Pipeline
    from tests.test_tagging import tagging_config, EN_TOKENS, EN_TAGS
    from tests.test_seq2seq import _config, _toy_pairs
    from tests.test_lm import _config as lm_config, TEXTS
    assert keras.backend.backend() == "jax", keras.backend.backend()
    tagger = Pipeline.from_config(tagging_config(features={"chars": {"kind": "cnn", "dim": 4, "units": 4}}))
    tagger.fit(EN_TOKENS * 2, EN_TAGS * 2, validation_data=(EN_TOKENS, EN_TAGS), epochs=2)
    src, tgt = _toy_pairs(16)
    translator = Pipeline.from_config(_config()).fit(src, tgt, validation_data=(src[:4], tgt[:4]), epochs=2)
    lm = Pipeline.from_config(lm_config(max_length=5)).fit(TEXTS, validation_data=TEXTS[:3], epochs=2)
    print(json.dumps({"losses": [len(m.history_["val_loss"]) for m in (tagger, translator, lm)],
                      "tags": len(tagger.predict(["Anna met Bob"])[0]["tags"]),
                      "perplexity": translator.evaluate(src[:4], tgt[:4])["perplexity"]}))
    """
)


@pytest.mark.slow
@needs_jax
def test_backend_jax_trains_taggers_translators_and_language_models_on_the_shared_batches():
    # On JAX, LengthBatches goes to Keras as a PyDataset (on TensorFlow as a tf.data.Dataset).
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run([sys.executable, "-c", JAX_SEQUENCE_SCRIPT], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["losses"] == [2, 2, 2] and result["tags"] == 3 and result["perplexity"] > 1
