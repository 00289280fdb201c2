"""The tagging computation of an exported tagger, in TensorFlow ops.

``TaggerGraph(pipeline, module)(raw, normal)`` tags a ragged ``[sentence][token]`` tensor of
tokens (as written, and normalised) and returns tags and entities: everything the Python
pipeline does after tokenizing runs here: vocabulary and feature lookups (characters, word
shape, bigrams, jieba word boundaries, lexicon words covering each character: n-grams of the
tokens looked up in a hash table), splitting or truncating sentences longer than
``max_length``, the network, Viterbi decoding (CRF) or argmax (softmax), forward-backward
entity scores, conlleval entity decoding and re-tagging in the data's scheme.
"""

from __future__ import annotations

from stages.backend import require_tensorflow
from .tagging_features import GRAPH_FEATURES
from .text import GraphText, lookup_table, shift_right

_PREFIX_IDS = {"O": 0, "B": 1, "I": 2, "M": 2, "E": 3, "S": 4}


class TaggerGraph:
    """The tagging computation on ragged tokens, shared by both signatures.

    Args:
        pipeline: the fitted ``TaggingPipeline``.
        module: the ``tf.Module`` being exported (the tables are attached to it).
    """

    def __init__(self, pipeline, module):
        tf = self.tf = require_tensorflow("Exporting a SavedModel")
        self.model_stage = pipeline.stage("model")
        self.keras_model = self.model_stage.model_
        self.decoder = pipeline.stage("decoder")
        self.scheme = pipeline.data["scheme"]
        self.max_length = pipeline.stage("vectorizer").max_length
        self.truncate = pipeline.data["long_sentences"] == "truncate"
        self.text = GraphText(pipeline.stage("tokenizer"), need_offsets=True).attach(module)
        self.vocab = module.vocab_table = lookup_table(tf, pipeline.stage("vocabulary").tokens_, 1)
        self.features = [GRAPH_FEATURES[f.name](f, module) for f in self.model_stage.feature_families()]
        tags = self.decoder.tags_
        self.outside = tags.index("O")
        self.prefix_of = tf.constant([_PREFIX_IDS[t[0]] for t in tags], tf.int32)
        types = self.decoder.types_
        self.type_names = tf.constant(types, tf.string)
        self.type_of = tf.constant([types.index(t[2:]) if t != "O" else -1 for t in tags], tf.int32)
        self.crf = self.model_stage.crf if self.model_stage.uses_crf else None

    # -- normalisation and features ---------------------------------------------------------------
    def normalize_tokens(self, raw):
        """Each token normalised character by character (as ``Tokenizer.normalize``)."""
        return self.text.normalize(raw)[0]

    def _inputs(self, raw, normal):
        """Model inputs as ragged ``[sentence][token]`` tensors."""
        tf = self.tf
        inputs = {"token_ids": normal.with_flat_values(tf.cast(self.vocab.lookup(normal.flat_values), tf.int32))}
        for feature in self.features:
            inputs.update(feature(raw, normal))
        return inputs

    # -- the whole computation ----------------------------------------------------------------------
    def __call__(self, raw, normal=None):
        """Tag a ragged ``[sentence][token]`` tensor of tokens as written (``raw``) and
        normalised (``normal``, computed from ``raw`` when not given); returns a dict of tensors.

        Every token of the batch is one position of the flat ``index``; ``pos`` is its position
        in its sentence. The steps: cut sentences into pieces the network takes
        (``_pieces``), score and tag the kept tokens (``_token_scores``), find conlleval
        entities and their scores (``_entities``), re-tag in the data's scheme (``_scheme_tags``).
        """
        tf = self.tf
        if normal is None:
            normal = raw.with_flat_values(self.normalize_tokens(raw.flat_values))
        lengths = raw.row_lengths()
        rows = raw.value_rowids()
        n_tokens = tf.size(raw.flat_values, out_type=tf.int64)
        index = tf.range(n_tokens)
        pos = index - tf.gather(raw.row_starts(), rows)
        kept_index, kept_piece, in_piece, dense = self._pieces(self._inputs(raw, normal), lengths, rows, index, pos)
        tag, a_all, b_all, cumulative = self._token_scores(dense, kept_index, kept_piece, in_piece, n_tokens)
        start_at, end_at, entity_score, entity_type = self._entities(raw, index, pos, tag, a_all, b_all, cumulative)
        out_tag = self._scheme_tags(index, start_at, end_at, entity_type)
        entity_row = tf.gather(rows, start_at)
        row_start = tf.gather(raw.row_starts(), entity_row)
        nrows = raw.nrows()
        counts = tf.math.unsorted_segment_sum(tf.ones_like(entity_row, tf.int32), entity_row, nrows)

        def per_row(values, default):
            return tf.RaggedTensor.from_value_rowids(values, entity_row, nrows=nrows).to_tensor(default_value=default)

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

    def _pieces(self, inputs, lengths, rows, index, pos):
        """Long sentences as pieces of at most max_length tokens (or only the first piece).

        Returns the kept tokens' flat indices, their piece and position in it, and the model
        inputs as dense ``[piece][step]`` tensors."""
        tf = self.tf
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
            x = tf.RaggedTensor.from_value_rowids(values, kept_piece, nrows=n_pieces).to_tensor(default_value=0)
            # At least one piece, 2 time steps (the CRF's Viterbi stacks one back-pointer per
            # step after the first, and TensorFlow cannot stack an empty list) and 1 of every
            # other axis, so empty batches, all-empty texts and one-token sentences run. The
            # padding is masked, and no token's answer is gathered from it.
            pad = [[0, tf.maximum((2 if d == 1 else 1) - tf.shape(x)[d], 0)] for d in range(len(x.shape))]
            dense[name] = tf.pad(x, pad)
        piece_pos = tf.RaggedTensor.from_value_rowids(kept_index, kept_piece, nrows=n_pieces)
        in_piece = tf.ragged.range(piece_pos.row_lengths()).flat_values  # position of each kept token in its piece
        return kept_index, kept_piece, in_piece, dense

    def _token_scores(self, dense, kept_index, kept_piece, in_piece, n_tokens):
        """The network on the pieces, then each token's tag (Viterbi or argmax) and scores.

        Returns, for every token of the batch (truncated tails tagged O): the tag id; ``a`` and
        ``b``, the forward and backward log scores at the token (CRF) or its log probability
        and 0 (softmax); and the cumulative sum of each token's step score, from which a
        span's log probability is a difference."""
        tf = self.tf
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
            # Inside a piece a span adds transition + emission per token; where a span crosses
            # into the next piece it adds that piece boundary's backward and forward scores.
            pair = tf.gather_nd(trans, tf.stack([shift_right(tf, y, 0), y], axis=1)) + emit
            step = tf.where(tf.equal(in_piece, 0), shift_right(tf, b, 0.0) + a, pair)
        else:
            y = tf.gather_nd(tf.argmax(scores, axis=-1), gather_at)
            a = tf.math.log(tf.maximum(tf.gather_nd(scores, tf.concat([gather_at, y[:, None]], axis=1)), 1e-30))
            b = tf.zeros_like(a)
            step = a
        at_kept = kept_index[:, None]
        tag = tf.tensor_scatter_nd_update(tf.fill([n_tokens], tf.constant(self.outside, tf.int64)), at_kept, y)
        a_all = tf.scatter_nd(at_kept, a, [n_tokens])
        b_all = tf.scatter_nd(at_kept, b, [n_tokens])
        cumulative = tf.cumsum(tf.scatter_nd(at_kept, step, [n_tokens]))
        return tag, a_all, b_all, cumulative

    def _entities(self, raw, index, pos, tag, a_all, b_all, cumulative):
        """conlleval chunks over each sentence's tags: each entity's first and end token (flat
        indices), its probability and its type."""
        tf = self.tf
        tag32 = tf.cast(tag, tf.int32)
        prefix = tf.gather(self.prefix_of, tag32)
        type_ = tf.gather(self.type_of, tag32)
        first = tf.equal(pos, 0)
        prev_prefix = tf.where(first, 0, shift_right(tf, prefix, 0))
        prev_type = tf.where(first, -1, shift_right(tf, type_, -1))
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
        log_p = (tf.gather(a_all, start_at) + tf.gather(cumulative, end_at - 1) - tf.gather(cumulative, start_at)
                 + tf.gather(b_all, end_at - 1))
        entity_score = tf.exp(tf.minimum(log_p, 0.0))
        entity_type = tf.gather(self.type_names, tf.gather(type_, start_at))
        return start_at, end_at, entity_score, entity_type

    def _scheme_tags(self, index, start_at, end_at, entity_type):
        """Tags in the data's scheme, from the entities. Each token looks up the last entity
        starting at or before it; a sentinel entity (index n_entities) stands for "none"."""
        tf = self.tf
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
        return tf.where(inside, tf.strings.join([letter, "-", tf.gather(type_s, safe)]), "O")

    # -- raw text ----------------------------------------------------------------------------------

