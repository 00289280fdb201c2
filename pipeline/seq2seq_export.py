"""Export a fitted translation pipeline as a TensorFlow SavedModel, with the search in the graph.

The SavedModel maps source tokens to target tokens; greedy and beam search both run inside the
graph (the same ``keras.ops`` search code the Python pipeline uses, traced with TensorFlow):

- ``serving_default``: ``tokens`` (2-D ``tf.string``, one row of source tokens per sentence,
  padded with ``""``) -> decoded with the decoder's settings (``beam_width``,
  ``length_penalty``, ``max_length``);
- ``greedy`` and ``beam``: the same input, decoded greedily / with beam search (width: the
  decoder's ``beam_width`` when > 1, else ``min(4, vocabulary size)``);
- ``serve_text``: raw text (1-D ``tf.string``) -> the decoder's settings, when the source
  tokenizer can run in the graph (``char`` and ``whitespace``; see ``pipeline.export``).

Each returns ``target_tokens`` (``[batch, max_length]`` strings, ``""`` after the end),
``target_ids`` (int32, 0 after the end), ``length`` (tokens before ``<eos>``), ``score`` (the
best hypothesis's search score) and ``translation``: the tokens joined with nothing (decoder
``detokenize`` resolving to ``none``, e.g. Chinese targets) or with single spaces otherwise (the
Python pipeline's Treebank-style punctuation attachment is not reproduced in the graph), its
first character upper-cased when the decoder has ``capitalize: true``.

After writing, the SavedModel is loaded back and its target tokens and scores are compared with
the Python pipeline's on sample sentences, for every signature (the golden check); a
difference raises ``ExportError`` and nothing is left at the destination.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile


from .backend import require_tensorflow
from .errors import NotFittedError

TOKENS_SIGNATURE = "serving_default"
TEXT_SIGNATURE = "serve_text"


def _helpers():
    from . import export

    return export


def export_translation(pipeline, directory: str, samples=None, check: bool = True, overwrite: bool = False, atol: float = 1e-4) -> dict:
    """Write a fitted translation pipeline as a SavedModel and check it against Python.

    Args:
        pipeline: a fitted ``TranslationPipeline``.
        directory: the SavedModel folder (new or empty, or an earlier SavedModel with
            ``overwrite``).
        samples: source sentences for the golden check (default: sentences made of the source
            vocabulary's most frequent tokens).
        check: run the golden check (recommended).
        overwrite: replace an earlier SavedModel at ``directory``.
        atol: largest allowed score difference in the golden check.

    Returns:
        ``{"path", "signatures", "checked", "n_samples", "max_score_difference", "keras_backend"}``.

    Raises:
        ExportError: the SavedModel disagrees with the Python pipeline (first differences listed).
    """
    require_tensorflow("Exporting a SavedModel")
    ex = _helpers()
    try:
        pipeline.check_fitted()
    except NotFittedError as err:
        raise NotFittedError(f"Cannot export: {err}") from None
    samples = _samples(pipeline, samples)
    return ex.write_checked(
        directory,
        overwrite,
        write=lambda staging: _write(pipeline, staging),
        write_in_tensorflow=lambda staging: _write_in_tensorflow_process(pipeline, staging),
        golden=(lambda staging: golden_check(pipeline, staging, samples, atol=atol)) if check else None,
    )


def _samples(pipeline, samples):
    if samples is not None:
        if isinstance(samples, str):
            raise TypeError("samples must be a list of sentences, not a single str; wrap it in a list")
        samples = list(samples)
        if not samples:
            raise ValueError("samples is empty: the golden check needs at least one sentence (or pass samples=None)")
        return samples
    vocab = pipeline.side("vocabulary", "source")
    known = [t for t in vocab.tokens_[len(vocab.specials):] if t.strip() and " " not in t][:40]
    if not known:
        return ["x"]
    joiner = "" if pipeline.data.get("source_lang") in ("zh", "ja") else " "
    return [joiner.join(known[i: i + n]) for i, n in ((0, 3), (3, 6), (9, 1), (10, 12), (22, 5))] + ["unseenword " + known[0]]


def _beam_widths(pipeline):
    d = pipeline.decoder
    vocab = len(pipeline.side("vocabulary", "target"))
    beam = d.beam_width if d.beam_width > 1 else min(4, vocab)
    return {TOKENS_SIGNATURE: d.beam_width, "greedy": 1, "beam": beam}


def _build_module(pipeline, asset_dir):
    tf = require_tensorflow("Exporting a SavedModel")
    from stages.seq2seq import detokenize as _unused  # noqa: F401  (registers the layers)

    ex = _helpers()
    src_tok = pipeline.side("tokenizer", "source")
    src_vocab = pipeline.side("vocabulary", "source")
    src_vec = pipeline.side("vectorizer", "source")
    tgt_vocab = pipeline.side("vocabulary", "target")
    d = pipeline.decoder
    eos = tgt_vocab.id_of("<eos>")
    joiner = "" if _detok_mode(pipeline) == "none" else " "

    module = tf.Module(name="keras_text_pipeline_translation")
    keys = [t for t in src_vocab.tokens_ if t != ""]
    ids = [i for i, t in enumerate(src_vocab.tokens_) if t != ""]
    module.source_table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(keys, tf.string), tf.constant(ids, tf.int64)),
        default_value=src_vocab.unk_id,
    )
    target_names = tf.constant([t if i >= len(tgt_vocab.specials) else "" for i, t in enumerate(tgt_vocab.tokens_)], tf.string)
    module.target_file = tf.saved_model.Asset(os.path.join(asset_dir, "target_vocab.txt"))
    module.source_file = tf.saved_model.Asset(os.path.join(asset_dir, "source_vocab.txt"))
    module.config_file = tf.saved_model.Asset(os.path.join(asset_dir, "pipeline.yaml"))

    graph_tokenizer = ex.GraphTokenizer(src_tok) if getattr(src_tok, "graph_compatible", False) else None
    if graph_tokenizer is not None:
        for name, table in graph_tokenizer.trackables().items():
            if table is not None:
                setattr(module, name, table)

    searches = {name: pipeline._search(width, d.max_length, d.length_penalty) for name, width in _beam_widths(pipeline).items()}

    def decode(search, ragged_tokens):
        source_ids = _truncated(tf, ex, module.source_table.lookup(ragged_tokens), src_vec)
        out = search(source_ids, training=False)
        best = tf.cast(out["tokens"][:, 0, :], tf.int32)
        is_eos = tf.equal(best, eos)
        ended = tf.cumsum(tf.cast(is_eos, tf.int32), axis=1) > 0
        best = tf.where(ended, tf.zeros_like(best), best)
        length = tf.reduce_sum(tf.cast(tf.not_equal(best, 0), tf.int32), axis=1)
        names = tf.gather(target_names, best)
        kept = tf.ragged.boolean_mask(names, tf.not_equal(names, ""))
        return {
            "target_ids": best,
            "target_tokens": names,
            "length": length,
            "score": tf.cast(out["scores"][:, 0], tf.float32),
            "translation": capitalized(tf.strings.reduce_join(kept, axis=1, separator=joiner)),
        }

    def capitalized(text):
        return capitalize_first(tf, text) if getattr(pipeline.decoder, "capitalize", False) else text

    signatures = {}
    token_spec = tf.TensorSpec([None, None], tf.string, name="tokens")

    def serving(search):
        def serve(tokens):
            return decode(search, tf.ragged.boolean_mask(tokens, tf.not_equal(tokens, "")))

        return tf.function(serve, input_signature=[token_spec], autograph=False)

    for name, search in searches.items():
        fn = serving(search)
        setattr(module, f"serve_{name}" if name != TOKENS_SIGNATURE else "serve_tokens", fn)
        signatures[name] = fn.get_concrete_function()
    if graph_tokenizer is not None:
        default = searches[TOKENS_SIGNATURE]

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")], autograph=False)
        def serve_text(text):
            return decode(default, graph_tokenizer(text))

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")], autograph=False)
        def tokenize(text):
            return graph_tokenizer(text)

        module.serve_text = serve_text
        module.tokenize = tokenize
        signatures[TEXT_SIGNATURE] = serve_text.get_concrete_function()
    ex.track_variables(module, signatures)
    return module, signatures


def _truncated(tf, ex, ragged_ids, vectorizer):
    """Source ids truncated to the vectorizer's max_length (as the Python pipeline does) and
    right-padded to the longest row of the batch."""
    max_length = vectorizer.max_length
    if max_length is None:
        pass
    elif vectorizer.truncation == "post":
        ragged_ids = ragged_ids[:, :max_length]
    else:
        ragged_ids = ragged_ids[:, -max_length:]
    return ex.padded_ids(ragged_ids, None, "post", "post")


def capitalize_first(tf, text):
    """``text`` (1-D strings) with each string's first character upper-cased (UTF-8 aware;
    ``""`` stays ``""``): the graph's version of ``TextDecoder(capitalize=True)``."""
    length = tf.strings.length(text, unit="UTF8_CHAR")
    first = tf.strings.substr(text, tf.zeros_like(length), tf.minimum(length, 1), unit="UTF8_CHAR")
    rest = tf.strings.substr(text, tf.minimum(length, 1), length, unit="UTF8_CHAR")
    return tf.strings.upper(first, encoding="utf-8") + rest


def _detok_mode(pipeline):
    from stages.seq2seq import UNSPACED_LANGUAGES

    mode = pipeline.decoder.detokenize
    if mode == "auto":
        code = (pipeline.target_language or "").lower().replace("_", "-").split("-")[0]
        return "none" if code in UNSPACED_LANGUAGES else "treebank"
    return mode


def _write(pipeline, staging) -> dict:
    ex = _helpers()
    with tempfile.TemporaryDirectory() as asset_dir:
        for side in ("source", "target"):
            with open(os.path.join(asset_dir, f"{side}_vocab.txt"), "w", encoding="utf-8", newline="\n") as f:
                f.write("\n".join(pipeline.side("vocabulary", side).tokens_) + "\n")
        ex.write_config_asset(pipeline, asset_dir)
        module, signatures = _build_module(pipeline, asset_dir)
        report = ex.save_module(module, signatures, staging)
    report["beam_widths"] = {k: v for k, v in _beam_widths(pipeline).items()}
    return report


def _write_in_tensorflow_process(pipeline, staging) -> dict:
    """Save the pipeline and let a KERAS_BACKEND=tensorflow child process write the SavedModel."""
    ex = _helpers()
    with tempfile.TemporaryDirectory() as tmp:
        saved = os.path.join(tmp, "pipeline")
        pipeline.save(saved)
        request, result = os.path.join(tmp, "request.json"), os.path.join(tmp, "result.json")
        with open(request, "w", encoding="utf-8") as f:
            json.dump({"pipeline": saved, "staging": staging, "result": result}, f)
        env = dict(os.environ, KERAS_BACKEND="tensorflow")
        proc = subprocess.run([sys.executable, "-m", "pipeline.seq2seq_export", request], env=env, capture_output=True, text=True)
        if proc.returncode != 0 or not os.path.isfile(result):
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise ex.ExportError(f"Writing the SavedModel in a TensorFlow-backend child process failed:\n{tail}")
        with open(result, encoding="utf-8") as f:
            return json.load(f)


def golden_check(pipeline, directory, samples, atol: float = 1e-4) -> dict:
    """Compare every signature of the SavedModel with the Python pipeline on ``samples``.

    Returns:
        ``{"n_samples", "max_score_difference"}``.

    Raises:
        ExportError: listing the first differing sentences.
    """
    tf = require_tensorflow("Checking a SavedModel")
    ex = _helpers()
    loaded = tf.saved_model.load(directory)
    tokens = pipeline.tokenize(samples)
    width = max([len(t) for t in tokens] + [1])
    padded = tf.constant([list(t) + [""] * (width - len(t)) for t in tokens], dtype=tf.string, shape=[len(samples), width])
    problems, max_diff = [], 0.0
    runs = [(name, {"tokens": padded}, beam) for name, beam in _beam_widths(pipeline).items()]
    if TEXT_SIGNATURE in loaded.signatures:
        runs.append((TEXT_SIGNATURE, {"text": tf.constant(samples, dtype=tf.string, shape=[len(samples)])}, pipeline.decoder.beam_width))
    for name, inputs, beam in runs:
        want = pipeline.predict_tokens(tokens, beam=beam, n_best=1)
        out = loaded.signatures[name](**inputs)
        got_tokens = out["target_tokens"].numpy()
        got_scores = out["score"].numpy()
        for i, answer in enumerate(want):
            got = [t.decode("utf-8") for t in got_tokens[i] if t]
            if got != answer["tokens"]:
                problems.append(f"{name}, sentence {i} {samples[i]!r}: SavedModel {got!r} != Python {answer['tokens']!r}")
            diff = abs(float(got_scores[i]) - answer["score"])
            max_diff = max(max_diff, diff)
            if diff > atol:
                problems.append(f"{name}, sentence {i}: score {float(got_scores[i]):.6g} != Python {answer['score']:.6g}")
    if problems:
        shown = "\n  ".join(problems[:5])
        raise ex.ExportError(f"The SavedModel disagrees with the Python pipeline on {len(problems)} checks:\n  {shown}")
    return {"n_samples": len(samples), "max_score_difference": max_diff}


def _child_main(request_path):
    with open(request_path, encoding="utf-8") as f:
        request = json.load(f)
    from . import Pipeline

    pipeline = Pipeline.load(request["pipeline"])
    report = _write(pipeline, request["staging"])
    with open(request["result"], "w", encoding="utf-8") as f:
        json.dump(report, f)


if __name__ == "__main__":  # pragma: no cover - the child process of a non-TensorFlow export
    _child_main(sys.argv[1])
