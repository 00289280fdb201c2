"""TensorFlow building blocks of the graph segmenter, each linear in the size of its input.

Ragged row bookkeeping (``_row_ids``, ``_repeat``), position flags (``_flags``), the step-major
layout the ``tf.while_loop``s run over (``_step_layout``, ``_step_slices``), UTF-8 encoding of
code-point slices and the TensorArray helpers. TensorFlow is imported on first use (``_tf``).
"""

from __future__ import annotations

from .rules import _BLOCK_PUNCT, _HAN_HI, _HAN_LO


def _tf():
    import tensorflow as tf

    return tf


def _shift_right(x, fill):
    """x[i - 1] at i (``fill`` at 0), written so that an empty x stays empty."""
    tf = _tf()
    return tf.concat([tf.fill([1], tf.constant(fill, x.dtype)), x], 0)[:-1]


def _is_alnum(cp):
    return ((cp >= 48) & (cp <= 57)) | ((cp >= 65) & (cp <= 90)) | ((cp >= 97) & (cp <= 122))


def _in_block(cp):
    """Whether each code point is in re_han_default's class [\\u4E00-\\u9FD5a-zA-Z0-9+#&._%-]."""
    hit = ((cp >= _HAN_LO) & (cp <= _HAN_HI)) | _is_alnum(cp)
    for ch in _BLOCK_PUNCT:
        hit |= cp == ord(ch)
    return hit


def _row_ids(splits, size):
    """(row of every value, True where a non-empty row begins) from ragged row splits in linear
    time (value_rowids and tf.repeat build a [rows, longest row] mask: quadratic at worst)."""
    tf = _tf()
    starts = splits[:-1]
    # Empty rows at the end start at `size`: they land in an extra segment that is dropped.
    hits = tf.math.unsorted_segment_sum(tf.ones_like(starts), starts, size + 1)[:-1]
    return tf.cumsum(hits) - 1, hits > 0


def _repeat(values, counts):
    """tf.repeat(values, counts) in linear time."""
    tf = _tf()
    splits = tf.concat([[0], tf.cumsum(counts)], 0)
    return tf.gather(values, _row_ids(splits, splits[-1])[0])


def _flags(pos, size):
    """bool [size], True at the int64 positions ``pos`` (much cheaper than scatter_nd on CPU)."""
    tf = _tf()
    return tf.math.unsorted_segment_max(tf.ones_like(pos, tf.int32), pos, size) > 0


def _step_layout(lengths):
    """Lay sequences (sorted longest first) out step by step: step t holds item t of every
    sequence longer than t, and those sequences are a prefix of the sorted list.

    Returns:
        (counts, offsets, seq, t): counts[t] = sequences longer than t (with at least two
        trailing zeros), offsets[t] = where step t starts in the step-major flat layout, and the
        sequence and step of every flat element.
    """
    tf = _tf()
    steps = tf.maximum(tf.reduce_max(tf.concat([lengths, [0]], 0)), 0)
    hist = tf.math.unsorted_segment_sum(tf.ones_like(lengths), lengths, steps + 2)
    counts = tf.size(lengths, out_type=tf.int64) - tf.cumsum(hist)
    offsets = tf.cumsum(counts, exclusive=True)
    # Item t of sequence i goes to offsets[t] + i: a permutation of the sequence-major order.
    seq_major = _repeat(tf.range(tf.size(lengths, out_type=tf.int64)), lengths)
    t_major = tf.range(tf.size(seq_major, out_type=tf.int64)) - _repeat(
        tf.cumsum(lengths, exclusive=True), lengths)
    back = tf.math.invert_permutation(tf.gather(offsets, t_major) + seq_major)
    return counts, offsets, tf.gather(seq_major, back), tf.gather(t_major, back)


def _step_slices(counts, offsets):
    """Per step, [begin, size] of its rows in a step-layout matrix, for tf.slice in a loop body
    (a gathered row per step costs far fewer ops than ``x[a:b]`` with tensor bounds)."""
    tf = _tf()
    return (tf.stack([offsets, tf.zeros_like(offsets)], 1),
            tf.stack([counts, -tf.ones_like(counts)], 1))


def _encode(cp, starts, lengths):
    """UTF-8 strings of the code-point slices cp[starts[i] : starts[i] + lengths[i]]."""
    tf = _tf()
    offsets = tf.cumsum(lengths, exclusive=True)
    idx = tf.range(tf.reduce_sum(lengths), dtype=tf.int64) + _repeat(starts - offsets, lengths)
    chars = tf.RaggedTensor.from_row_lengths(tf.gather(cp, idx), lengths, validate=False)
    return tf.strings.unicode_encode(chars, "UTF-8")


def _ta(dtype):
    tf = _tf()
    return tf.TensorArray(dtype, size=0, dynamic_size=True, infer_shape=False,
                          element_shape=tf.TensorShape([None]))


def _concat(ta):
    """ta.concat(), also for an empty array in eager mode (one empty element is appended)."""
    return ta.write(ta.size(), _tf().zeros([0], ta.dtype)).concat()
