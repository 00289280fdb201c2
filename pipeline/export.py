"""Export a fitted classification pipeline as a TensorFlow SavedModel.

The SavedModel is self-contained: a process that only has TensorFlow (not this package) can
load it with ``tf.saved_model.load`` or drive it with ``saved_model_cli``. It holds:

- ``serving_default``: ``tokens`` (2-D ``tf.string``, one row of tokens per text, padded with
  ``""``) -> ``label`` ``[batch]``, ``score`` ``[batch]`` (the best label's score),
  ``scores`` ``[batch, n_labels]`` (columns in ``labels.txt`` order), plus ``top_k_labels`` /
  ``top_k_scores`` ``[batch, k]`` when the decoder's ``top_k`` > 1 and ``over_threshold``
  (bool ``[batch, n_labels]``) for multi-label decoders. Token -> id lookup, truncation and
  padding run in the graph.
- ``serve_text``: raw text (1-D ``tf.string``) -> the same outputs, when the tokenizer can run in
  the graph (``char`` and ``whitespace`` tokenizers: ``graph_compatible = True``).
- a ``tokenize`` function (raw text -> ragged tokens, ``serve_text`` pipelines only) and a
  ``label_names`` variable, reachable as attributes of the loaded object.
- assets: ``vocab.txt``, ``labels.txt`` and ``pipeline.yaml``.

After writing, the export loads the SavedModel back and compares its answers with the Python
pipeline's ``predict`` on sample texts (the golden check); any difference raises ExportError
and nothing is left at the destination.

Only this module (and the input modules) speak TensorFlow directly: it is imported lazily by
``Pipeline.export``.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unicodedata
import uuid

import numpy as np
import yaml

from .backend import require_tensorflow
from .errors import NotFittedError

#: Signature names.
TOKENS_SIGNATURE = "serving_default"
TEXT_SIGNATURE = "serve_text"

#: Sample texts of the default golden check: empty and whitespace-only text, full-width and
#: upper-case letters and digits, accented Latin, Chinese, ideographic spaces, tabs, a ligature
#: and a compatibility character that NFKC expands, emoji and other unknown tokens. Texts built
#: from the pipeline's own vocabulary (including one longer than ``max_length``) are added.
DEFAULT_SAMPLES = (
    "",
    "   ",
    "\t\n",
    "Hello World",
    "ＡＢＣ ｄｅｆ １２３！",
    "iPhone１２很好用，ＯＫ？",
    "Café ÉLAN naïve Ωmega ΟΔΟΣ",
    "这部电影真好看",
    "\u3000全角\u3000空格\u3000",
    "tab\tsep\nnew line",
    "ﬁne ㎏ ①②",
    "zzqx ☃ 🙂 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
)


class ExportError(RuntimeError):
    """The pipeline cannot be exported, or the exported SavedModel disagrees with it."""


def export_saved_model(
    pipeline,
    directory: str,
    samples=None,
    check: bool = True,
    overwrite: bool = False,
    atol: float = 1e-5,
) -> dict:
    """Write a fitted classification pipeline as a TensorFlow SavedModel and check it.

    Args:
        pipeline: a fitted ``ClassificationPipeline``.
        directory: the SavedModel folder to write. It must not exist yet or be empty, unless
            ``overwrite`` is set and it holds an earlier SavedModel.
        samples: texts for the golden check (default: ``DEFAULT_SAMPLES`` plus texts made from
            the vocabulary).
        check: load the SavedModel back and compare it with ``pipeline.predict`` (strongly
            recommended; turn off only to debug an export that fails the check).
        overwrite: replace an existing SavedModel at ``directory``.
        atol: largest allowed absolute score difference in the golden check.

    Returns:
        A report: ``path``, ``signatures`` (name -> input and output names), ``n_samples``
        (texts checked), ``max_score_difference``, ``checked``, ``keras_backend``.

    Raises:
        ExportError: the pipeline cannot be exported, or the SavedModel's answers differ from
            the Python pipeline's (the message lists the first differing inputs).
        ImportError: TensorFlow is not installed (with install advice).
        FileExistsError: ``directory`` is in the way.

    Example:
        >>> report = pipeline.export("saved_models/sentiment/saved_model")  # doctest: +SKIP
        >>> report["signatures"]["serve_text"]["inputs"]  # doctest: +SKIP
        ['text']
    """
    require_tensorflow("Exporting a SavedModel")
    _check_exportable(pipeline)
    samples = _samples(pipeline, samples)
    if not isinstance(atol, (int, float)) or isinstance(atol, bool) or not atol >= 0:
        raise ValueError(f"atol must be a number >= 0. Received: atol={atol!r}")
    return write_checked(
        directory,
        overwrite,
        write=lambda staging: _write(pipeline, staging),
        write_in_tensorflow=lambda staging: _write_in_tensorflow_process(pipeline, staging),
        golden=(lambda staging: golden_check(pipeline, staging, samples, atol=atol)) if check else None,
    )


def write_checked(directory, overwrite, write, write_in_tensorflow, golden=None) -> dict:
    """Write a SavedModel beside ``directory``, check it, then move it into place atomically.

    Shared by every task family's export. ``write(staging)`` writes under the TensorFlow
    backend, ``write_in_tensorflow(staging)`` from another backend (through a TensorFlow child
    process); both return the signature report. ``golden(staging)`` compares the written model
    with the Python pipeline and raises ExportError on a difference; nothing is left at
    ``directory`` then.
    """
    import keras

    directory = os.path.abspath(os.fspath(directory))
    _check_destination(directory, overwrite)
    parent = os.path.dirname(directory)
    os.makedirs(parent, exist_ok=True)
    # A hidden sibling folder (same file system, so the final move is atomic), made with
    # os.makedirs so that it gets the usual permissions rather than mkdtemp's 0700.
    staging = os.path.join(parent, f".{os.path.basename(directory)}.export-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.makedirs(staging)
    backend = keras.backend.backend()
    try:
        report = write(staging) if backend == "tensorflow" else write_in_tensorflow(staging)
        report.update(checked=False, n_samples=0, max_score_difference=None)
        if golden is not None:
            try:
                report.update(golden(staging))
            except ExportError as err:
                raise ExportError(f"{err}\nNothing was written to {directory}.") from None
            report["checked"] = True
        if os.path.isdir(directory):
            _remove_saved_model(directory)
        os.replace(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    report["path"] = directory
    report["keras_backend"] = backend
    return report


# -- checks -------------------------------------------------------------------------------------
def _check_exportable(pipeline):
    if getattr(pipeline, "task", None) != "classification":
        raise ExportError(
            f"SavedModel export supports classification pipelines; this is a "
            f"{getattr(pipeline, 'task', type(pipeline).__name__)!r} pipeline"
        )
    try:
        pipeline.check_fitted()
    except NotFittedError as err:
        raise NotFittedError(f"Cannot export: {err}") from None
    model = pipeline.stage("model")
    if getattr(model, "model_", None) is None:
        raise ExportError("The model stage holds no Keras model (model_); fit or load the pipeline first")
    vectorizer = pipeline.stage("vectorizer")
    for option in ("max_length", "truncation", "padding"):
        if not hasattr(vectorizer, option):
            raise ExportError(f"The vectorizer {type(vectorizer).__name__} has no {option!r} option; cannot export it")


def _check_destination(directory, overwrite):
    if os.path.isfile(directory):
        raise FileExistsError(f"{directory} is a file; give a folder path for the SavedModel")
    if os.path.isdir(directory) and os.listdir(directory):
        if not os.path.isfile(os.path.join(directory, "saved_model.pb")):
            raise FileExistsError(
                f"{directory} exists and is not empty (and holds no SavedModel); export into a new or empty folder"
            )
        if not overwrite:
            raise FileExistsError(
                f"{directory} already holds a SavedModel; pass overwrite=True to replace it, or remove the folder first"
            )


def _remove_saved_model(directory):
    # Only a folder checked by _check_destination gets here: empty, or holding a SavedModel.
    shutil.rmtree(directory)


def _samples(pipeline, samples) -> list[str]:
    if samples is None:
        return list(DEFAULT_SAMPLES) + _vocabulary_samples(pipeline)
    if isinstance(samples, str):
        raise TypeError("samples must be a list of texts, not a single str; wrap it in a list: [text]")
    samples = list(samples)
    if not samples:
        raise ValueError("samples is empty: the golden check needs at least one text (or pass samples=None)")
    for i, text in enumerate(samples):
        if not isinstance(text, str):
            raise TypeError(f"samples[{i}] is a {type(text).__name__}, not a str")
    return samples


def _vocabulary_samples(pipeline) -> list[str]:
    """Texts made of known tokens: a short one, one in upper case and one longer than max_length."""
    tokens = pipeline.stage("vocabulary").tokens_
    n_special = len(pipeline.stage("vocabulary").specials)
    known = [t for t in tokens[n_special:] if t.strip()][:50]
    if not known:
        return []
    max_length = pipeline.stage("vectorizer").max_length or 20
    long_tokens = (known * (max_length // len(known) + 2))[: max_length + 7]
    return [" ".join(known[:5]), " ".join(known[:5]).upper(), " ".join(long_tokens), " ".join(reversed(long_tokens))]


# -- TensorFlow-side tables ---------------------------------------------------------------------
def _all_chars():
    return [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]


@functools.lru_cache(maxsize=None)
def nfkd_table() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Every code point whose NFKD form (full compatibility decomposition) differs from itself,
    and that form, from Python's unicodedata.

    NFKC in the graph is NFKD character by character, then canonical reordering of combining
    marks (``combining_classes``), then canonical composition (``composition_pairs``).
    """
    keys, values = [], []
    for c in _all_chars():
        d = unicodedata.normalize("NFKD", c)
        if d != c:
            keys.append(c)
            values.append(d)
    return tuple(keys), tuple(values)


@functools.lru_cache(maxsize=None)
def combining_classes() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Code points with a non-zero canonical combining class, and that class."""
    pairs = [(ord(c), unicodedata.combining(c)) for c in _all_chars() if unicodedata.combining(c)]
    return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)


@functools.lru_cache(maxsize=None)
def composition_pairs() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Canonical composition of adjacent pairs: keys ``first * 0x110000 + second``, values the composite.

    Holds every primary composite (a character whose canonical decomposition is two characters,
    e.g. ``e`` + U+0301 -> ``é``, ``カ`` + U+3099 -> ``ガ``) that NFKC really produces from the
    pair, and the Hangul syllables (L + V -> LV, LV + T -> LVT).
    """
    keys, values = [], []

    def add(first, second, composite):
        if unicodedata.normalize("NFKC", first + second) == composite:
            keys.append(ord(first) * 0x110000 + ord(second))
            values.append(ord(composite))

    for c in _all_chars():
        decomposition = unicodedata.decomposition(c)
        if decomposition and not decomposition.startswith("<"):
            parts = decomposition.split()
            if len(parts) == 2:
                add(chr(int(parts[0], 16)), chr(int(parts[1], 16)), c)
    for lead in range(19):
        for vowel in range(21):
            syllable = 0xAC00 + (lead * 21 + vowel) * 28
            add(chr(0x1100 + lead), chr(0x1161 + vowel), chr(syllable))
            for trail in range(1, 28):
                add(chr(syllable), chr(0x11A7 + trail), chr(syllable + trail))
    return tuple(keys), tuple(values)


@functools.lru_cache(maxsize=None)
def lowercase_fixes() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Characters where ``tf.strings.lower`` disagrees with Python's ``str.lower``, and Python's answer.

    TensorFlow's ICU tables can be older than Python's Unicode database (e.g. letters added in
    Unicode 14); those characters are lower-cased through this table before tf.strings.lower.
    """
    tf = require_tensorflow("Exporting a SavedModel")
    # NUL is left out: tf.strings.lower stops at it (the graph lowers the pieces between NULs).
    chars = [c for c in _all_chars() if c != "\x00"]
    lowered = tf.strings.lower(tf.constant(chars, dtype=tf.string), encoding="utf-8").numpy()
    keys, values = [], []
    for c, low in zip(chars, lowered):
        if low.decode("utf-8") != c.lower():
            keys.append(c)
            values.append(c.lower())
    if keys:
        again = tf.strings.lower(tf.constant(list(values), dtype=tf.string), encoding="utf-8").numpy()
        for value, low in zip(values, again):
            if low.decode("utf-8") != value:
                raise ExportError(
                    f"tf.strings.lower changes the already lower-cased {value!r}; cannot reproduce "
                    "Python's str.lower in the graph with this TensorFlow version"
                )
    return tuple(keys), tuple(values)


@functools.lru_cache(maxsize=None)
def space_code_points() -> tuple[int, ...]:
    """Code points Python treats as whitespace (``str.isspace``, ``str.split``, regex ``\\s``)."""
    return tuple(ord(c) for c in _all_chars() if c.isspace())


def _string_table(tf, keys, values):
    if any(v == "" for v in values):
        raise ExportError("A character table maps a character to the empty string; cannot build it in the graph")
    init = tf.lookup.KeyValueTensorInitializer(
        tf.constant(list(keys), dtype=tf.string), tf.constant(list(values), dtype=tf.string)
    )
    # No key maps to "" (checked above), so "" means "not in the table".
    return tf.lookup.StaticHashTable(init, default_value="")


def _int_table(tf, keys, values, default):
    init = tf.lookup.KeyValueTensorInitializer(tf.constant(keys, tf.int64), tf.constant(values, tf.int64))
    return tf.lookup.StaticHashTable(init, default_value=default)


class GraphTokenizer:
    """A TensorFlow reimplementation of a ``char`` or ``whitespace`` tokenizer.

    Calling it on a 1-D ``tf.string`` tensor of texts returns a ``tf.RaggedTensor`` of tokens that
    equals the Python tokenizer's output (NFKC as ``_reorder_and_compose`` describes).

    Args:
        tokenizer: a ``CharTokenizer`` or ``WhitespaceTokenizer``.

    Example:
        >>> from stages import CharTokenizer
        >>> GraphTokenizer(CharTokenizer(lowercase=True))(tf.constant(["ＡＢ c"])).to_list()  # doctest: +SKIP
        [[b'a', b'b', b'c']]
    """

    def __init__(self, tokenizer):
        from stages.tokenizers import CharTokenizer, WhitespaceTokenizer

        tf = require_tensorflow("Exporting a SavedModel")
        self.tf = tf
        if isinstance(tokenizer, WhitespaceTokenizer):
            self.mode = "whitespace"
        elif isinstance(tokenizer, CharTokenizer):
            self.mode = "alnum_runs" if tokenizer.keep_alnum_runs else "char"
        else:
            raise ExportError(f"{type(tokenizer).__name__} cannot run inside the TensorFlow graph")
        self.nfkc = tokenizer.nfkc
        self.lowercase = tokenizer.lowercase
        self.nfkd_map = self.ccc_map = self.compose_map = None
        if self.nfkc:
            self.nfkd_map = _string_table(tf, *nfkd_table())
            self.ccc_map = _int_table(tf, *combining_classes(), default=0)
            self.compose_map = _int_table(tf, *composition_pairs(), default=-1)
        fixes = lowercase_fixes() if self.lowercase else ((), ())
        self.lower_fix_map = _string_table(tf, *fixes) if fixes[0] else None
        self.spaces = tf.constant(space_code_points(), dtype=tf.int32)

    def trackables(self) -> dict:
        """The lookup tables, to attach to the exported module so they are saved."""
        return {
            "nfkd_map": self.nfkd_map,
            "ccc_map": self.ccc_map,
            "compose_map": self.compose_map,
            "lower_fix_map": self.lower_fix_map,
        }

    def _map_chars(self, text, table):
        tf = self.tf
        chars = tf.strings.unicode_split(text, "UTF-8")
        found = table.lookup(chars.flat_values)
        mapped = tf.where(tf.equal(found, ""), chars.flat_values, found)
        return tf.strings.reduce_join(chars.with_flat_values(mapped), axis=-1)

    def _reorder_and_compose(self, text):
        """Canonical reordering and composition of decomposed text (the end of NFKC)."""
        tf = self.tf
        code_points = tf.strings.unicode_decode(text, "UTF-8")
        nrows = code_points.nrows()
        flat = tf.cast(code_points.flat_values, tf.int64)
        row_ids = code_points.value_rowids()

        # Reordering: within each run of marks (a starter and the non-starters after it, or
        # the marks that open a row), sort by combining class, keeping the order among equals.
        ccc = self.ccc_map.lookup(flat)
        position = tf.range(tf.size(flat, out_type=tf.int64))
        first_in_row = tf.equal(position, tf.gather(code_points.row_starts(), row_ids))
        segment = tf.cumsum(tf.cast(tf.equal(ccc, 0) | first_in_row, tf.int64)) - 1
        flat = tf.gather(flat, tf.argsort(segment * 256 + ccc, stable=True))

        # Composition of adjacent pairs, leftmost first, until none is left. A pair whose left
        # neighbour pair also composes waits for the next round, so chains (L + V + T,
        # a + U+0323 + U+0302) compose left to right.
        def step(flat, row_ids, _):
            same_row = tf.equal(row_ids[:-1], row_ids[1:])
            composite = self.compose_map.lookup(flat[:-1] * 0x110000 + flat[1:])
            composable = (composite >= 0) & same_row
            chosen = composable & tf.logical_not(tf.concat([[False], composable[:-1]], axis=0))
            merged = tf.where(tf.concat([chosen, [False]], axis=0), tf.concat([composite, [0]], axis=0), flat)
            keep = tf.logical_not(tf.concat([[False], chosen], axis=0))
            return tf.boolean_mask(merged, keep), tf.boolean_mask(row_ids, keep), tf.reduce_any(chosen)

        flat, row_ids, _ = tf.while_loop(
            lambda flat, row_ids, changed: changed,
            step,
            [flat, row_ids, tf.constant(True)],
            shape_invariants=[tf.TensorShape([None]), tf.TensorShape([None]), tf.TensorShape([])],
        )
        composed = tf.RaggedTensor.from_value_rowids(tf.cast(flat, tf.int32), row_ids, nrows=nrows)
        return tf.strings.unicode_encode(composed, "UTF-8")

    def normalize(self, text):
        """NFKC and lower-casing of a 1-D string tensor, as ``Tokenizer.normalize``."""
        tf = self.tf
        if self.nfkc:
            text = self._reorder_and_compose(self._map_chars(text, self.nfkd_map))
        if self.lowercase:
            if self.lower_fix_map is not None:
                text = self._map_chars(text, self.lower_fix_map)
            # tf.strings.lower stops at the first NUL byte, so the pieces between NULs are lowered
            # apart and joined again (a NUL separator attribute would be cut short too, hence
            # appending a NUL tensor to every piece and dropping the last one).
            pieces = tf.strings.split(text, sep="\x00")
            lowered = tf.strings.lower(pieces, encoding="utf-8")
            lowered = lowered.with_flat_values(tf.strings.join([lowered.flat_values, tf.constant("\x00")]))
            joined = tf.strings.reduce_join(lowered, axis=-1)
            length = tf.strings.length(joined)
            text = tf.strings.substr(joined, tf.zeros_like(length), length - 1)
        return text

    def __call__(self, text):
        tf = self.tf
        # Python texts are always valid Unicode; bytes that are not UTF-8 become U+FFFD here.
        text = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace")
        text = self.normalize(text)
        chars = tf.strings.unicode_split(text, "UTF-8")
        code_points = tf.strings.unicode_decode(text, "UTF-8")
        cp = code_points.flat_values
        is_space = tf.reduce_any(tf.equal(cp[:, None], self.spaces[None, :]), axis=1)
        if self.mode == "char":
            return tf.ragged.boolean_mask(chars, code_points.with_flat_values(tf.logical_not(is_space)))
        if self.mode == "whitespace":
            joinable = tf.logical_not(is_space)
        else:  # [A-Za-z0-9]+ runs; every other non-space character stands alone
            joinable = (
                ((cp >= ord("a")) & (cp <= ord("z"))) | ((cp >= ord("A")) & (cp <= ord("Z"))) | ((cp >= ord("0")) & (cp <= ord("9")))
            )
        row_ids = chars.value_rowids()
        position = tf.range(tf.size(cp, out_type=tf.int64))
        first_in_row = tf.equal(position, tf.gather(chars.row_starts(), row_ids))
        previous_joinable = tf.concat([[False], joinable[:-1]], axis=0) & tf.logical_not(first_in_row)
        kept = tf.logical_not(is_space)
        starts = kept & tf.logical_not(joinable & previous_joinable)
        token_of_char = tf.cumsum(tf.cast(starts, tf.int64)) - 1
        n_tokens = tf.reduce_sum(tf.cast(starts, tf.int64))
        tokens = tf.strings.unsorted_segment_join(
            tf.boolean_mask(chars.flat_values, kept), tf.boolean_mask(token_of_char, kept), n_tokens
        )
        lengths = tf.math.unsorted_segment_sum(tf.cast(starts, tf.int64), row_ids, chars.nrows())
        return tf.RaggedTensor.from_row_lengths(tokens, lengths)


# -- the exported module ------------------------------------------------------------------------
def _float32_at_least(threshold: float):
    """The smallest float32 >= ``threshold``: float32 ``score >= it`` equals Python's float64 test."""
    t = np.float32(threshold)
    if float(t) < threshold:
        t = np.nextafter(t, np.float32(np.inf))
    return t


def padded_ids(ragged_ids, max_length, truncation="post", padding="post"):
    """Ragged ids -> an int32 ``(batch, length)`` tensor, exactly as ``Vectorizer.transform``.

    ``length`` is ``max_length``, or the longest row (at least 1) when it is None; long rows lose
    their tail (``truncation="post"``) or head (``"pre"``); id 0 pads at the end or the start.
    """
    tf = require_tensorflow("Exporting a SavedModel")
    ragged_ids = tf.cast(ragged_ids, tf.int64)
    lengths = ragged_ids.row_lengths()
    dense = ragged_ids.to_tensor(default_value=0)
    batch = tf.shape(dense, out_type=tf.int64)[0]
    width = tf.shape(dense, out_type=tf.int64)[1]
    # One extra column of zeros: every padding position gathers from it.
    dense = tf.concat([dense, tf.zeros([batch, 1], tf.int64)], axis=1)
    if max_length is None:
        length = tf.maximum(tf.reduce_max(tf.concat([lengths, [0]], 0)), 1)
    else:
        length = tf.constant(max_length, tf.int64)
    kept = tf.minimum(lengths, length)
    start = lengths - kept if truncation == "pre" else tf.zeros_like(kept)
    pad_before = length - kept if padding == "pre" else tf.zeros_like(kept)
    j = tf.range(length)[None, :]
    valid = (j >= pad_before[:, None]) & (j < (pad_before + kept)[:, None])
    source = tf.where(valid, start[:, None] + j - pad_before[:, None], width)
    return tf.cast(tf.gather(dense, source, batch_dims=1), tf.int32)


def _build_module(pipeline, asset_dir):
    tf = require_tensorflow("Exporting a SavedModel")
    tokenizer = pipeline.stage("tokenizer")
    vocabulary = pipeline.stage("vocabulary")
    vectorizer = pipeline.stage("vectorizer")
    keras_model = pipeline.stage("model").model_
    decoder = pipeline.stage("decoder")
    labels = list(decoder.labels_)
    n_labels = len(labels)
    k = min(decoder.top_k, n_labels)
    max_length = vectorizer.max_length
    threshold = _float32_at_least(decoder.threshold)

    graph_tokenizer = None
    if getattr(tokenizer, "graph_compatible", False):
        graph_tokenizer = GraphTokenizer(tokenizer)

    keys = [t for t in vocabulary.tokens_ if t != ""]
    ids = [i for i, t in enumerate(vocabulary.tokens_) if t != ""]
    vocab_table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(keys, tf.string), tf.constant(ids, tf.int64)),
        default_value=vocabulary.unk_id,
    )

    module = tf.Module(name="keras_text_pipeline")
    module.vocab_table = vocab_table
    module.label_names = tf.Variable(labels, dtype=tf.string, trainable=False, name="label_names")
    if graph_tokenizer is not None:
        for name, table in graph_tokenizer.trackables().items():
            if table is not None:
                setattr(module, name, table)
    module.vocab_file = tf.saved_model.Asset(os.path.join(asset_dir, "vocab.txt"))
    module.labels_file = tf.saved_model.Asset(os.path.join(asset_dir, "labels.txt"))
    module.config_file = tf.saved_model.Asset(os.path.join(asset_dir, "pipeline.yaml"))
    label_constant = tf.constant(labels, dtype=tf.string)

    def token_ids(tokens):
        return padded_ids(vocab_table.lookup(tokens), max_length, vectorizer.truncation, vectorizer.padding)

    def answer(tokens):
        scores = tf.cast(keras_model(token_ids(tokens), training=False), tf.float32)
        ordered_scores, order = tf.math.top_k(scores, k=n_labels, sorted=True)
        out = {
            "label": tf.gather(label_constant, order[:, 0]),
            "score": ordered_scores[:, 0],
            "scores": scores,
        }
        if k > 1:
            out["top_k_labels"] = tf.gather(label_constant, order[:, :k])
            out["top_k_scores"] = ordered_scores[:, :k]
        if decoder.multi_label:
            out["over_threshold"] = scores >= tf.constant(threshold, tf.float32)
        return out

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.string, name="tokens")], autograph=False)
    def serve_tokens(tokens):
        return answer(tf.ragged.boolean_mask(tokens, tf.not_equal(tokens, "")))

    module.serve_tokens = serve_tokens
    signatures = {TOKENS_SIGNATURE: serve_tokens.get_concrete_function()}

    if graph_tokenizer is not None:

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")], autograph=False)
        def tokenize(text):
            return graph_tokenizer(text)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")], autograph=False)
        def serve_text(text):
            return answer(graph_tokenizer(text))

        module.tokenize = tokenize
        module.serve_text = serve_text
        signatures[TEXT_SIGNATURE] = serve_text.get_concrete_function()
    track_variables(module, signatures, exclude=(module.label_names,))
    return module, signatures


def track_variables(module, signatures, exclude=()) -> None:
    """Attach to ``module`` every variable the traced ``signatures`` use, once each (except
    ``exclude``, tracked elsewhere). Keras variables (weights, dropout seed state) are tracked
    through the traced functions, as ``keras.export.ExportArchive`` does, rather than by
    attaching the Keras model itself."""
    seen, variables = {id(v) for v in exclude}, []
    for fn in signatures.values():
        for v in fn.variables:
            if id(v) not in seen:
                seen.add(id(v))
                variables.append(v)
    module.model_variables = variables


def write_config_asset(pipeline, asset_dir) -> None:
    """Write the pipeline's config as ``pipeline.yaml`` among the SavedModel's assets."""
    with open(os.path.join(asset_dir, "pipeline.yaml"), "w", encoding="utf-8") as f:
        yaml.safe_dump(pipeline.get_config(), f, allow_unicode=True, sort_keys=False)


def save_module(module, signatures, staging) -> dict:
    """``tf.saved_model.save`` the module into ``staging``; return the signature report
    (``{"signatures": {name: {"inputs": [...], "outputs": [...]}}}``)."""
    tf = require_tensorflow("Exporting a SavedModel")
    tf.saved_model.save(module, staging, signatures=signatures)
    return {
        "signatures": {
            name: {
                "inputs": [spec.name for spec in tf.nest.flatten(fn.structured_input_signature)],
                "outputs": sorted(fn.structured_outputs),
            }
            for name, fn in signatures.items()
        }
    }


def _write(pipeline, staging) -> dict:
    """Write the SavedModel into the (empty) ``staging`` folder; return the signature report."""
    with tempfile.TemporaryDirectory() as asset_dir:
        pipeline.stage("vocabulary").save_assets(asset_dir)
        pipeline.stage("decoder").save_assets(asset_dir)
        write_config_asset(pipeline, asset_dir)
        module, signatures = _build_module(pipeline, asset_dir)
        return save_module(module, signatures, staging)


# -- export from a non-TensorFlow Keras backend ---------------------------------------------------
def _write_in_tensorflow_process(pipeline, staging) -> dict:
    """Save the pipeline and let a child process with KERAS_BACKEND=tensorflow write the SavedModel.

    A Keras 3 model trained under JAX or PyTorch is stored backend-neutrally in ``model.keras``,
    so the child rebuilds the same model with TensorFlow; the golden check then runs here,
    against this process's (e.g. JAX) pipeline.
    """
    with tempfile.TemporaryDirectory() as tmp:
        saved = os.path.join(tmp, "pipeline")
        pipeline.save(saved)
        request = os.path.join(tmp, "request.json")
        result = os.path.join(tmp, "result.json")
        with open(request, "w", encoding="utf-8") as f:
            json.dump({"pipeline": saved, "staging": staging, "result": result}, f)
        env = dict(os.environ, KERAS_BACKEND="tensorflow")
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline.export", request], env=env, capture_output=True, text=True
        )
        if proc.returncode != 0 or not os.path.isfile(result):
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise ExportError(
                "Writing the SavedModel in a TensorFlow-backend child process failed (this process uses the "
                f"{_backend()} Keras backend). Alternatively save the pipeline and export it from a process "
                f"with KERAS_BACKEND=tensorflow:\n  Pipeline.load(folder).export(...)\nChild output:\n{tail}"
            )
        with open(result, encoding="utf-8") as f:
            return json.load(f)


def _backend():
    import keras

    return keras.backend.backend()


def _child_main(request_path):
    with open(request_path, encoding="utf-8") as f:
        request = json.load(f)
    from . import Pipeline

    pipeline = Pipeline.load(request["pipeline"])
    report = _write(pipeline, request["staging"])
    with open(request["result"], "w", encoding="utf-8") as f:
        json.dump(report, f)


# -- golden check -------------------------------------------------------------------------------
def golden_check(pipeline, directory, samples, atol: float = 1e-5) -> dict:
    """Compare a SavedModel's answers with ``pipeline.predict`` on ``samples``.

    Both signatures are checked: ``serving_default`` on the Python tokenizer's tokens, and
    ``serve_text`` (if present) on the raw texts, together with its graph tokens.

    Returns:
        ``{"n_samples": ..., "max_score_difference": ...}``.

    Raises:
        ExportError: listing the first differing inputs.
    """
    tf = require_tensorflow("Checking a SavedModel")
    samples = list(samples)
    loaded = tf.saved_model.load(directory)
    answers = pipeline.predict(samples)
    expected_scores = np.asarray(pipeline.predict_scores(samples), dtype=np.float32)
    decoder = pipeline.stage("decoder")
    labels = list(decoder.labels_)
    py_tokens = pipeline.tokenize(samples)
    width = max([len(t) for t in py_tokens] + [1])
    padded = [list(t) + [""] * (width - len(t)) for t in py_tokens]

    problems = []  # (sample index, description)
    max_diff = 0.0
    runs = [(TOKENS_SIGNATURE, {"tokens": tf.constant(padded, dtype=tf.string, shape=[len(samples), width])})]
    if TEXT_SIGNATURE in loaded.signatures:
        runs.append((TEXT_SIGNATURE, {"text": tf.constant(samples, dtype=tf.string, shape=[len(samples)])}))
        graph_tokens = loaded.tokenize(tf.constant(samples, dtype=tf.string, shape=[len(samples)])).to_list()
        for i, (want, got) in enumerate(zip(py_tokens, graph_tokens)):
            got = [t.decode("utf-8") for t in got]
            if got != want:
                problems.append((i, f"graph tokens {got!r} != Python tokens {want!r}"))
    for name, inputs in runs:
        out = {key: value.numpy() for key, value in loaded.signatures[name](**inputs).items()}
        if "scores" in out and len(samples):
            max_diff = max(max_diff, float(np.max(np.abs(out["scores"] - expected_scores))))
        where = name
        for i, want in enumerate(answers):
            got_label = out["label"][i].decode("utf-8")
            if got_label != want["label"]:
                problems.append((i, f"label {got_label!r} ({where}) != {want['label']!r} (Python predict)"))
            if abs(float(out["score"][i]) - want["score"]) > atol:
                problems.append((i, f"score {float(out['score'][i]):.7g} ({where}) != {want['score']:.7g} (Python predict)"))
            row_diff = float(np.max(np.abs(out["scores"][i] - expected_scores[i])))
            if row_diff > atol:
                problems.append((i, f"scores differ by {row_diff:.3g} > atol={atol} ({where})"))
            if "top_k" in want:
                got_top = [t.decode("utf-8") for t in out["top_k_labels"][i]]
                want_top = [t["label"] for t in want["top_k"]]
                if got_top != want_top:
                    problems.append((i, f"top_k labels {got_top} ({where}) != {want_top} (Python predict)"))
            if "labels" in want:
                got_set = [lab for lab, on in zip(labels, out["over_threshold"][i]) if on]
                if sorted(got_set) != sorted(want["labels"]):
                    problems.append((i, f"labels over threshold {got_set} ({where}) != {want['labels']} (Python predict)"))
    if problems:
        problems.sort(key=lambda p: p[0])  # stable: per text, tokens first, then each signature
        bad = sorted({i for i, _ in problems})
        lines = [f"  [{i}] {samples[i][:60]!r}: {text}" for i, text in problems[:8]]
        raise ExportError(
            f"The exported SavedModel disagrees with the Python pipeline on {len(bad)} of "
            f"{len(samples)} sample texts. First differences:\n" + "\n".join(lines)
        )
    return {"n_samples": len(samples), "max_score_difference": max_diff}


if __name__ == "__main__":
    _child_main(sys.argv[1])
