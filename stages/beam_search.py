"""Batched greedy and beam search over a step function, written in ``keras.ops``.

Both searches decode a whole batch of sentences at once: every step advances all sentences (and
all beams of each sentence) by one token with a single call of the model's step function. The
loop over time steps is a ``keras.ops.while_loop`` with fixed-shape loop variables, so the same
code runs eagerly, inside a compiled ``predict`` (TensorFlow graph or ``jax.jit``) and inside an
exported SavedModel.

The step function has the signature::

    step(tokens, state, context) -> (log_probs, new_state, attention)

- ``tokens``: int32 ``(n,)``, the previous token of each row;
- ``state``: a list of tensors with leading dimension ``n`` (recurrent states), which the search
  reorders when beams are re-ranked;
- ``context``: a list of tensors with leading dimension ``n`` that never change (encoder
  outputs, the source mask, the encoder side of the attention score); beam search tiles them
  once;
- ``log_probs``: float ``(n, vocabulary)``, log-probabilities of the next token;
- ``attention``: float ``(n, source_length)`` or None.

With a large target vocabulary, each beam-search step ranks only each beam's ``2k`` best
tokens (found block-wise, see ``_candidates`` and ``_top_k_rows``), not all ``k * vocabulary``
extensions: the same candidates, sums and order of ties, at a fraction of the cost.

Scores: a finished hypothesis of ``t`` tokens (its ``<eos>`` included) with summed
log-probability ``lp`` scores ``lp / ((5 + t) / 6) ** alpha`` (the GNMT length penalty; alpha 0
means raw log-probability). A hypothesis that reaches ``max_length`` without ``<eos>`` is
finished there: the search always stops after ``max_length`` steps.
"""

from __future__ import annotations

from keras import ops

#: Stands in for minus infinity: large enough never to win, finite so sums stay finite.
NEG = -1.0e9


def length_penalty(length, alpha: float):
    """The GNMT length penalty ``((5 + length) / 6) ** alpha`` (1 when alpha is 0)."""
    if not alpha:
        return ops.ones_like(ops.cast(length, "float32"))
    return ops.power((5.0 + ops.cast(length, "float32")) / 6.0, alpha)


def check_search_options(beam_width, max_length, length_penalty_alpha, vocab_size=None, path="stages.decoder"):
    """Validate search options, raising ConfigError naming ``path`` and the fix."""
    from .errors import ConfigError

    if isinstance(beam_width, bool) or not isinstance(beam_width, int) or beam_width < 1:
        raise ConfigError(
            "beam_width", "must be an integer >= 1 (1 means greedy search)", beam_width, path
        )
    if vocab_size is not None and beam_width > vocab_size:
        raise ConfigError(
            "beam_width",
            f"must not exceed the target vocabulary size ({vocab_size} tokens); use a smaller beam",
            beam_width,
            path,
        )
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        raise ConfigError("max_length", "must be an integer >= 1", max_length, path)
    if isinstance(length_penalty_alpha, bool) or not isinstance(length_penalty_alpha, (int, float)) or length_penalty_alpha < 0:
        raise ConfigError("length_penalty", "must be a number >= 0 (0: no length normalisation)", length_penalty_alpha, path)


def _ban(log_probs, banned_ids):
    """Give ``banned_ids`` (padding, ``<bos>``) no chance of being generated."""
    if not banned_ids:
        return log_probs
    vocab = ops.shape(log_probs)[-1]
    ids = ops.arange(vocab, dtype="int32")
    hit = ops.zeros((vocab,), dtype="bool")
    for b in banned_ids:
        hit = ops.logical_or(hit, ops.equal(ids, b))
    return ops.where(ops.expand_dims(hit, 0), ops.full_like(log_probs, NEG), log_probs)


def _write(buffer, position, values, index):
    """``buffer[..., position, ...] = values`` along axis ``index`` (functional, fixed shape)."""
    length = ops.shape(buffer)[index]
    hit = ops.equal(ops.arange(length, dtype="int32"), position)
    shape = [1] * len(buffer.shape)
    shape[index] = length
    hit = ops.reshape(hit, shape)
    return ops.where(hit, ops.expand_dims(values, index), buffer)


def greedy_search(step, state, context, batch_size, bos_id, eos_id, max_length, source_length=None, banned_ids=()):
    """Greedy decoding of a batch.

    Args:
        step: the step function (see the module docstring).
        state: initial recurrent state, a list of ``(batch, ...)`` tensors.
        context: constant per-sentence tensors, a list of ``(batch, ...)`` tensors.
        batch_size: the batch size (an int, or a scalar tensor in graph mode).
        bos_id, eos_id: ids of ``<bos>`` (fed first) and ``<eos>`` (ends a sentence).
        max_length: most tokens generated per sentence, ``<eos>`` included.
        source_length: the source length, to collect attention weights ``(batch, max_length,
            source_length)``; None collects none.
        banned_ids: ids never generated (e.g. padding and ``<bos>``).

    Returns:
        ``(tokens, scores, attention)``: int32 ``(batch, max_length)`` token ids (``<eos>``
        included, 0 after it), float ``(batch,)`` summed log-probabilities, and the attention
        weights or None.
    """
    state = list(state)
    n_state = len(state)
    tokens = ops.full((batch_size,), bos_id, dtype="int32")
    seq = ops.zeros((batch_size, max_length), dtype="int32")
    score = ops.zeros((batch_size,), dtype="float32")
    done = ops.zeros((batch_size,), dtype="bool")
    with_attention = source_length is not None
    attn_buf = ops.zeros((batch_size, max_length, source_length), "float32") if with_attention else ops.zeros((1,), "float32")

    def cond(i, tokens, seq, score, done, attn_buf, *state):
        return ops.logical_and(i < max_length, ops.logical_not(ops.all(done)))

    def body(i, tokens, seq, score, done, attn_buf, *state):
        log_probs, new_state, attn = step(tokens, list(state), context)
        log_probs = _ban(ops.cast(log_probs, "float32"), banned_ids)
        best = ops.cast(ops.argmax(log_probs, axis=-1), "int32")
        best_logp = ops.max(log_probs, axis=-1)
        best = ops.where(done, ops.zeros_like(best), best)
        score = score + ops.where(done, ops.zeros_like(best_logp), best_logp)
        seq = _write(seq, i, best, 1)
        if with_attention:
            attn = ops.where(done[:, None], ops.zeros_like(attn), ops.cast(attn, "float32"))
            attn_buf = _write(attn_buf, i, attn, 1)
        done = ops.logical_or(done, ops.equal(best, eos_id))
        return (i + 1, best, seq, score, done, attn_buf, *new_state)

    out = ops.while_loop(cond, body, (ops.convert_to_tensor(0, "int32"), tokens, seq, score, done, attn_buf, *state))
    assert len(out) == 6 + n_state
    return out[2], out[3], (out[5] if with_attention else None)


def _tile(x, k):
    """``(batch, ...)`` -> ``(batch * k, ...)``, each row repeated ``k`` times in place."""
    return ops.repeat(x, k, axis=0)


def _gather_rows(x, index, batch_size, width):
    """Select along axis 1: ``x`` is ``(batch, m, ...)``, ``index`` ``(batch, width)`` in ``[0, m)``."""
    shape = ops.shape(x)
    rest = tuple(shape[2:])
    flat = ops.reshape(x, (-1, *rest))
    offsets = ops.expand_dims(ops.arange(batch_size, dtype="int32") * shape[1], 1)
    picked = ops.take(flat, ops.reshape(index + offsets, (-1,)), axis=0)
    return ops.reshape(picked, (batch_size, width, *rest))


#: Width of the blocks that ``_top_k_rows`` ranks by their maxima (32 was fastest on a
#: (160, 3613) and a (160, 5920) batch of rows; any width gives the same answer).
BLOCK = 32


def _top_k_rows(x, m):
    """``ops.top_k(x, m)`` of a ``(rows, n)`` float tensor (static ``n``, no NaN): the same
    values and indices, ties to the lower index, found in a fraction of the time for wide rows.

    A row's ``m`` best entries lie in the ``m`` blocks of ``BLOCK`` consecutive entries with the
    highest maxima (each of those maxima is an entry at least as good as anything in a block
    not chosen), so the full ranking runs on one max per block and then on ``m`` blocks only.
    Blocks of equal maxima rank by position, and the chosen blocks are read in position order,
    so ties break towards the lower index exactly as ``top_k`` over the whole row does.
    """
    n = x.shape[-1]
    blocks = -(-n // BLOCK) if n is not None else 0
    if blocks <= m:
        values, ids = ops.top_k(x, m)
        return values, ops.cast(ids, "int32")
    rows = ops.shape(x)[0]
    if blocks * BLOCK > n:
        x = ops.pad(x, [[0, 0], [0, blocks * BLOCK - n]], constant_values=float("-inf"))
    x = ops.reshape(x, (rows, blocks, BLOCK))
    _, best = ops.top_k(ops.max(x, axis=-1), m)
    best = ops.sort(ops.cast(best, "int32"), axis=-1)
    picked = ops.reshape(_gather_rows(x, best, rows, m), (rows, m * BLOCK))
    values, pos = ops.top_k(picked, m)
    pos = ops.cast(pos, "int32")
    return values, ops.take_along_axis(best, pos // BLOCK, axis=1) * BLOCK + pos % BLOCK


def _candidates(log_probs, alive_logp, batch_size, k, banned_ids):
    """The ``2k`` best extensions of each sentence's ``k`` live hypotheses.

    Args:
        log_probs: ``(batch * k, vocab)`` next-token log-probabilities of each live hypothesis.
        alive_logp: ``(batch, k)`` their summed log-probabilities.

    Returns:
        ``(top_logp, origin, token)``, each ``(batch, 2k)``: summed log-probabilities (best
        first), the beam each candidate extends, and its token.

    Adding a beam's log-probability to every token of that beam does not reorder its tokens, so
    the sentence's best ``2k`` extensions lie among each beam's ``2k`` best tokens (plus the
    banned ones, which may be among those and are dropped). Ranking ``k * (2k + banned)``
    candidates instead of ``k * vocab`` gives the same candidates, the same sums and the same
    order of ties (beam first, then token id, as ``top_k`` over the flat ``k * vocab`` does),
    without a full-vocabulary pass for the ban and the sum. Small vocabularies (up to ``BLOCK``
    tokens per pre-selected token) take the full ranking: it is cheap there, and fewer
    operations a step matter more than fewer multiply-adds for a small model.
    """
    b = batch_size
    vocab = log_probs.shape[-1]
    per_beam = 2 * k + len(banned_ids)
    if vocab is None or vocab <= BLOCK * per_beam:
        log_probs = _ban(log_probs, banned_ids)
        vocab = ops.shape(log_probs)[-1]
        cand = ops.reshape(ops.expand_dims(alive_logp, 2) + ops.reshape(log_probs, (b, k, vocab)), (b, -1))
        top_logp, top_index = ops.top_k(cand, 2 * k)
        top_index = ops.cast(top_index, "int32")
        return top_logp, top_index // vocab, top_index % vocab
    beam_logp, beam_ids = _top_k_rows(log_probs, per_beam)
    if banned_ids:
        hit = ops.zeros_like(beam_ids, dtype="bool")
        for banned in banned_ids:
            hit = ops.logical_or(hit, ops.equal(beam_ids, banned))
        beam_logp = ops.where(hit, ops.full_like(beam_logp, NEG), beam_logp)
    cand = ops.reshape(ops.expand_dims(alive_logp, 2) + ops.reshape(beam_logp, (b, k, per_beam)), (b, -1))
    top_logp, pick = ops.top_k(cand, 2 * k)
    pick = ops.cast(pick, "int32")
    token = ops.take_along_axis(ops.reshape(beam_ids, (b, -1)), pick, axis=1)
    return top_logp, pick // per_beam, token


def _initial_beams(b, k, bos_id, max_length, source_length):
    """The loop's start: ``(tokens, alive_seq, alive_logp, fin_seq, fin_score, alive_attn,
    fin_attn)`` for ``b`` sentences of ``k`` beams (attention of shape ``(1,)`` without a
    ``source_length``)."""
    tokens = ops.full((b * k,), bos_id, dtype="int32")
    alive_seq = ops.zeros((b, k, max_length), dtype="int32")
    # Only the first beam is live at the start, so the first step does not pick k copies of one token.
    first = ops.concatenate([ops.zeros((1, 1), "float32"), ops.full((1, k - 1), NEG, "float32")], axis=1)
    alive_logp = ops.repeat(first, b, axis=0) if k > 1 else ops.zeros((b, 1), "float32")
    fin_seq = ops.zeros((b, k, max_length), dtype="int32")
    fin_score = ops.full((b, k), NEG, "float32")
    if source_length is not None:
        alive_attn = ops.zeros((b, k, max_length, source_length), "float32")
        fin_attn = ops.zeros((b, k, max_length, source_length), "float32")
    else:
        alive_attn = fin_attn = ops.zeros((1,), "float32")
    return tokens, alive_seq, alive_logp, fin_seq, fin_score, alive_attn, fin_attn


def _next_attention(alive_attn, fin_attn, attn, i, origin, fin_pick, alive_pick, b, k):
    """The attention rows of step ``i``'s finished and live hypotheses, picked as their tokens are."""
    cand_attn = _gather_rows(alive_attn, origin, b, 2 * k)
    step_attn = _gather_rows(ops.reshape(ops.cast(attn, "float32"), (b, k, -1)), origin, b, 2 * k)
    cand_attn = _write(cand_attn, i, step_attn, 2)
    return (_gather_rows(ops.concatenate([fin_attn, cand_attn], axis=1), fin_pick, b, k),
            _gather_rows(cand_attn, alive_pick, b, k))


def beam_search(step, state, context, batch_size, bos_id, eos_id, max_length, beam_width, alpha=0.0,
                source_length=None, banned_ids=(), n_best=None):
    """Beam search over a batch: all sentences and all their beams advance together.

    Args:
        step, state, context, batch_size, bos_id, eos_id, max_length, source_length,
            banned_ids: as in ``greedy_search``.
        beam_width: hypotheses kept per sentence (>= 1).
        alpha: length-penalty exponent (>= 0).
        n_best: how many of the returned hypotheses must be final when the search stops
            early (default: all ``beam_width``). A sentence is done once its ``n_best``-th
            finished hypothesis beats anything a live one could still reach; asking for
            fewer lets a batch stop sooner (the rows after ``n_best`` may then be less
            complete than a longer search would make them).

    Returns:
        ``(tokens, scores, attention)``: int32 ``(batch, beam_width, max_length)``, the
        finished hypotheses of each sentence best first; float ``(batch, beam_width)`` their
        length-normalised scores; attention ``(batch, beam_width, max_length, source_length)``
        or None.
    """
    k = int(beam_width)
    b = batch_size
    state = [_tile(s, k) for s in state]
    context = [_tile(c, k) for c in context]
    n_state = len(state)
    with_attention = source_length is not None

    best_possible_penalty = length_penalty(max_length, alpha)
    final = k if n_best is None else max(1, min(int(n_best), k))

    def cond(i, tokens, alive_seq, alive_logp, fin_seq, fin_score, alive_attn, fin_attn, *state):
        # A sentence is done when its worst kept finished hypothesis beats the best any live
        # one could still reach (log-probabilities only fall; the penalty is largest at max_length).
        bound = alive_logp[:, 0] / best_possible_penalty
        done = ops.greater_equal(fin_score[:, final - 1], bound)
        return ops.logical_and(i < max_length, ops.logical_not(ops.all(done)))

    def body(i, tokens, alive_seq, alive_logp, fin_seq, fin_score, alive_attn, fin_attn, *state):
        log_probs, new_state, attn = step(tokens, list(state), context)
        # 2k candidates hold at least k that do not end in <eos> (each beam has one <eos>).
        top_logp, origin, token = _candidates(ops.cast(log_probs, "float32"), alive_logp, b, k, banned_ids)
        seq = _gather_rows(alive_seq, origin, b, 2 * k)
        seq = _write(seq, i, token, 2)
        is_eos = ops.equal(token, eos_id)
        finished = ops.logical_or(is_eos, ops.equal(i, max_length - 1))
        norm = top_logp / length_penalty(i + 1, alpha)
        cand_fin_score = ops.where(finished, norm, ops.full_like(norm, NEG))

        merged_score = ops.concatenate([fin_score, cand_fin_score], axis=1)
        fin_score_new, fin_pick = ops.top_k(merged_score, k)
        fin_pick = ops.cast(fin_pick, "int32")
        fin_seq_new = _gather_rows(ops.concatenate([fin_seq, seq], axis=1), fin_pick, b, k)

        alive_cand = ops.where(is_eos, ops.full_like(top_logp, NEG), top_logp)
        alive_logp_new, alive_pick = ops.top_k(alive_cand, k)
        alive_pick = ops.cast(alive_pick, "int32")
        alive_seq_new = _gather_rows(seq, alive_pick, b, k)
        next_tokens = ops.reshape(ops.take_along_axis(token, alive_pick, axis=1), (-1,))
        chosen_origin = ops.take_along_axis(origin, alive_pick, axis=1)
        flat_origin = ops.reshape(chosen_origin + ops.expand_dims(ops.arange(b, dtype="int32") * k, 1), (-1,))
        new_state = [ops.take(s, flat_origin, axis=0) for s in new_state]

        if with_attention:
            fin_attn, alive_attn = _next_attention(alive_attn, fin_attn, attn, i, origin, fin_pick, alive_pick, b, k)
        return (i + 1, next_tokens, alive_seq_new, alive_logp_new, fin_seq_new, fin_score_new, alive_attn, fin_attn, *new_state)

    beams = _initial_beams(b, k, bos_id, max_length, source_length)
    loop_vars = (ops.convert_to_tensor(0, "int32"), *beams, *state)
    out = ops.while_loop(cond, body, loop_vars)
    assert len(out) == 8 + n_state
    return out[4], out[5], (out[7] if with_attention else None)
