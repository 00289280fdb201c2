"""Export a fitted tagging pipeline as a TensorFlow SavedModel, decoding inside the graph.

The SavedModel needs only TensorFlow to run. It holds:

- ``serving_default``: ``tokens`` (2-D ``tf.string``, one row of tokens per sentence as written,
  padded with ``""``) -> ``tags`` ``[batch, time]`` (in ``data.scheme``, ``""`` on padding),
  ``lengths`` ``[batch]``, and the entities: ``num_entities`` ``[batch]``, ``entity_type``,
  ``entity_token_start``, ``entity_token_end`` (token indices, end exclusive) and
  ``entity_score`` ``[batch, max_entities]`` (padded with ``""`` / -1 / 0). Everything the
  Python pipeline does after tokenizing runs in the graph: per-character NFKC and
  lowercasing, vocabulary and feature lookups (characters, word shape, bigrams, lexicon words
  covering each character: n-grams of the tokens looked up in a hash table), splitting or
  truncating sentences longer than ``max_length``, the network, Viterbi decoding (CRF) or
  argmax (softmax), forward-backward entity scores, conlleval entity decoding and re-tagging in
  the data's scheme.
- ``serve_text`` (``char`` tokenizers without ``keep_alnum_runs``, and ``whitespace``
  tokenizers): raw ``text`` (1-D ``tf.string``) -> the same outputs plus ``tokens``,
  ``token_start`` / ``token_end`` and the entities' character offsets ``entity_start`` /
  ``entity_end`` into the raw text and ``entity_text``: for character-level Chinese, raw text in,
  entity spans out.
- assets: ``vocab.txt``, ``tags.txt``, the feature vocabularies, the lexicon and ``pipeline.yaml``.

After writing, the export loads the SavedModel back and compares it with the Python pipeline
(tags, entities, offsets and scores) on sample texts; any difference raises ``ExportError`` and
nothing is left at the destination. Models with ``word_boundary`` features cannot be exported
(jieba does not run in a TensorFlow graph).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile


from .backend import require_tensorflow
from .errors import NotFittedError
from .export import (
    DEFAULT_SAMPLES,
    ExportError,
    GraphTokenizer,
    save_module,
    space_code_points,
    track_variables,
    write_checked,
    write_config_asset,
)

TOKENS_SIGNATURE = "serving_default"
TEXT_SIGNATURE = "serve_text"
_PREFIX_IDS = {"O": 0, "B": 1, "I": 2, "M": 2, "E": 3, "S": 4}
_BIGRAM_EDGE = "<s>"


def export_tagging(pipeline, directory: str, samples=None, check: bool = True, overwrite: bool = False, atol: float = 5e-4) -> dict:
    """Write a fitted tagging pipeline as a SavedModel and check it against ``predict``.

    Args:
        pipeline: a fitted ``TaggingPipeline``.
        directory: the SavedModel folder (new or empty, or an earlier SavedModel with
            ``overwrite``).
        samples: texts for the golden check (default: built-in texts, texts made from the
            vocabulary and one longer than ``max_length``).
        check: load the SavedModel back and compare it with the Python pipeline.
        overwrite: replace an existing SavedModel at ``directory``.
        atol: largest allowed difference of an entity score.

    Returns:
        ``path``, ``signatures`` (name -> inputs, outputs), ``checked``, ``n_samples``,
        ``max_score_difference``, ``keras_backend``.

    Raises:
        ExportError: the pipeline cannot be exported, or the SavedModel disagrees with it.
    """
    require_tensorflow("Exporting a SavedModel")
    _check_exportable(pipeline)
    samples = _samples(pipeline, samples)
    return write_checked(
        directory,
        overwrite,
        write=lambda staging: _write(pipeline, staging),
        write_in_tensorflow=lambda staging: _write_in_tensorflow_process(pipeline, staging),
        golden=(lambda staging: golden_check(pipeline, staging, samples, atol=atol)) if check else None,
    )


def _check_exportable(pipeline):
    if getattr(pipeline, "task", None) != "tagging":
        raise ExportError(f"export_tagging exports tagging pipelines, not {getattr(pipeline, 'task', '?')!r} ones")
    try:
        pipeline.check_fitted()
    except NotFittedError as err:
        raise NotFittedError(f"Cannot export: {err}") from None
    if pipeline.stage("model").word_boundary:
        raise ExportError(
            "This tagger uses word_boundary features, which need jieba, and jieba cannot run inside a "
            "TensorFlow graph. Train with word_boundary: false to export a SavedModel."
        )


def _text_mode(tokenizer):
    from stages.tokenizers import CharTokenizer, WhitespaceTokenizer

    if isinstance(tokenizer, WhitespaceTokenizer):
        return "whitespace"
    if isinstance(tokenizer, CharTokenizer) and not tokenizer.keep_alnum_runs:
        return "char"
    return None


def _samples(pipeline, samples):
    if samples is not None:
        if isinstance(samples, str):
            raise TypeError("samples must be a list of texts, not a single str; wrap it in a list: [text]")
        samples = list(samples)
        if not samples or not all(isinstance(t, str) for t in samples):
            raise ValueError("samples must be a non-empty list of texts")
        return samples
    vocabulary = pipeline.stage("vocabulary")
    known = [t for t in vocabulary.tokens_[len(vocabulary.specials):] if t.strip()][:60]
    sep = "" if pipeline._unit == "char" or _text_mode(pipeline.stage("tokenizer")) == "char" else " "
    out = list(DEFAULT_SAMPLES)
    if known:
        limit = pipeline.stage("vectorizer").max_length or 40
        long_tokens = (known * (limit // len(known) + 2))[: limit + 9]
        out += [sep.join(known[:8]), sep.join(known[8:20]).upper(), sep.join(long_tokens), sep.join(reversed(long_tokens))]
    return out


# -- the graph ----------------------------------------------------------------------------------
def _lookup_table(tf, tokens, default):
    keys = [t for t in tokens if t != ""]
    ids = [i for i, t in enumerate(tokens) if t != ""]
    init = tf.lookup.KeyValueTensorInitializer(tf.constant(keys, tf.string), tf.constant(ids, tf.int64))
    return tf.lookup.StaticHashTable(init, default_value=default)


def _shape_ids(tf, raw):
    """``stages.taggers.word_shape`` of a 1-D string tensor, by Unicode-category regexes."""
    def has(pattern):
        return tf.strings.regex_full_match(raw, f"(?s).*(?:{pattern}).*")

    all_digits = tf.strings.regex_full_match(raw, r"\p{Nd}+")
    any_digit = has(r"\p{Nd}")
    any_letter = has(r"\p{L}")
    any_lower = has(r"\p{Ll}")
    any_upper = has(r"[\p{Lu}\p{Lt}]")
    title = tf.strings.regex_full_match(raw, r"(?s)[\p{Lu}\p{Lt}][^\p{Lu}\p{Lt}]*")
    shape = tf.fill(tf.shape(raw), tf.constant(6, tf.int32))
    for condition, value in ((tf.logical_not(any_upper), 5), (title, 4), (tf.logical_not(any_lower) & any_upper, 3),
                             (tf.logical_not(any_letter), 7), (any_digit, 2), (all_digits, 1)):
        shape = tf.where(condition, tf.constant(value, tf.int32), shape)
    return tf.where(tf.equal(tf.strings.length(raw), 0), tf.constant(7, tf.int32), shape)


class _Graph:
    """The tagging computation on ragged tokens, shared by both signatures."""

    def __init__(self, pipeline, module):
        tf = require_tensorflow("Exporting a SavedModel")
        from stages.tokenizers import WhitespaceTokenizer

        self.tf = tf
        tokenizer = pipeline.stage("tokenizer")
        self.model_stage = pipeline.stage("model")
        self.keras_model = self.model_stage.model_
        self.decoder = pipeline.stage("decoder")
        self.scheme = pipeline.data["scheme"]
        self.max_length = pipeline.stage("vectorizer").max_length
        self.truncate = pipeline.data["long_sentences"] == "truncate"
        # Only the normalisation of the tokenizer is used on tokens (the same for every tokenizer).
        self.normalizer = GraphTokenizer(WhitespaceTokenizer(lowercase=tokenizer.lowercase, nfkc=tokenizer.nfkc))
        for name, table in self.normalizer.trackables().items():
            if table is not None:
                setattr(module, name, table)
        self.spaces = tf.constant(space_code_points(), dtype=tf.int32)
        self.vocab = module.vocab_table = _lookup_table(tf, pipeline.stage("vocabulary").tokens_, 1)
        self.features = self.model_stage.feature_names()
        if "char_ids" in self.features:
            self.chars = module.char_table = _lookup_table(tf, self.model_stage.chars_, 1)
        if "bigram_ids" in self.features:
            self.bigrams = module.bigram_table = _lookup_table(tf, self.model_stage.bigrams_, 1)
        if "lexicon" in self.features:
            # word -> its id (1 without word vectors), anything else -> 0 (an empty lexicon
            # holds only "" -> 0).
            words = self.model_stage.lexicon_ or [""]
            if self.model_stage.uses_lexicon_words and self.model_stage.lexicon_:
                values = self.model_stage.lexicon_ids_of(words)
            else:
                values = [1 if w else 0 for w in words]
            init = tf.lookup.KeyValueTensorInitializer(tf.constant(words, tf.string), tf.constant(values, tf.int64))
            self.lexicon = module.lexicon_table = tf.lookup.StaticHashTable(init, default_value=0)
        tags = self.decoder.tags_
        self.outside = tags.index("O")
        self.prefix_of = tf.constant([_PREFIX_IDS[t[0]] for t in tags], tf.int32)
        types = self.decoder.types_
        self.type_names = tf.constant(types, tf.string)
        self.type_of = tf.constant([types.index(t[2:]) if t != "O" else -1 for t in tags], tf.int32)
        self.crf = self.model_stage.crf if self.model_stage.uses_crf else None

    # -- normalisation and features ---------------------------------------------------------------
    def normalize_chars(self, chars):
        """Per-character normalisation of a 1-D tensor of single characters."""
        return self.normalizer.normalize(chars)

    def normalize_tokens(self, raw):
        """Each token's characters normalised one by one and joined again (as the pipeline)."""
        tf = self.tf
        chars = tf.strings.unicode_split(raw, "UTF-8")
        normal = chars.with_flat_values(self.normalize_chars(chars.flat_values))
        return tf.strings.reduce_join(normal, axis=-1)

    def _inputs(self, raw, normal):
        """Model inputs as ragged ``[sentence][token]`` tensors."""
        tf = self.tf
        inputs = {"token_ids": normal.with_flat_values(tf.cast(self.vocab.lookup(normal.flat_values), tf.int32))}
        if "char_ids" in self.features:
            n = self.model_stage.char_max_length
            chars = tf.strings.unicode_split(raw.flat_values, "UTF-8")
            length = chars.row_lengths()[:, None]
            pos = tf.ragged.range(chars.row_lengths())
            keep = (pos < n // 2) | (pos >= length - (n - n // 2))
            chars = tf.ragged.boolean_mask(chars, keep)
            ids = chars.with_flat_values(tf.cast(self.chars.lookup(chars.flat_values), tf.int32))
            inputs["char_ids"] = tf.RaggedTensor.from_row_splits(ids, raw.row_splits)
        if "case_ids" in self.features:
            inputs["case_ids"] = raw.with_flat_values(_shape_ids(tf, raw.flat_values))
        if "bigram_ids" in self.features:
            flat = normal.flat_values
            n_tokens = tf.size(flat, out_type=tf.int64)
            index = tf.range(n_tokens)
            rows = normal.value_rowids()
            first = tf.equal(index, tf.gather(normal.row_starts(), rows))
            last = tf.equal(index + 1, tf.gather(normal.row_limits(), rows))
            edge = tf.fill(tf.shape(flat), _BIGRAM_EDGE)
            prev = tf.where(first, edge, tf.gather(flat, tf.maximum(index - 1, 0)))
            nxt = tf.where(last, edge, tf.gather(flat, tf.minimum(index + 1, tf.maximum(n_tokens - 1, 0))))
            left = self.bigrams.lookup(tf.strings.join([prev, flat]))
            right = self.bigrams.lookup(tf.strings.join([flat, nxt]))
            inputs["bigram_ids"] = normal.with_flat_values(tf.cast(tf.stack([left, right], axis=1), tf.int32))
        if "lexicon" in self.features:
            flags, ids = self._lexicon_features(normal)
            inputs["lexicon"] = normal.with_flat_values(flags)
            if "lexicon_ids" in self.features:
                inputs["lexicon_ids"] = normal.with_flat_values(ids)
        return inputs

    def _lexicon_features(self, normal):
        """``stages.taggers.lexicon_matrix`` and ``lexicon_word_ids`` of every sentence, one
        row per token."""
        from stages.taggers import lexicon_slots

        tf = self.tf
        flat = normal.flat_values
        n_tokens = tf.size(flat, out_type=tf.int64)
        index = tf.range(n_tokens)
        rows = normal.value_rowids()
        row_start = tf.gather(normal.row_starts(), rows)
        row_limit = tf.gather(normal.row_limits(), rows)
        last = tf.maximum(n_tokens - 1, 0)

        def earlier(values, k):
            # values[j - k] where token j - k is in j's sentence, else 0.
            at = index - k
            return tf.where(at >= row_start, tf.gather(values, tf.maximum(at, 0)), tf.zeros_like(values))

        max_length = self.model_stage.lexicon_max_length
        columns, begin_ids = [], {}
        for length in range(2, max_length + 1):
            # The id of the lexicon word starting at each token (0: none), where it fits in
            # the token's sentence.
            word = tf.strings.join([tf.gather(flat, tf.minimum(index + k, last)) for k in range(length)])
            ids = tf.where(index + length <= row_limit, self.lexicon.lookup(word), tf.zeros_like(index))
            begin_ids[length] = ids
            begin = tf.cast(ids > 0, tf.float32)
            inside = tf.zeros_like(begin)
            for k in range(1, length - 1):
                inside = tf.maximum(inside, earlier(begin, k))
            columns += [begin, inside, earlier(begin, length - 1)]
        slots = [earlier(begin_ids[length], offset) for _, length, offset in lexicon_slots(max_length)]
        return tf.stack(columns, axis=1), tf.cast(tf.stack(slots, axis=1), tf.int32)

    # -- the whole computation ----------------------------------------------------------------------
    def __call__(self, raw):
        """Tag a ragged ``[sentence][token]`` tensor of raw tokens; returns a dict of tensors."""
        tf = self.tf
        normal = raw.with_flat_values(self.normalize_tokens(raw.flat_values))
        inputs = self._inputs(raw, normal)
        lengths = raw.row_lengths()
        rows = raw.value_rowids()
        n_tokens = tf.size(raw.flat_values, out_type=tf.int64)
        index = tf.range(n_tokens)
        pos = index - tf.gather(raw.row_starts(), rows)

        # Long sentences: pieces of at most max_length tokens (or only the first piece).
        if self.max_length is None:
            piece_in_row = tf.zeros_like(pos)
            kept = tf.ones_like(pos, tf.bool)
            pieces_per_row = tf.cast(lengths > 0, tf.int64)
        else:
            limit = tf.constant(self.max_length, tf.int64)
            piece_in_row = pos // limit
            if self.truncate:
                kept = pos < limit
                pieces_per_row = tf.cast(lengths > 0, tf.int64)
            else:
                kept = tf.ones_like(pos, tf.bool)
                pieces_per_row = (lengths + limit - 1) // limit
        first_piece = tf.cumsum(pieces_per_row, exclusive=True)
        piece = tf.gather(first_piece, rows) + piece_in_row
        n_pieces = tf.reduce_sum(pieces_per_row)
        kept_index = tf.boolean_mask(index, kept)
        kept_piece = tf.boolean_mask(piece, kept)

        dense = {}
        for name, value in inputs.items():
            values = tf.gather(value.values, kept_index)  # one row per token (chars stay ragged)
            ragged = tf.RaggedTensor.from_value_rowids(values, kept_piece, nrows=n_pieces)
            dense[name] = ragged.to_tensor(default_value=0)
        for name in dense:  # every axis at least 1 long, so an empty batch still runs
            x = dense[name]
            pad = [[0, 0]] + [[0, tf.maximum(1 - tf.shape(x)[d], 0)] for d in range(1, len(x.shape))]
            dense[name] = tf.pad(x, pad)
        piece_pos = tf.RaggedTensor.from_value_rowids(kept_index, kept_piece, nrows=n_pieces)
        in_piece = tf.ragged.range(piece_pos.row_lengths()).flat_values  # position of each kept token in its piece
        gather_at = tf.stack([kept_piece, in_piece], axis=1)

        scores = tf.cast(self.keras_model(dense, training=False), tf.float32)
        mask = tf.not_equal(dense["token_ids"], 0)
        if self.crf is not None:
            tags, _ = self.crf.viterbi(scores, mask)
            log_alpha, log_beta, log_z = self.crf.forward_backward(scores, mask)
            trans = tf.cast(self.crf.effective_transitions()[0], tf.float32)
            y = tf.cast(tf.gather_nd(tags, gather_at), tf.int64)
            emit = tf.gather_nd(scores, tf.concat([gather_at, y[:, None]], axis=1))
            a = tf.gather_nd(log_alpha, tf.concat([gather_at, y[:, None]], axis=1)) - tf.gather(log_z, kept_piece)
            b = tf.gather_nd(log_beta, tf.concat([gather_at, y[:, None]], axis=1))
        else:
            y = tf.gather_nd(tf.argmax(scores, axis=-1), gather_at)
            logp = tf.math.log(tf.maximum(tf.gather_nd(scores, tf.concat([gather_at, y[:, None]], axis=1)), 1e-30))
            a, b = logp, tf.zeros_like(logp)

        # Back to every token of every sentence (truncated tails are tagged O).
        tag = tf.tensor_scatter_nd_update(tf.fill([n_tokens], tf.constant(self.outside, tf.int64)), kept_index[:, None], y)
        a_all = tf.scatter_nd(kept_index[:, None], a, [n_tokens])
        b_all = tf.scatter_nd(kept_index[:, None], b, [n_tokens])
        if self.crf is not None:
            # Inside a piece a span adds transition + emission per token; where a span crosses
            # into the next piece it adds that piece boundary's backward and forward scores.
            prev_y = tf.concat([[0], y[:-1]], axis=0)
            pair = tf.gather_nd(trans, tf.stack([prev_y, y], axis=1)) + emit
            at_piece_start = tf.equal(in_piece, 0)
            prev_b = tf.concat([[0.0], b[:-1]], axis=0)
            step = tf.where(at_piece_start, prev_b + a, pair)
        else:
            step = a
        step_all = tf.scatter_nd(kept_index[:, None], step, [n_tokens])
        cumulative = tf.cumsum(step_all)

        # conlleval chunks over each sentence's tags.
        tag32 = tf.cast(tag, tf.int32)
        prefix = tf.gather(self.prefix_of, tag32)
        type_ = tf.gather(self.type_of, tag32)
        first = tf.equal(pos, 0)
        prev_prefix = tf.where(first, 0, tf.concat([[0], prefix[:-1]], axis=0))
        prev_type = tf.where(first, -1, tf.concat([[-1], type_[:-1]], axis=0))
        o, bb, ii, ee, ss = 0, 1, 2, 3, 4
        ends_before = ((prev_prefix == ee) | (prev_prefix == ss)
                       | (((prev_prefix == bb) | (prev_prefix == ii)) & ((prefix == bb) | (prefix == ss) | (prefix == o)))
                       | ((prev_prefix != o) & (prev_type != type_)))
        starts = ((prefix == bb) | (prefix == ss)
                  | (((prefix == ii) | (prefix == ee)) & ((prev_prefix == ee) | (prev_prefix == ss) | (prev_prefix == o)))
                  | ((prefix != o) & (prev_type != type_)))
        start_at = tf.boolean_mask(index, starts)
        limits = tf.sort(tf.concat([tf.boolean_mask(index, ends_before & ~first), raw.row_limits()], axis=0))
        end_at = tf.gather(limits, tf.searchsorted(limits, start_at, side="right", out_type=tf.int64))
        entity_row = tf.gather(rows, start_at)
        row_start = tf.gather(raw.row_starts(), entity_row)
        log_p = (tf.gather(a_all, start_at) + tf.gather(cumulative, end_at - 1) - tf.gather(cumulative, start_at)
                 + tf.gather(b_all, end_at - 1))
        entity_score = tf.exp(tf.minimum(log_p, 0.0))
        entity_type = tf.gather(self.type_names, tf.gather(type_, start_at))

        # Tags in the data's scheme, from the entities. Each token looks up the last entity
        # starting at or before it; a sentinel entity (index n_entities) stands for "none".
        n_entities = tf.size(start_at, out_type=tf.int64)
        start_s = tf.concat([start_at, [-1]], axis=0)
        end_s = tf.concat([end_at, [0]], axis=0)
        type_s = tf.concat([entity_type, [""]], axis=0)
        which = tf.searchsorted(start_at, index, side="right", out_type=tf.int64) - 1
        safe = tf.where(which >= 0, which, n_entities)
        inside = index < tf.gather(end_s, safe)
        is_first = tf.equal(index, tf.gather(start_s, safe))
        is_last = inside & tf.equal(index + 1, tf.gather(end_s, safe))
        if self.scheme == "bio":
            letter = tf.where(is_first, "B", "I")
        elif self.scheme == "iob1":
            prev_entity = tf.where(which >= 1, which - 1, n_entities)
            touching = tf.equal(tf.gather(end_s, prev_entity), tf.gather(start_s, safe)) & tf.equal(
                tf.gather(type_s, prev_entity), tf.gather(type_s, safe))
            letter = tf.where(is_first & touching, "B", "I")
        else:
            inner = "M" if self.scheme == "bmes" else "I"
            letter = tf.where(is_first & is_last, "S", tf.where(is_first, "B", tf.where(is_last, "E", inner)))
        out_tag = tf.where(inside, tf.strings.join([letter, "-", tf.gather(type_s, safe)]), "O")
        nrows = raw.nrows()
        counts = tf.math.unsorted_segment_sum(tf.ones_like(entity_row, tf.int32), entity_row, nrows)

        def per_row(values, default):
            return tf.RaggedTensor.from_value_rowids(values, entity_row, nrows=raw.nrows()).to_tensor(default_value=default)

        return {
            "tags": raw.with_flat_values(out_tag).to_tensor(default_value=""),
            "lengths": tf.cast(lengths, tf.int32),
            "num_entities": counts,
            "entity_type": per_row(entity_type, ""),
            "entity_token_start": per_row(tf.cast(start_at - row_start, tf.int32), -1),
            "entity_token_end": per_row(tf.cast(end_at - row_start, tf.int32), -1),
            "entity_score": per_row(entity_score, 0.0),
            "_entity_row": entity_row,
            "_entity_start": start_at,
            "_entity_end": end_at,
        }

    # -- raw text ----------------------------------------------------------------------------------
    def split_text(self, text, mode):
        """Raw texts -> ragged raw tokens with their character offsets, as ``tokenize_with_offsets``."""
        tf = self.tf
        text = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace")
        chars = tf.strings.unicode_split(text, "UTF-8")  # [text][raw char]
        raw_index = tf.ragged.range(chars.row_lengths()).flat_values
        normal = tf.strings.unicode_split(self.normalize_chars(chars.flat_values), "UTF-8")  # [raw char][normal char]
        origin = tf.repeat(raw_index, normal.row_lengths())
        text_row = tf.repeat(chars.value_rowids(), normal.row_lengths())
        code = tf.strings.unicode_decode(normal.flat_values, "UTF-8").flat_values
        is_space = tf.reduce_any(tf.equal(code[:, None], self.spaces[None, :]), axis=1)
        if mode == "char":
            starts = tf.logical_not(is_space)
        else:
            row_first = tf.concat([[True], tf.not_equal(text_row[1:], text_row[:-1])], axis=0)
            prev_space = tf.concat([[True], is_space[:-1]], axis=0)
            starts = tf.logical_not(is_space) & (prev_space | row_first)
        kept = tf.logical_not(is_space)
        token_of = tf.cumsum(tf.cast(starts, tf.int64)) - 1
        n_tok = tf.reduce_sum(tf.cast(starts, tf.int64))
        k_token = tf.boolean_mask(token_of, kept)
        start = tf.math.unsorted_segment_min(tf.boolean_mask(origin, kept), k_token, n_tok)
        end = tf.math.unsorted_segment_max(tf.boolean_mask(origin, kept), k_token, n_tok) + 1
        token_row = tf.boolean_mask(text_row, starts)
        raw_tokens = tf.strings.substr(tf.gather(text, token_row), tf.cast(start, tf.int32), tf.cast(end - start, tf.int32), unit="UTF8_CHAR")
        nrows = tf.shape(text, out_type=tf.int64)[0]
        ragged = tf.RaggedTensor.from_value_rowids(raw_tokens, token_row, nrows=nrows)
        return text, ragged, start, end


def _build_module(pipeline, asset_dir):
    tf = require_tensorflow("Exporting a SavedModel")
    module = tf.Module(name="keras_text_pipeline_tagger")
    graph = _Graph(pipeline, module)
    module.tag_names = tf.Variable(pipeline.stage("decoder").tags_, dtype=tf.string, trainable=False, name="tag_names")
    for name in os.listdir(asset_dir):
        setattr(module, "asset_" + name.replace(".", "_"), tf.saved_model.Asset(os.path.join(asset_dir, name)))

    def public(out):
        return {k: v for k, v in out.items() if not k.startswith("_")}

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.string, name="tokens")], autograph=False)
    def serve_tokens(tokens):
        raw = tf.ragged.boolean_mask(tokens, tf.not_equal(tokens, ""))
        return public(graph(raw))

    module.serve_tokens = serve_tokens
    signatures = {TOKENS_SIGNATURE: serve_tokens.get_concrete_function()}
    mode = _text_mode(pipeline.stage("tokenizer"))
    if mode is not None:

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")], autograph=False)
        def serve_text(text):
            text, raw, start, end = graph.split_text(text, mode)
            out = graph(raw)
            token_start = raw.with_flat_values(tf.cast(start, tf.int32))
            token_end = raw.with_flat_values(tf.cast(end, tf.int32))
            e_start = tf.gather(start, out["_entity_start"])
            e_end = tf.gather(end, out["_entity_end"] - 1)
            e_text = tf.strings.substr(tf.gather(text, out["_entity_row"]), tf.cast(e_start, tf.int32),
                                       tf.cast(e_end - e_start, tf.int32), unit="UTF8_CHAR")

            def per_row(values, default):
                return tf.RaggedTensor.from_value_rowids(values, out["_entity_row"], nrows=raw.nrows()).to_tensor(default_value=default)

            result = public(out)
            result.update(
                tokens=raw.to_tensor(default_value=""),
                token_start=token_start.to_tensor(default_value=-1),
                token_end=token_end.to_tensor(default_value=-1),
                entity_start=per_row(tf.cast(e_start, tf.int32), -1),
                entity_end=per_row(tf.cast(e_end, tf.int32), -1),
                entity_text=per_row(e_text, ""),
            )
            return result

        module.serve_text = serve_text
        signatures[TEXT_SIGNATURE] = serve_text.get_concrete_function()
    track_variables(module, signatures, exclude=(module.tag_names,))
    return module, signatures


def _write(pipeline, staging) -> dict:
    with tempfile.TemporaryDirectory() as asset_dir:
        pipeline.stage("vocabulary").save_assets(asset_dir)
        pipeline.stage("decoder").save_assets(asset_dir)
        model = pipeline.stage("model")
        assets = {"chars.txt": model.chars_, "bigrams.txt": model.bigrams_, "lexicon.txt": model.lexicon_,
                  "lexicon_words.txt": model.lexicon_words_, "lexicon_classes.txt": model.lexicon_classes_}
        for name, items in assets.items():
            if items is not None:
                with open(os.path.join(asset_dir, name), "w", encoding="utf-8", newline="\n") as f:
                    f.write("\n".join(items) + "\n")
        write_config_asset(pipeline, asset_dir)
        module, signatures = _build_module(pipeline, asset_dir)
        return save_module(module, signatures, staging)


def _write_in_tensorflow_process(pipeline, staging) -> dict:
    """Save the pipeline and write the SavedModel from a child process with the TensorFlow backend."""
    with tempfile.TemporaryDirectory() as tmp:
        saved = os.path.join(tmp, "pipeline")
        pipeline.save(saved)
        request = os.path.join(tmp, "request.json")
        result = os.path.join(tmp, "result.json")
        with open(request, "w", encoding="utf-8") as f:
            json.dump({"pipeline": saved, "staging": staging, "result": result}, f)
        env = dict(os.environ, KERAS_BACKEND="tensorflow")
        proc = subprocess.run([sys.executable, "-m", "pipeline.tagging_export", request], env=env, capture_output=True, text=True)
        if proc.returncode != 0 or not os.path.isfile(result):
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise ExportError(f"Writing the SavedModel in a TensorFlow-backend child process failed:\n{tail}")
        with open(result, encoding="utf-8") as f:
            return json.load(f)


def _child_main(request_path):
    with open(request_path, encoding="utf-8") as f:
        request = json.load(f)
    from . import Pipeline

    report = _write(Pipeline.load(request["pipeline"]), request["staging"])
    with open(request["result"], "w", encoding="utf-8") as f:
        json.dump(report, f)


# -- golden check -------------------------------------------------------------------------------
def golden_check(pipeline, directory, samples, atol: float = 5e-4) -> dict:
    """Compare a tagging SavedModel with the Python pipeline on ``samples``.

    ``serving_default`` gets each sample's tokens as the pipeline's tokenizer wrote them (the
    reference is the pipeline tagging exactly those tokens); ``serve_text``, if present, gets the
    raw texts. Tags, entity types, token and character offsets, texts and scores must agree.

    Raises:
        ExportError: listing the first differing samples.
    """
    tf = require_tensorflow("Checking a SavedModel")
    from .tag_schemes import convert
    from .tagging import TokenizedText

    loaded = tf.saved_model.load(directory)
    sentences = pipeline.tokenize(samples)
    raw_rows = [s.raw for s in sentences]
    # The reference for the token signature: exactly these tokens, normalised one by one.
    tokenizer = pipeline.stage("tokenizer")
    as_given = []
    for raw in raw_rows:
        spans, pos = [], 0
        for tok in raw:
            spans.append((pos, pos + len(tok)))
            pos += len(tok) + 1
        as_given.append(TokenizedText(["".join(tokenizer.normalize(c) for c in tok) for tok in raw], " ".join(raw), spans))
    problems, max_diff = [], 0.0
    runs = []
    width = max([len(r) for r in raw_rows] + [1])
    padded = [list(r) + [""] * (width - len(r)) for r in raw_rows]
    runs.append((TOKENS_SIGNATURE, {"tokens": tf.constant(padded, tf.string, shape=[len(samples), width])},
                 pipeline.predict_tokens(as_given)))
    if TEXT_SIGNATURE in loaded.signatures:
        runs.append((TEXT_SIGNATURE, {"text": tf.constant(samples, tf.string, shape=[len(samples)])},
                     pipeline.predict_tokens(sentences)))
    decoder, scheme = pipeline.stage("decoder"), pipeline.data["scheme"]
    for name, inputs, answers in runs:
        out = {k: v.numpy() for k, v in loaded.signatures[name](**inputs).items()}
        results = pipeline._run(sentences if name == TEXT_SIGNATURE else as_given)
        for i, want in enumerate(answers):
            n = int(out["lengths"][i])
            got_tags = [t.decode("utf-8") for t in out["tags"][i][:n]]
            want_tags = convert(decoder.tags_of(results[i]["tag_ids"]), decoder.scheme, scheme)
            if got_tags != want_tags:
                problems.append((i, f"{name}: tags {got_tags} != {want_tags} (Python)"))
            if name == TEXT_SIGNATURE:
                got_tokens = [t.decode("utf-8") for t in out["tokens"][i][:n]]
                want_tokens = sentences[i].raw
                if got_tokens != want_tokens:
                    problems.append((i, f"{name}: tokens {got_tokens} != {want_tokens} (Python)"))
            m = int(out["num_entities"][i])
            got = [(out["entity_type"][i][j].decode("utf-8"), int(out["entity_token_start"][i][j]), int(out["entity_token_end"][i][j]))
                   for j in range(m)]
            expected = [(e["type"], e["token_start"], e["token_end"]) for e in want["entities"]]
            if got != expected:
                problems.append((i, f"{name}: entities {got} != {expected} (Python)"))
                continue
            for j, e in enumerate(want["entities"]):
                diff = abs(float(out["entity_score"][i][j]) - e["score"])
                max_diff = max(max_diff, diff)
                if diff > atol:
                    problems.append((i, f"{name}: entity {j} score {float(out['entity_score'][i][j]):.6g} != {e['score']:.6g}"))
                if name == TEXT_SIGNATURE:
                    span = (int(out["entity_start"][i][j]), int(out["entity_end"][i][j]), out["entity_text"][i][j].decode("utf-8"))
                    if span != (e["start"], e["end"], e["text"]):
                        problems.append((i, f"{name}: entity {j} at {span} != {(e['start'], e['end'], e['text'])}"))
    if problems:
        problems.sort(key=lambda p: p[0])
        bad = sorted({i for i, _ in problems})
        lines = [f"  [{i}] {samples[i][:50]!r}: {text[:300]}" for i, text in problems[:8]]
        raise ExportError(
            f"The exported SavedModel disagrees with the Python pipeline on {len(bad)} of {len(samples)} sample texts. "
            "First differences:\n" + "\n".join(lines)
        )
    return {"n_samples": len(samples), "max_score_difference": max_diff}


if __name__ == "__main__":
    _child_main(sys.argv[1])
