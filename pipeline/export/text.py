"""A tokenizer stage in TensorFlow ops: raw text in, tokens and their character offsets out.

``GraphText(tokenizer)`` reproduces, for a 1-D ``tf.string`` tensor of raw texts, exactly what
the Python tokenizer gives: the normalised tokens of ``Tokenizer.transform`` and the raw
character offsets of ``Tokenizer.spans`` (which the tagger's ``tokenize_with_offsets`` uses).

- Bytes that are not UTF-8 become U+FFFD, as Python's ``bytes.decode("utf-8", "replace")``
  does (the Python API only ever sees ``str``).
- Normalisation is the per-character table of ``stages.normalization``, looked up per code
  point, so the graph and Python agree by construction and every normalised character knows
  the raw character it came from.
- Splitting: ``char`` and ``whitespace`` here; ``jieba`` in ``jieba_graph``; ``nltk`` in
  ``nltk_graph``. A tokenizer option that cannot run in the graph raises ``UnsupportedInGraph``
  (an ``ExportError``) naming it.

Everything is linear in the length of the text (no per-token copies of a whole row).
"""

from __future__ import annotations

from stages.normalization import char_map, space_code_points

from stages.backend import require_tensorflow
from ..errors import ExportError


def shift_right(tf, x, fill):
    """``x`` moved one place right along its only axis, ``fill`` first (empty stays empty)."""
    return tf.concat([tf.fill([tf.minimum(tf.size(x), 1)], tf.constant(fill, x.dtype)), x[:-1]], axis=0)


def lookup_table(tf, tokens, default: int):
    """A string -> id ``StaticHashTable``: ``tokens[i]`` -> i (the empty token is left out)."""
    keys = [t for t in tokens if t != ""]
    ids = [i for i, t in enumerate(tokens) if t != ""]
    init = tf.lookup.KeyValueTensorInitializer(tf.constant(keys, tf.string), tf.constant(ids, tf.int64))
    return tf.lookup.StaticHashTable(init, default_value=default)


class GraphText:
    """Normalisation, splitting and offsets of a tokenizer stage, in TensorFlow ops.

    Args:
        tokenizer: a fitted tokenizer stage (``char``, ``whitespace``, ``jieba`` or ``nltk``).
        need_offsets: the caller wants raw tokens and offsets (taggers), so splitters that
            produce overlapping tokens (jieba ``search`` mode) are refused.

    Example:
        >>> from stages import CharTokenizer
        >>> g = GraphText(CharTokenizer(lowercase=True))  # doctest: +SKIP
        >>> g.tokenize(tf.constant(["ＡＢ c"])).to_list()  # doctest: +SKIP
        [[b'a', b'b', b'c']]
    """

    def __init__(self, tokenizer, need_offsets: bool = False):
        self.tf = tf = require_tensorflow("Exporting a SavedModel")
        self.tokenizer = tokenizer
        table = char_map(bool(tokenizer.nfkc), bool(tokenizer.lowercase))
        self.normal_table = None
        if table:
            init = tf.lookup.KeyValueTensorInitializer(
                tf.constant(list(table), tf.int64), tf.constant(list(table.values()), tf.string)
            )
            # No character maps to "" (char_map's contract), so "" means "unchanged".
            self.normal_table = tf.lookup.StaticHashTable(init, default_value="")
        self.spaces = tf.constant(space_code_points(), tf.int32)
        self.splitter = _splitter(tokenizer, need_offsets)

    def trackables(self) -> dict:
        """The lookup tables, to attach to the exported module so they are saved."""
        found = {"normal_table": self.normal_table}
        found.update(getattr(self.splitter, "trackables", dict)())
        return {k: v for k, v in found.items() if v is not None}

    def attach(self, module) -> "GraphText":
        """Attach the tables to ``module`` (so ``tf.saved_model.save`` keeps them); returns self."""
        for name, table in self.trackables().items():
            setattr(module, f"text_{name}", table)
        return self

    # -- pieces ------------------------------------------------------------------------------
    def _is_space(self, code_points):
        tf = self.tf
        return tf.reduce_any(tf.equal(code_points[:, None], self.spaces[None, :]), axis=1)

    def normalize(self, text):
        """Normalised texts (1-D) and, per normalised character, the index of its raw character."""
        tf = self.tf
        if self.normal_table is None:
            return text, None
        chars = tf.strings.unicode_split(text, "UTF-8")  # [text][raw char]
        code = tf.strings.unicode_decode(text, "UTF-8")
        found = self.normal_table.lookup(tf.cast(code.flat_values, tf.int64))
        pieces = tf.where(tf.equal(found, ""), chars.flat_values, found)
        normal = tf.strings.reduce_join(chars.with_flat_values(pieces), axis=1)
        per_piece = tf.strings.length(pieces, unit="UTF8_CHAR")
        raw_index = tf.ragged.range(chars.row_lengths()).flat_values
        origin = tf.RaggedTensor.from_row_lengths(
            tf.repeat(raw_index, per_piece),
            tf.math.unsorted_segment_sum(tf.cast(per_piece, tf.int64), chars.value_rowids(), chars.nrows()),
        )
        return normal, origin

    def substrings(self, text, starts, ends):
        """``text[row][start:end]`` in code points, for ragged ``starts`` / ``ends`` ``[row][token]``,
        linear in the text length (byte offsets into one joined string)."""
        tf = self.tf
        code, byte_at = tf.strings.unicode_decode_with_offsets(text, "UTF-8")
        row_bytes = tf.strings.length(text)
        # Byte offset of every code point position 0..n of every row (n: the row's end).
        row_end = tf.RaggedTensor.from_tensor(tf.expand_dims(tf.cast(row_bytes, tf.int64), 1))
        positions = tf.concat([byte_at, row_end], axis=1)
        row_start = tf.cumsum(tf.cast(row_bytes, tf.int64), exclusive=True)
        rows = starts.value_rowids()
        flat_positions = positions.flat_values
        base = tf.gather(positions.row_starts(), rows)
        b0 = tf.gather(flat_positions, base + starts.flat_values)
        b1 = tf.gather(flat_positions, base + ends.flat_values)
        joined = tf.strings.reduce_join(text)
        pieces = tf.strings.substr(joined, tf.gather(row_start, rows) + b0, b1 - b0, unit="BYTE")
        return starts.with_flat_values(pieces)

    # -- the public calls ----------------------------------------------------------------------
    def segment(self, text, with_offsets: bool = True) -> dict:
        """Raw texts -> ``text`` (after UTF-8 repair), ``tokens`` (normalised, as
        ``Tokenizer.transform``) and, ``with_offsets``, ``raw`` (each token as written in the
        raw text), ``start`` / ``end`` (raw character offsets, end exclusive)."""
        tf = self.tf
        text = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)
        normal, origin = self.normalize(text)
        tokens, starts, ends = self.splitter.split(self, normal)
        out = {"text": text, "tokens": tokens}
        if not with_offsets:
            return out
        if origin is not None:
            rows = starts.value_rowids()
            base = tf.gather(origin.row_starts(), rows)
            flat = origin.flat_values
            raw_start = tf.gather(flat, base + starts.flat_values)
            raw_end = tf.gather(flat, base + ends.flat_values - 1) + 1
            starts, ends = starts.with_flat_values(raw_start), ends.with_flat_values(raw_end)
        out.update(raw=self.substrings(text, starts, ends), start=starts, end=ends)
        return out

    def tokenize(self, text):
        """Raw texts -> ragged normalised tokens (``Tokenizer.transform`` of the texts)."""
        return self.segment(text, with_offsets=False)["tokens"]


# -- splitters ---------------------------------------------------------------------------------
def _splitter(tokenizer, need_offsets):
    from stages.tokenizers import CharTokenizer, JiebaTokenizer, NLTKTokenizer, WhitespaceTokenizer

    if isinstance(tokenizer, WhitespaceTokenizer):
        return _Runs("whitespace")
    if isinstance(tokenizer, CharTokenizer):
        return _Runs("alnum" if tokenizer.keep_alnum_runs else "char")
    if isinstance(tokenizer, JiebaTokenizer):
        return _Jieba(tokenizer, need_offsets)
    if isinstance(tokenizer, NLTKTokenizer):
        return _NLTK(tokenizer)
    raise ExportError(
        f"The tokenizer {type(tokenizer).__name__} has no TensorFlow counterpart, so the SavedModel cannot "
        "take raw text; use a char, whitespace, jieba or nltk tokenizer to export"
    )


class _Runs:
    """``char`` (one token per non-space character), ``alnum`` (runs of ASCII letters and digits,
    every other non-space character alone) and ``whitespace`` (runs of non-space characters)."""

    def __init__(self, mode):
        self.mode = mode

    def split(self, graph, normal):
        tf = graph.tf
        code = tf.strings.unicode_decode(normal, "UTF-8")
        cp = code.flat_values
        is_space = graph._is_space(cp)
        n = tf.size(cp, out_type=tf.int64)
        index = tf.range(n)
        rows = code.value_rowids()
        first_in_row = tf.equal(index, tf.gather(code.row_starts(), rows))
        if self.mode == "char":
            joinable = tf.zeros_like(is_space)
        elif self.mode == "whitespace":
            joinable = tf.logical_not(is_space)
        else:
            joinable = ((cp >= 97) & (cp <= 122)) | ((cp >= 65) & (cp <= 90)) | ((cp >= 48) & (cp <= 57))
        previous = shift_right(tf, joinable, False) & tf.logical_not(first_in_row)
        kept = tf.logical_not(is_space)
        starts_here = kept & tf.logical_not(joinable & previous)
        token_of = tf.cumsum(tf.cast(starts_here, tf.int64)) - 1
        n_tokens = tf.reduce_sum(tf.cast(starts_here, tf.int64))
        kept_token = tf.boolean_mask(token_of, kept)
        kept_index = tf.boolean_mask(index - tf.gather(code.row_starts(), rows), kept)
        start = tf.math.unsorted_segment_min(kept_index, kept_token, n_tokens)
        end = tf.math.unsorted_segment_max(kept_index, kept_token, n_tokens) + 1
        token_rows = tf.boolean_mask(rows, starts_here)
        starts = tf.RaggedTensor.from_value_rowids(start, token_rows, nrows=code.nrows())
        ends = starts.with_flat_values(end)
        return graph.substrings(normal, starts, ends), starts, ends


def _drop_blank(graph, normal, words, starts, ends):
    """Leave out the words that are all whitespace (as ``JiebaTokenizer`` does)."""
    tf = graph.tf
    code = tf.strings.unicode_decode(normal, "UTF-8")
    non_space = tf.cast(tf.logical_not(graph._is_space(code.flat_values)), tf.int64)
    # Count of non-space characters before each position, per row, with a trailing total.
    counts = tf.concat([tf.zeros([code.nrows(), 1], tf.int64), tf.cumsum(code.with_flat_values(non_space), axis=1)], axis=1)
    rows = starts.value_rowids()
    base = tf.gather(counts.row_starts(), rows)
    inside = tf.gather(counts.flat_values, base + ends.flat_values) - tf.gather(counts.flat_values, base + starts.flat_values)
    keep = starts.with_flat_values(inside > 0)
    return (tf.ragged.boolean_mask(words, keep), tf.ragged.boolean_mask(starts, keep), tf.ragged.boolean_mask(ends, keep))


class _Jieba:
    def __init__(self, tokenizer, need_offsets):
        from .jieba_graph import GraphJieba

        if tokenizer.mode != "accurate" and need_offsets:
            raise ExportError(
                f"tokenizer mode: {tokenizer.mode} gives overlapping words, which a tagger cannot tag; "
                "use mode: accurate"
            )
        # What the graph cannot reproduce raises UnsupportedInGraph, an ExportError.
        self.jieba = GraphJieba(tokenizer.segmenter(), hmm=tokenizer.hmm, mode=tokenizer.mode)

    def trackables(self):
        return {f"jieba_{k}": v for k, v in self.jieba.trackables().items()}

    def split(self, graph, normal):
        words, starts, ends = self.jieba.segment(normal)
        return _drop_blank(graph, normal, words, starts, ends)


class _NLTK:
    def __init__(self, tokenizer):
        from .nltk_graph import GraphNLTK

        self.nltk = GraphNLTK(tokenizer.method, tokenizer.pattern)  # or UnsupportedInGraph

    def trackables(self):
        return {f"nltk_{k}": v for k, v in self.nltk.trackables().items()}

    def split(self, graph, normal):
        return self.nltk.segment(normal)
