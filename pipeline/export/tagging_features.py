"""The tagger's token feature families in TensorFlow ops: the graph counterpart of each
``stages.tagging.features`` family.

``GRAPH_FEATURES[name](feature, module)`` builds a family's lookup tables (attached to the
exported ``module``); calling it on the ragged ``[sentence][token]`` tokens (as written,
``raw``, and normalised, ``normal``) returns the family's model inputs as ragged tensors, equal
to what ``feature.arrays(sentence)`` gives in Python.
"""

from __future__ import annotations

from stages.backend import require_tensorflow
from stages.tagging.features import BIGRAM_EDGE
from stages.tagging.lexicon import lexicon_slots

from .text import lookup_table


class GraphFeature:
    """Base of the graph feature families."""

    def __init__(self, feature, module):
        self.tf = require_tensorflow("Exporting a SavedModel")
        self.feature = feature

    def __call__(self, raw, normal) -> dict:
        raise NotImplementedError


class GraphChars(GraphFeature):
    """``chars``: character ids of each word as written, the first and last halves of words
    longer than ``max_length``."""

    def __init__(self, feature, module):
        super().__init__(feature, module)
        self.table = module.char_table = lookup_table(self.tf, feature.chars_, 1)

    def __call__(self, raw, normal):
        tf = self.tf
        n = self.feature.max_length
        chars = tf.strings.unicode_split(raw.flat_values, "UTF-8")
        length = chars.row_lengths()[:, None]
        pos = tf.ragged.range(chars.row_lengths())
        keep = (pos < n // 2) | (pos >= length - (n - n // 2))
        chars = tf.ragged.boolean_mask(chars, keep)
        ids = chars.with_flat_values(tf.cast(self.table.lookup(chars.flat_values), tf.int32))
        return {"char_ids": tf.RaggedTensor.from_row_splits(ids, raw.row_splits)}


class GraphShape(GraphFeature):
    """``shape``: ``word_shape`` of each word as written, by Unicode-category regexes."""

    def __call__(self, raw, normal):
        tf = self.tf
        text = raw.flat_values

        def has(pattern):
            return tf.strings.regex_full_match(text, f"(?s).*(?:{pattern}).*")

        all_digits = tf.strings.regex_full_match(text, r"\p{Nd}+")
        title = tf.strings.regex_full_match(text, r"(?s)[\p{Lu}\p{Lt}][^\p{Lu}\p{Lt}]*")
        any_upper, any_lower = has(r"[\p{Lu}\p{Lt}]"), has(r"\p{Ll}")
        shape = tf.fill(tf.shape(text), tf.constant(6, tf.int32))
        for condition, value in ((tf.logical_not(any_upper), 5), (title, 4), (tf.logical_not(any_lower) & any_upper, 3),
                                 (tf.logical_not(has(r"\p{L}")), 7), (has(r"\p{Nd}"), 2), (all_digits, 1)):
            shape = tf.where(condition, tf.constant(value, tf.int32), shape)
        shape = tf.where(tf.equal(tf.strings.length(text), 0), tf.constant(7, tf.int32), shape)
        return {"case_ids": raw.with_flat_values(shape)}


class GraphBigrams(GraphFeature):
    """``bigrams``: ids of the bigrams left and right of each normalised token."""

    def __init__(self, feature, module):
        super().__init__(feature, module)
        self.table = module.bigram_table = lookup_table(self.tf, feature.bigrams_, 1)

    def __call__(self, raw, normal):
        tf = self.tf
        flat = normal.flat_values
        n_tokens = tf.size(flat, out_type=tf.int64)
        index = tf.range(n_tokens)
        rows = normal.value_rowids()
        first = tf.equal(index, tf.gather(normal.row_starts(), rows))
        last = tf.equal(index + 1, tf.gather(normal.row_limits(), rows))
        edge = tf.fill(tf.shape(flat), BIGRAM_EDGE)
        prev = tf.where(first, edge, tf.gather(flat, tf.maximum(index - 1, 0)))
        nxt = tf.where(last, edge, tf.gather(flat, tf.minimum(index + 1, tf.maximum(n_tokens - 1, 0))))
        left = self.table.lookup(tf.strings.join([prev, flat]))
        right = self.table.lookup(tf.strings.join([flat, nxt]))
        return {"bigram_ids": normal.with_flat_values(tf.cast(tf.stack([left, right], axis=1), tf.int32))}


class GraphWordBoundary(GraphFeature):
    """``word_boundary``: each token's first character's place (1 B, 2 M, 3 E, 4 S) in the
    jieba word around it, jieba (in the graph) cutting each sentence's tokens joined."""

    def __init__(self, feature, module):
        from .jieba_graph import GraphJieba

        super().__init__(feature, module)
        self.jieba = GraphJieba(feature.segmenter(), hmm=True, mode="accurate")
        for name, table in self.jieba.trackables().items():
            setattr(module, f"boundary_{name}", table)

    def __call__(self, raw, normal):
        tf = self.tf
        joined = tf.strings.reduce_join(normal, axis=1)
        _, starts, ends = self.jieba.segment(joined)
        code = tf.strings.unicode_decode(joined, "UTF-8")
        # Per character of each joined sentence: the start and end of its word.
        word_len = (ends - starts).flat_values
        first = tf.repeat(starts.flat_values, word_len)
        last = tf.repeat(ends.flat_values, word_len) - 1
        pos = tf.ragged.range(code.row_lengths()).flat_values
        place = tf.where(tf.equal(first, last), 4, tf.where(tf.equal(pos, first), 1, tf.where(tf.equal(pos, last), 3, 2)))
        token_len = tf.strings.length(normal.flat_values, unit="UTF8_CHAR")
        token_start = tf.cumsum(normal.with_flat_values(tf.cast(token_len, tf.int64)), axis=1, exclusive=True)
        at = tf.gather(code.row_starts(), normal.value_rowids()) + token_start.flat_values
        return {"boundary_ids": normal.with_flat_values(tf.cast(tf.gather(place, at), tf.int32))}


class GraphLexicon(GraphFeature):
    """``lexicon``: ``lexicon_matrix`` and ``lexicon_word_ids`` of every sentence, one row per
    token: the n-grams of the normalised tokens looked up in a hash table."""

    def __init__(self, feature, module):
        super().__init__(feature, module)
        tf = self.tf
        # word -> its id (1 without word vectors), anything else -> 0 (an empty lexicon holds
        # only "" -> 0).
        words = feature.lexicon_ or [""]
        values = feature.ids_of(words) if feature.uses_words and feature.lexicon_ else [1 if w else 0 for w in words]
        init = tf.lookup.KeyValueTensorInitializer(tf.constant(words, tf.string), tf.constant(values, tf.int64))
        self.table = module.lexicon_table = tf.lookup.StaticHashTable(init, default_value=0)

    def matrices(self, normal):
        """The 0/1 matrix and the word-id slots, flat (one row per token)."""
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

        max_length = self.feature.max_length
        columns, begin_ids = [], {}
        for length in range(2, max_length + 1):
            # The id of the lexicon word starting at each token (0: none), where it fits in
            # the token's sentence.
            word = tf.strings.join([tf.gather(flat, tf.minimum(index + k, last)) for k in range(length)])
            ids = tf.where(index + length <= row_limit, self.table.lookup(word), tf.zeros_like(index))
            begin_ids[length] = ids
            begin = tf.cast(ids > 0, tf.float32)
            inside = tf.zeros_like(begin)
            for k in range(1, length - 1):
                inside = tf.maximum(inside, earlier(begin, k))
            columns += [begin, inside, earlier(begin, length - 1)]
        slots = [earlier(begin_ids[length], offset) for _, length, offset in lexicon_slots(max_length)]
        return tf.stack(columns, axis=1), tf.cast(tf.stack(slots, axis=1), tf.int32)

    def __call__(self, raw, normal):
        flags, ids = self.matrices(normal)
        out = {"lexicon": normal.with_flat_values(flags)}
        if self.feature.uses_words:
            out["lexicon_ids"] = normal.with_flat_values(ids)
        return out


#: family name -> its graph counterpart.
GRAPH_FEATURES = {"chars": GraphChars, "shape": GraphShape, "bigrams": GraphBigrams,
                  "word_boundary": GraphWordBoundary, "lexicon": GraphLexicon}
