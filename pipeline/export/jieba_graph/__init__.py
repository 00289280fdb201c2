"""jieba 0.42.1 word segmentation rebuilt from stock TensorFlow ops.

``GraphJieba`` segments a 1-D ``tf.string`` batch inside a TensorFlow graph (no tensorflow-text,
no custom ops, no ``tf.py_function``) into exactly the words of ``Tokenizer.cut`` (HMM on or
off) or ``Tokenizer.cut_for_search``, with code-point offsets. Exact by construction: every
float jieba compares comes from the same IEEE float64 operations in the same order (Python
computes the weights ``log(freq) - log(total)`` at construction; the graph only adds), and every
``max`` applies Python's tuple tie-break explicitly (TF leaves ``argmax`` ties unspecified). The
sequential parts (calc's route, Viterbi, its backtrack) are ``tf.while_loop``s over positions,
vectorised over all blocks of the batch, sorted by length so that each step touches only those
still running: the work stays linear in the text length. The dictionary, HMM tables and
``finalseg.Force_Split_Words`` are a snapshot taken at construction (which runs eagerly).

Parts: ``rules`` (the jieba 0.42.1 character classes, state grammar and patterns reimplemented
here, the checks that the installed jieba still has them, and ``python_segment``, the Python
reference) and ``ops`` (linear-time TensorFlow building blocks); ``GraphJieba`` is here.
"""

from __future__ import annotations

import math

import numpy as np

from .ops import (
    _concat,
    _encode,
    _flags,
    _in_block,
    _is_alnum,
    _repeat,
    _row_ids,
    _shift_right,
    _step_layout,
    _step_slices,
    _ta,
    _tf,
)
from .rules import (
    _E,
    _HAN_HI,
    _HAN_LO,
    _PREV_STATUS,
    _S,
    _STATES,
    UnsupportedInGraph,
    _check_jieba,
    _check_mode,
    python_segment,
)

__all__ = ["GraphJieba", "UnsupportedInGraph", "python_segment"]


class GraphJieba:
    """jieba's accurate mode (Tokenizer.cut, HMM on or off) and search mode (cut_for_search) in TF ops.

    Args:
        tokenizer: an initialized ``jieba.Tokenizer`` (user dictionaries / ``add_word`` applied).
        hmm: jieba's ``HMM`` flag.
        mode: ``"accurate"`` or ``"search"``.

    Raises:
        UnsupportedInGraph: mode "full" (cut_all); a dictionary jieba cannot score either (total
            <= 0, a negative frequency); jieba's regular expressions or PrevStatus changed.
    """

    def __init__(self, tokenizer, hmm: bool = True, mode: str = "accurate"):
        _check_mode(mode)
        _check_jieba()
        tokenizer.check_initialized()
        self.hmm = bool(hmm)
        self.mode = mode
        self._build_dictionary(tokenizer.FREQ, tokenizer.total)
        self._build_hmm()

    def _build_dictionary(self, freq, total):
        """The table of words (truthy FREQ entries) and the get_DAG trie with its weights."""
        tf = _tf()
        if not total or total < 0:
            raise UnsupportedInGraph(f"jieba dictionary total {total!r}: log(total) is undefined")
        keys = [key for key in freq if key]  # "" is never looked up: fragments are not empty
        values = [freq[key] for key in keys]
        for key, value in zip(keys, values):
            if value and value < 0:
                raise UnsupportedInGraph(f"jieba word {key!r} has frequency {value}: log() fails")
        logtotal = math.log(total)
        self._fallback = math.log(1) - logtotal  # calc's `FREQ.get(char) or 1` for DAG [k]
        # The very Python expression calc() evaluates, so every float64 is bit-identical.
        logs = {value: math.log(value) - logtotal for value in set(values) if value}
        truthy = np.array([bool(value) for value in values], dtype=bool)
        key_t = tf.constant(keys, tf.string)
        words = tf.gather(key_t, np.flatnonzero(truthy))  # for FREQ.get(buf) and FREQ.get(gram)
        init = tf.lookup.KeyValueTensorInitializer(words, tf.ones(tf.shape(words), tf.int32))
        self._words = tf.lookup.StaticHashTable(init, default_value=0, name="jieba_words")
        # get_DAG as a trie walk: `frag in FREQ` for block[k:i + 1] is only asked once
        # block[k:i] was found, so get_DAG only ever sees keys whose every prefix is in FREQ.
        # Node ids: those words first, then their frequency-0 prefixes; the edge to a child is
        # keyed parent_id * 2**21 + code point (code points are below 2**21).
        parent, last = self._parents(key_t)
        reach = parent != -1
        while True:
            grown = reach & ((parent < 0) | reach[np.maximum(parent, 0)])
            if (grown == reach).all():
                break
            reach = grown
        order = np.concatenate([np.flatnonzero(reach & truthy), np.flatnonzero(reach & ~truthy)])
        self._n_nodes_words = int((reach & truthy).sum())
        self._root = len(order)
        new_id = np.zeros(len(keys), dtype=np.int64)
        new_id[order] = np.arange(len(order))
        up = parent[order]  # -2: a one-character key, a child of the root
        edges = np.where(up >= 0, new_id[np.maximum(up, 0)], self._root) * 2**21 + last[order]
        self._weights = np.array([logs[values[i]] for i in order[:self._n_nodes_words]],
                                 dtype=np.float64)
        init = tf.lookup.KeyValueTensorInitializer(
            tf.constant(edges, tf.int64), tf.range(len(order), dtype=tf.int32))
        self._trie = tf.lookup.StaticHashTable(init, default_value=-1, name="jieba_trie")

    @staticmethod
    def _parents(key_t):
        """Index of every key's key[:-1] among the keys (-1: absent, -2: one-character key) and
        every key's last code point, with TF ops (Python loops take seconds on 500k keys)."""
        tf = _tf()
        index = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
            key_t, tf.range(tf.size(key_t, out_type=tf.int64))), default_value=-1)
        cps = tf.strings.unicode_decode(key_t, "UTF-8")
        head = tf.strings.unicode_encode(cps[:, :-1], "UTF-8")
        parent = tf.where(cps.row_lengths() > 1, index.lookup(head), tf.constant(-2, tf.int64))
        last = tf.gather(cps.values, cps.row_splits[1:] - 1)
        return parent.numpy(), tf.cast(last, tf.int64).numpy()

    def _build_hmm(self):
        tf = _tf()
        from jieba import finalseg

        low = finalseg.MIN_FLOAT
        self._start = np.array([finalseg.start_P[y] for y in _STATES], dtype=np.float64)
        self._prev = [[_STATES.index(_PREV_STATUS[y][k]) for y in _STATES] for k in (0, 1)]
        self._trans = [np.array([finalseg.trans_P[_STATES[p]].get(y, low)
                                 for p, y in zip(self._prev[k], _STATES)], dtype=np.float64)
                       for k in (0, 1)]
        # The HMM only sees characters of finalseg.re_han: a dense table over that range
        # replaces emit_p[y].get(char, MIN_FLOAT).
        self._emit = np.full((_HAN_HI - _HAN_LO + 1, 4), low, dtype=np.float64)
        for j, y in enumerate(_STATES):
            for ch, p in finalseg.emit_P[y].items():
                if len(ch) == 1 and _HAN_LO <= ord(ch) <= _HAN_HI:
                    self._emit[ord(ch) - _HAN_LO, j] = p
        # A one-character word splits into itself anyway; only longer ones change the output.
        force = sorted(w for w in finalseg.Force_Split_Words if len(w) > 1)
        self._force_table = None
        if force:
            init = tf.lookup.KeyValueTensorInitializer(
                tf.constant(force, tf.string), tf.ones([len(force)], tf.int32))
            self._force_table = tf.lookup.StaticHashTable(init, 0, name="jieba_force_split")

    def trackables(self) -> dict:
        """The lookup tables ``{attribute_name: resource}`` to attach to the exporting tf.Module."""
        out = {"jieba_trie_table": self._trie, "jieba_words_table": self._words}
        if self._force_table is not None:
            out["jieba_force_split_table"] = self._force_table
        return out

    def __call__(self, text):
        """The words ``tf.RaggedTensor`` [batch, (n_words)] of ``segment``."""
        return self.segment(text)[0]

    def segment(self, text):
        """Segment a batch of texts.

        Args:
            text: 1-D ``tf.string`` of valid UTF-8.

        Returns:
            ``(words, starts, ends)``: ``tf.RaggedTensor`` [batch, (n_words)] of ``tf.string`` and
            two int64 ragged tensors of the same shape with each word's start / end (exclusive)
            offset in code points of its text. The words are those of ``tokenizer.cut(t, HMM=hmm)``
            (``cut_for_search`` in search mode), in order, whitespace words included.
        """
        tf = _tf()
        decoded = tf.strings.unicode_decode(tf.convert_to_tensor(text, tf.string), "UTF-8")
        cp, splits = decoded.values, decoded.row_splits
        n = tf.size(cp, out_type=tf.int64)
        rowids, first = _row_ids(splits, n)
        wstart = tf.where(self._word_starts(cp, first))[:, 0]
        bounds = tf.concat([wstart, [n]], 0)
        if self.mode == "search":
            wstart, wend, strings = self._search_grams(cp, wstart, bounds[1:])
        else:
            wend = bounds[1:]
            strings = tf.strings.unicode_encode(
                tf.RaggedTensor.from_row_splits(cp, bounds, validate=False), "UTF-8")
        row = tf.gather(rowids, wstart)
        base = tf.gather(splits, row)
        per_row = tf.math.unsorted_segment_sum(tf.ones_like(row), row, tf.size(splits) - 1)
        out_splits = tf.concat([[0], tf.cumsum(per_row)], 0)
        return tuple(tf.RaggedTensor.from_row_splits(v, out_splits, validate=False)
                     for v in (strings, wstart - base, wend - base))

    # -- accurate mode: one flag "a word starts here" per character ------------------------------

    def _word_starts(self, cp, first):
        """Whether a word of ``cut`` starts at each character of the flattened batch.

        ``cut`` partitions its text, so one flag per character describes it. Outside
        re_han_default blocks every character is a word, except that "\\r\\n" is one
        (re_skip_default's first alternative; any other \\s match is one character, just like a
        non-space, so the \\s set itself never matters). ``first``: True at each text's start.
        """
        tf = _tf()
        in_block = _in_block(cp)
        crlf = (cp == 10) & tf.equal(_shift_right(cp, -1), 13) & ~first
        block_first = in_block & (first | ~_shift_right(in_block, False))
        hpos = tf.where(in_block)[:, 0]
        han = self._block_starts(tf.gather(cp, hpos), tf.gather(block_first, hpos))
        # Back from block characters to all characters with a gather (cheaper than a scatter).
        hidx = tf.maximum(tf.cumsum(tf.cast(in_block, tf.int64)) - 1, 0)
        return tf.where(in_block, tf.gather(tf.concat([han, [False]], 0), hidx), ~crlf)

    def _block_starts(self, hcp, bfirst):
        """Word-start flags of the characters ``hcp`` (int32 [H]) of all re_han_default blocks,
        back to back; ``bfirst`` (bool [H]) is True at the first character of each block."""
        tf = _tf()
        h = tf.size(hcp, out_type=tf.int64)
        b_begin = tf.where(bfirst)[:, 0]
        b_end = tf.concat([b_begin, [h]], 0)[1:]
        end_of = tf.gather(b_end, tf.cumsum(tf.cast(bfirst, tf.int64)) - 1)
        weights = self._dag_weights(hcp, end_of - tf.range(h))
        length = self._route(weights, b_end, b_end - b_begin, end_of)
        on_route = self._walk(length, bfirst, end_of, b_end - b_begin)
        if not self.hmm:
            # __cut_DAG_NO_HMM: consecutive one-character [a-zA-Z0-9] route words form one word.
            eng = on_route & (length == 1) & _is_alnum(hcp)
            return on_route & ~(eng & _shift_right(eng, False) & ~bfirst)
        return self._hmm_block_starts(hcp, bfirst, on_route, length)

    def _dag_weights(self, hcp, left):
        """get_DAG with calc's weights, as a dense float64 [H, longest fragment] matrix.

        Entry [k, L - 1] is ``log(FREQ[w]) - logtotal`` for the word w of length L at k if
        FREQ[w] is truthy, else -inf; a position without a word gets the fallback DAG [k]. As in
        get_DAG, a position stops extending once its fragment is not in FREQ. ``left``: int64
        [H], characters from each position to the end of its block.
        """
        tf = _tf()
        h = tf.size(hcp, out_type=tf.int64)
        weights = tf.constant(self._weights)
        cp = tf.cast(hcp, tf.int64)

        def body(n, pos, node, left, ta_pos, ta_col, ta_w):
            n64 = tf.cast(n, tf.int64)
            node = self._trie.lookup(node * 2**21 + tf.gather(cp, pos + n64 - 1))
            word = tf.where((node >= 0) & (node < self._n_nodes_words))[:, 0]
            wpos = tf.gather(pos, word)
            ta_pos = ta_pos.write(n - 1, wpos)
            ta_col = ta_col.write(n - 1, tf.fill(tf.shape(wpos), n64 - 1))
            ta_w = ta_w.write(n - 1, tf.gather(weights, tf.gather(node, word)))
            keep = tf.where((node >= 0) & (left > n64))[:, 0]
            pos, node, left = (tf.gather(x, keep) for x in (pos, node, left))
            return n + 1, pos, tf.cast(node, tf.int64), left, ta_pos, ta_col, ta_w

        loop = tf.while_loop(
            lambda n, pos, *_: tf.size(pos) > 0, body,
            (tf.constant(1), tf.range(h), tf.fill([h], tf.constant(self._root, tf.int64)), left,
             _ta(tf.int64), _ta(tf.int64), _ta(tf.float64)),
            shape_invariants=(tf.TensorShape([]),) + (tf.TensorShape([None]),) * 3
            + (tf.TensorShape(None),) * 3)
        width = tf.cast(tf.maximum(loop[0] - 1, 1), tf.int64)
        pos, col, w = (_concat(ta) for ta in loop[4:])
        dense = tf.math.unsorted_segment_max(w, pos * width + col, h * width)
        # Cells without a word come out as the lowest float64: make them -inf.
        dense = tf.reshape(tf.where(dense > np.finfo(np.float64).min, dense, -np.inf), [h, width])
        first = tf.where(_flags(pos, h), dense[:, 0], tf.constant(self._fallback, tf.float64))
        return tf.concat([first[:, None], dense[:, 1:]], 1)

    def _route(self, weights, b_end, b_len, end_of):
        """calc(): the length of the best word at every block position, right to left.

        Step j handles position ``end - 1 - j`` of every block longer than j (blocks sorted
        longest first, so a prefix of them); each block keeps a window with the route values of
        its next ``width`` positions (route[N] = 0 first). The loop only does the max-plus step;
        which x attains the max is found afterwards from the same float64 sums.

        Returns:
            int32 [H]: x + 1 - k for route[k] = (prob, x).
        """
        tf = _tf()
        h = tf.shape(weights, out_type=tf.int64)[0]
        width = tf.shape(weights)[1]
        order = tf.argsort(-b_len, stable=True)
        counts, offsets, seq, step = _step_layout(tf.gather(b_len, order))
        pos = tf.gather(tf.gather(b_end, order), seq) - 1 - step
        cand = tf.gather(weights, pos)  # the candidate weights of every step, step by step
        begin, size = _step_slices(counts, offsets)

        def body(j, win, ta):
            rows = tf.gather(size, j)
            win = tf.slice(win, tf.zeros([2], tf.int64), rows)
            best = tf.reduce_max(tf.slice(cand, tf.gather(begin, j), rows) + win, 1, keepdims=True)
            return j + 1, tf.concat([best, win[:, :-1]], 1), ta.write(j, tf.reshape(best, [-1]))

        loop = tf.while_loop(
            lambda j, *_: tf.gather(counts, j) > 0, body,
            (tf.constant(0), tf.zeros(tf.stack([counts[0], tf.cast(width, tf.int64)]),
                                      tf.float64), _ta(tf.float64)),
            shape_invariants=(tf.TensorShape([]), tf.TensorShape([None, None]),
                              tf.TensorShape(None)))
        route = tf.gather(_concat(loop[2]), tf.math.invert_permutation(pos))
        # log(FREQ) - logtotal + route[x + 1][0] again, with route[N] = 0 at the block end.
        after = tf.range(h)[:, None] + tf.range(1, tf.cast(width, tf.int64) + 1)
        nxt = tf.gather(tf.concat([route, [0.0]], 0), tf.minimum(after, h))
        score = weights + tf.where(after >= end_of[:, None], tf.constant(0.0, tf.float64), nxt)
        # Python's max over (prob, x) tuples: among equal probs, the largest x.
        lengths = tf.range(1, width + 1)
        return tf.reduce_max(tf.where(tf.equal(score, route[:, None]), lengths, 0), 1)

    def _walk(self, length, bfirst, end_of, b_len):
        """The first characters of the route words: the chain k -> k + length[k] of each block.

        Pointer doubling: after i rounds ``reached`` holds the first 2**i words of every chain,
        so ceil(log2(longest block)) rounds of O(H) work replace a sequential walk.
        """
        tf = _tf()
        h = tf.size(length, out_type=tf.int64)
        nxt = tf.range(h) + tf.cast(length, tf.int64)
        nxt = tf.concat([tf.where(nxt >= end_of, h, nxt), [h]], 0)  # h: past the block's end

        def body(span, reached, nxt):
            hit = tf.math.unsorted_segment_max(tf.cast(reached, tf.int32), nxt, h + 1) > 0
            return span * 2, reached | hit, tf.gather(nxt, nxt)

        loop = tf.while_loop(lambda span, *_: span < tf.reduce_max(tf.concat([b_len, [0]], 0)),
                             body, (tf.constant(1, tf.int64), tf.concat([bfirst, [False]], 0), nxt))
        return loop[1][:-1]

    # -- HMM mode: buffers of one-character route words, finalseg, Viterbi ------------------------

    def _hmm_block_starts(self, hcp, bfirst, on_route, length):
        """__cut_DAG: runs of one-character route words form a buffer, flushed like jieba does:
        one character is a word, a dictionary word (truthy FREQ) yields its characters, anything
        else goes to finalseg.cut."""
        tf = _tf()
        single = on_route & (length == 1)
        buf_first = single & ~(_shift_right(single, False) & ~bfirst)
        bid = tf.maximum(tf.cumsum(tf.cast(buf_first, tf.int64)) - 1, 0)
        spos = tf.where(single)[:, 0]
        begin = tf.where(buf_first)[:, 0]
        bufs = tf.RaggedTensor.from_value_rowids(tf.gather(hcp, spos), tf.gather(bid, spos),
                                                 nrows=tf.size(begin, out_type=tf.int64),
                                                 validate=False)
        strings = tf.strings.unicode_encode(bufs, "UTF-8")
        per_char = (self._words.lookup(strings) > 0) | tf.equal(bufs.row_lengths(), 1)
        starts = (on_route & (length > 1)) | buf_first
        starts |= single & tf.gather(tf.concat([per_char, [False]], 0), bid)
        pick = tf.where(~per_char)[:, 0]
        return starts | self._finalseg_starts(tf.gather(strings, pick), tf.gather(begin, pick), hcp)

    def _finalseg_starts(self, bufs, begin, hcp):
        """finalseg.cut of each buffer: re_han pieces go to the HMM, the rest is split by re_skip.

        Two RE2 rewrites delimit the pieces with \\x01 (which cannot occur in a block) and tag the
        Han ones with \\x02. The patterns are finalseg's: RE2's leftmost-first matching with
        greedy quantifiers picks the same matches as Python's re, and only ASCII digits occur in
        a buffer, so [0-9] is \\d there.
        """
        tf = _tf()
        h = tf.size(hcp, out_type=tf.int64)
        marked = tf.strings.regex_replace(bufs, "([\\x{4E00}-\\x{9FD5}]+)", "\x01\x02\\1\x01")
        marked = tf.strings.regex_replace(marked, "([a-zA-Z0-9]+(?:\\.[0-9]+)?%?)", "\x01\\1\x01")
        pieces = tf.strings.split(marked, "\x01")
        values = pieces.values
        is_han = tf.equal(tf.strings.substr(values, 0, 1), "\x02")
        size = tf.cast(tf.strings.length(values, unit="UTF8_CHAR"), tf.int64)
        size -= tf.cast(is_han, tf.int64)
        offset = tf.cumsum(size, exclusive=True)
        row = _row_ids(pieces.row_splits, tf.size(values, out_type=tf.int64))[0]
        offset -= tf.gather(tf.gather(tf.concat([offset, [0]], 0), pieces.row_splits[:-1]), row)
        pos = tf.gather(begin, row) + offset
        real = size > 0  # re.split leaves "" between adjacent matches; cut skips them
        starts = _flags(tf.gather(pos, tf.where(real)[:, 0]), h)
        seg = tf.where(real & is_han)[:, 0]
        return starts | self._viterbi_starts(hcp, tf.gather(pos, seg), tf.gather(size, seg))

    def _viterbi_starts(self, hcp, seg_begin, seg_len):
        """finalseg.__cut of every Han piece: word-start flags from its Viterbi state path.

        After the first character the path follows PrevStatus (B, M -> M, E; E, S -> B, S) and
        the final state is E or S, so each E or S ends a word, the next word begins right after
        it, and __cut never has a remainder. Force_Split_Words then splits whole HMM words.
        """
        tf = _tf()
        h = tf.size(hcp, out_type=tf.int64)
        order = tf.argsort(-seg_len, stable=True)
        begin, lengths = tf.gather(seg_begin, order), tf.gather(seg_len, order)
        layout = _step_layout(lengths)
        pos = tf.gather(begin, layout[2]) + layout[3]
        states = self._viterbi(tf.gather(hcp, pos), lengths, layout)
        ends = _flags(tf.gather(pos, tf.where((states == _E) | (states == _S))[:, 0]), h)
        inside = _flags(pos, h)
        starts = inside & (_shift_right(ends, False) | _flags(begin, h))
        if self._force_table is None:
            return starts
        ipos = tf.where(inside)[:, 0]
        wid = tf.cumsum(tf.cast(tf.gather(starts, ipos), tf.int64)) - 1
        words = tf.strings.unicode_encode(tf.RaggedTensor.from_value_rowids(
            tf.gather(hcp, ipos), wid, validate=False), "UTF-8")
        forced = tf.gather(self._force_table.lookup(words) > 0, wid)
        return starts | _flags(tf.gather(ipos, tf.where(forced)[:, 0]), h)

    def _viterbi(self, obs, lengths, layout):
        """finalseg.viterbi of all pieces at once; ``obs`` and the result are in step layout.

        The loop only computes V (the max of two candidates is the same float whichever wins);
        the back pointers are recomputed afterwards from the stored V with the same additions.

        Returns:
            int32 [n_chars]: the state of every piece character, in step layout.
        """
        tf = _tf()
        counts, offsets, seq, step = layout
        em = tf.gather(tf.constant(self._emit),
                       tf.clip_by_value(obs - _HAN_LO, 0, _HAN_HI - _HAN_LO))
        em8 = tf.concat([em, em], 1)  # both predecessors of each state side by side
        prev8 = tf.constant(self._prev[0] + self._prev[1], tf.int32)
        trans8 = tf.constant(np.concatenate(self._trans))
        begin, size = _step_slices(counts, offsets)

        def body(t, v, ta):
            rows = tf.gather(size, t)
            v = tf.slice(v, tf.zeros([2], tf.int64), rows)
            # V[t-1][y0] + trans_p[y0][y] + em_p, left to right as Python adds it.
            cand = tf.gather(v, prev8, axis=1) + trans8 + tf.slice(em8, tf.gather(begin, t), rows)
            v = tf.reduce_max(tf.reshape(cand, [-1, 2, 4]), 1)
            return t + 1, v, ta.write(t, tf.reshape(v, [-1]))

        v0 = tf.constant(self._start) + em[:counts[0]]
        loop = tf.while_loop(
            lambda t, *_: tf.gather(counts, t) > 0, body,
            (tf.constant(1), v0, _ta(tf.float64).write(0, tf.reshape(v0, [-1]))),
            shape_invariants=(tf.TensorShape([]), tf.TensorShape([None, 4]), tf.TensorShape(None)))
        v = tf.reshape(_concat(loop[2]), [-1, 4])
        # Back pointers (steps >= 1): max over (prob, y0) tuples, equal probs -> larger letter.
        prev_row = tf.maximum(tf.range(tf.size(seq, out_type=tf.int64)) - tf.gather(offsets, step)
                              + tf.gather(offsets, tf.maximum(step - 1, 0)), 0)
        a, b = tf.split(tf.reshape(tf.gather(tf.gather(v, prev_row), prev8, axis=1) + trans8 + em8,
                                   [-1, 2, 4]), 2, axis=1)
        prev_a, prev_b = (tf.constant(p, tf.int32) for p in self._prev)
        bp = tf.where(a[:, 0] > b[:, 0], prev_a,
                      tf.where(b[:, 0] > a[:, 0], prev_b, tf.maximum(prev_a, prev_b)))
        return self._backtrack(v, bp, lengths, counts, offsets)

    def _backtrack(self, v, bp, lengths, counts, offsets):
        """Follow the back pointers from each piece's last step to its first (right to left)."""
        tf = _tf()
        # The final state of each piece: max((V[E], 'E'), (V[S], 'S')) at its last step.
        v_last = tf.gather(v, tf.gather(offsets, tf.maximum(lengths - 1, 0)) + tf.range(counts[0]))
        final = tf.where(v_last[:, _S] >= v_last[:, _E], _S, _E)
        begin, size = _step_slices(counts, offsets)
        joins = tf.stack([counts[1:], counts[:-1] - counts[1:]], 1)  # pieces ending at step t

        def body(t, carry, ta):
            join = tf.gather(joins, t)
            cur = tf.concat([carry, tf.slice(final, join[:1], join[1:])], 0)
            carry = tf.gather(tf.slice(bp, tf.gather(begin, t), tf.gather(size, t)), cur,
                              batch_dims=1)
            return t - 1, carry, ta.write(t, cur)

        first = tf.cast(tf.reduce_max(tf.concat([lengths, [0]], 0)), tf.int32) - 1
        loop = tf.while_loop(
            lambda t, *_: t >= 0, body, (first, tf.zeros([0], tf.int32), _ta(tf.int32)),
            shape_invariants=(tf.TensorShape([]), tf.TensorShape([None]), tf.TensorShape(None)))
        return _concat(loop[2])

    # -- search mode -------------------------------------------------------------------------------

    def _search_grams(self, cp, wstart, wend):
        """cut_for_search: before each word its dictionary 2-grams, then 3-grams, in order.

        All candidates (every n-gram of the words longer than n, then the word) are laid out in
        cut_for_search's order; the n-grams without a truthy FREQ are then dropped.
        """
        tf = _tf()
        size = wend - wstart
        k2 = tf.where(size > 2, size - 1, 0)
        k3 = tf.where(size > 3, size - 2, 0)
        count = k2 + k3 + 1
        wid = _repeat(tf.range(tf.size(size, out_type=tf.int64)), count)
        j = tf.range(tf.reduce_sum(count)) - tf.gather(tf.cumsum(count, exclusive=True), wid)
        k2, k3 = tf.gather(k2, wid), tf.gather(k3, wid)
        is2 = j < k2
        is3 = ~is2 & (j < k2 + k3)
        offset = tf.where(is2, j, tf.where(is3, j - k2, 0))
        two, three = tf.constant(2, tf.int64), tf.constant(3, tf.int64)
        length = tf.where(is2, two, tf.where(is3, three, tf.gather(size, wid)))
        start = tf.gather(wstart, wid) + offset
        strings = _encode(cp, start, length)
        keep = tf.where((~is2 & ~is3) | (self._words.lookup(strings) > 0))[:, 0]
        start, length, strings = (tf.gather(x, keep) for x in (start, length, strings))
        return start, start + length, strings
