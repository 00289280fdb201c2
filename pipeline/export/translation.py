"""SavedModel export of translation pipelines, with the search in the graph.

Greedy and beam search run inside the graph (the same ``keras.ops`` search code the Python
pipeline uses, traced with TensorFlow). Signatures (common layout in ``pipeline.export.base``):

- ``serving_default`` / ``serve_text``: ``text`` (1-D ``tf.string`` of raw source sentences),
  tokenized in the graph, decoded with the decoder's settings (``beam_width``,
  ``length_penalty``, ``max_length``);
- ``greedy`` and ``beam``: the same input, decoded greedily / with beam search (width: the
  decoder's ``beam_width`` when > 1, else ``min(4, vocabulary size)``);
- ``serve_tokens``: ``tokens`` (2-D, one row of source tokens per sentence, padded with
  ``""``), decoded with the decoder's settings.

Each returns ``target_tokens`` (``[batch, max_length]`` strings, ``""`` after the end),
``target_ids`` (int32, 0 after the end), ``length`` (tokens before ``<eos>``), ``score`` (the
best hypothesis's search score) and ``translation``: the tokens joined with nothing (decoder
``detokenize`` resolving to ``none``, e.g. Chinese targets) or with single spaces otherwise (the
Python pipeline's Treebank-style punctuation attachment is not reproduced in the graph), its
first character upper-cased when the decoder has ``capitalize: true``.
"""

from __future__ import annotations

import os

from stages.base import write_asset_lines

from .base import TEXT_SIGNATURE, TOKENS_SIGNATURE, Exporter, padded_ids, register_exporter, text_input, texts_spec, tokens_input, traced_once
from .text import GraphText, lookup_table


def capitalize_first(tf, text):
    """``text`` (1-D strings) with each string's first character upper-cased (UTF-8 aware;
    ``""`` stays ``""``): the graph's version of ``TextDecoder(capitalize=True)``."""
    length = tf.strings.length(text, unit="UTF8_CHAR")
    first = tf.strings.substr(text, tf.zeros_like(length), tf.minimum(length, 1), unit="UTF8_CHAR")
    rest = tf.strings.substr(text, tf.minimum(length, 1), length, unit="UTF8_CHAR")
    return tf.strings.upper(first, encoding="utf-8") + rest


@register_exporter("translation")
class TranslationExporter(Exporter):
    """Exports a fitted ``TranslationPipeline``."""

    default_atol = 1e-4

    def pipeline_samples(self):
        p = self.pipeline
        vocab = p.side("vocabulary", "source")
        known = [t for t in vocab.tokens_[len(vocab.specials):] if t.strip() and " " not in t][:40]
        if not known:
            return ["x"]
        joiner = "" if p.data.get("source_lang") in ("zh", "ja") else " "
        return [joiner.join(known[i: i + n]) for i, n in ((0, 3), (3, 6), (9, 1), (10, 12), (22, 5))] + ["unseenword " + known[0]]

    def beam_widths(self) -> dict:
        """Signature name -> beam width (1: greedy)."""
        d = self.pipeline.decoder
        vocab = len(self.pipeline.side("vocabulary", "target"))
        beam = d.beam_width if d.beam_width > 1 else min(4, vocab)
        return {TEXT_SIGNATURE: d.beam_width, "greedy": 1, "beam": beam}

    def write_assets(self, asset_dir):
        for side in ("source", "target"):
            write_asset_lines(os.path.join(asset_dir, f"{side}_vocab.txt"), self.pipeline.side("vocabulary", side).tokens_, what="token")

    def write(self, staging):
        report = super().write(staging)
        report["beam_widths"] = self.beam_widths()
        return report

    def build(self, module, asset_dir):
        tf = self.tf
        p = self.pipeline
        src_vocab, src_vec = p.side("vocabulary", "source"), p.side("vectorizer", "source")
        tgt_vocab, d = p.side("vocabulary", "target"), p.decoder
        eos = tgt_vocab.id_of("<eos>")
        joiner = "" if _detok_mode(p) == "none" else " "
        text = GraphText(p.side("tokenizer", "source")).attach(module)
        module.source_table = lookup_table(tf, src_vocab.tokens_, src_vocab.unk_id)
        # As Vocabulary.inverse_transform: padding and reserved tokens are dropped, <unk> is kept.
        target_names = tf.constant([t if i == 1 or i >= len(tgt_vocab.specials) else "" for i, t in enumerate(tgt_vocab.tokens_)], tf.string)
        searches = {name: p.search_model(width, d.max_length, d.length_penalty) for name, width in self.beam_widths().items()}

        def decode(search, ragged_tokens):
            source_ids = _truncated(tf, module.source_table.lookup(ragged_tokens), src_vec)
            out = search(source_ids, training=False)
            best = tf.cast(out["tokens"][:, 0, :], tf.int32)
            ended = tf.cumsum(tf.cast(tf.equal(best, eos), tf.int32), axis=1) > 0
            best = tf.where(ended, tf.zeros_like(best), best)
            names = tf.gather(target_names, best)
            kept = tf.ragged.boolean_mask(names, tf.not_equal(names, ""))
            translation = tf.strings.reduce_join(kept, axis=1, separator=joiner)
            if getattr(d, "capitalize", False):
                translation = capitalize_first(tf, translation)
            return {
                "target_ids": best,
                "target_tokens": names,
                "length": tf.reduce_sum(tf.cast(tf.not_equal(best, 0), tf.int32), axis=1),
                "score": tf.cast(out["scores"][:, 0], tf.float32),
                "translation": translation,
            }

        text_spec = texts_spec(tf)
        tokenize = traced_once(tf, text.tokenize, text_spec)
        signatures = {}

        def serving(search):
            return tf.function(lambda t: decode(search, tokenize(t)), input_signature=[text_spec], autograph=False)

        for name, search in searches.items():
            signatures[name] = serving(search).get_concrete_function()
        default = searches[TEXT_SIGNATURE]

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.string, name="tokens")], autograph=False)
        def serve_tokens(tokens):
            return decode(default, tf.ragged.boolean_mask(tokens, tf.not_equal(tokens, "")))

        module.tokenize = tokenize.get_concrete_function()
        signatures[TOKENS_SIGNATURE] = serve_tokens.get_concrete_function()
        return signatures

    def compare(self, loaded, samples):
        tf = self.tf
        p = self.pipeline
        tokens = p.tokenize(samples)
        widths = self.beam_widths()
        runs = [(name, {"text": text_input(tf, samples)}, beam) for name, beam in widths.items()]
        runs.append((TOKENS_SIGNATURE, {"tokens": tokens_input(tf, tokens)}, widths[TEXT_SIGNATURE]))
        problems, max_diff = [], 0.0
        for name, inputs, beam in runs:
            want = p.predict_tokens(tokens, beam=beam, n_best=1)
            out = loaded.signatures[name](**inputs)
            got_tokens, got_scores = out["target_tokens"].numpy(), out["score"].numpy()
            for i, answer in enumerate(want):
                got = [t.decode("utf-8") for t in got_tokens[i] if t]
                if got != answer["tokens"]:
                    problems.append((i, f"{name}: SavedModel {got[:12]!r} != Python {answer['tokens'][:12]!r}"))
                diff = abs(float(got_scores[i]) - answer["score"])
                max_diff = max(max_diff, diff)
                if diff > self.atol:
                    problems.append((i, f"{name}: score {float(got_scores[i]):.6g} != Python {answer['score']:.6g}"))
        return problems, max_diff


def _truncated(tf, ragged_ids, vectorizer):
    """Source ids truncated to the vectorizer's max_length (as the Python pipeline does) and
    right-padded to the longest row of the batch."""
    max_length = vectorizer.max_length
    if max_length is not None:
        ragged_ids = ragged_ids[:, :max_length] if vectorizer.truncation == "post" else ragged_ids[:, -max_length:]
    return padded_ids(ragged_ids, None, "post", "post")


def _detok_mode(pipeline):
    from stages.seq2seq import UNSPACED_LANGUAGES

    mode = pipeline.decoder.detokenize
    if mode == "auto":
        code = (pipeline.target_language or "").lower().replace("_", "-").split("-")[0]
        return "none" if code in UNSPACED_LANGUAGES else "treebank"
    return mode
