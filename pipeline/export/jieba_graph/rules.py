"""What of jieba 0.42.1 the graph segmenter reimplements, and the Python reference it must equal.

The character classes, the HMM's state grammar and the regular expressions are jieba's own;
``_check_jieba`` refuses an installed jieba whose patterns or ``PrevStatus`` were changed, and
``python_segment`` gives jieba's words with the offsets ``GraphJieba`` reports.
"""

from __future__ import annotations

from stages.errors import UnsupportedInGraph

_HAN_LO, _HAN_HI = 0x4E00, 0x9FD5  # jieba's Han range, in re_han_default and finalseg.re_han
_BLOCK_PUNCT = "+#&._%-"  # the non-alphanumeric ASCII that re_han_default keeps in blocks
# States in alphabetical order: "the larger letter" (Python's tie-break between two
# (prob, state) tuples with equal probs) is then simply the larger index.
_STATES = "BEMS"
_B, _E, _M, _S = range(4)
# jieba's fixed predecessor sets; word boundaries are derived from them (see _viterbi_starts).
_PREV_STATUS = {"B": "ES", "M": "MB", "S": "SE", "E": "BM"}
_MODES = ("accurate", "search")
# The jieba 0.42.1 patterns reimplemented here (users sometimes monkeypatch them).
_PATTERNS = {"re_han_default": "([\u4E00-\u9FD5a-zA-Z0-9+#&\\._%\\-]+)",
             "re_skip_default": "(\r\n|\\s)", "re_eng": "[a-zA-Z0-9]",
             "finalseg.re_han": "([\u4E00-\u9FD5]+)",
             "finalseg.re_skip": "([a-zA-Z0-9]+(?:\\.\\d+)?%?)"}




def _check_mode(mode):
    if mode == "full":
        raise UnsupportedInGraph(
            "tokenizer mode: full (jieba cut_all) cannot run in the TensorFlow graph; "
            "use mode: accurate or search to export")
    if mode not in _MODES:
        raise ValueError(f"unknown jieba mode {mode!r}; expected one of accurate, search, full")


def _check_jieba():
    import jieba
    from jieba import finalseg

    for name, expected in _PATTERNS.items():
        owner = finalseg if name.startswith("finalseg.") else jieba
        if getattr(owner, name.split(".")[-1]).pattern != expected:
            raise UnsupportedInGraph(f"jieba.{name} was changed; the graph reimplements jieba "
                                     f"0.42.1's {expected!r} only")
    if dict(finalseg.PrevStatus) != _PREV_STATUS:
        raise UnsupportedInGraph("jieba.finalseg.PrevStatus was changed; the graph reimplements "
                                 "jieba's own BMES grammar only")


def python_segment(tokenizer, text, hmm=True, mode="accurate"):
    """jieba's words for ``text`` with code-point offsets: the reference for ``GraphJieba``.

    Args:
        tokenizer: an initialized ``jieba.Tokenizer``.
        text: a ``str``.
        hmm: jieba's ``HMM`` flag.
        mode: ``"accurate"`` (``cut``) or ``"search"`` (``cut_for_search``).

    Returns:
        ``[(word, start, end), ...]``, ``end`` exclusive; a search-mode n-gram's offsets are where
        cut_for_search takes it from inside its accurate-mode parent word.
    """
    _check_mode(mode)
    out, start = [], 0
    for word in tokenizer.cut(text, HMM=hmm):
        width = len(word)
        if mode == "search":
            for n in (2, 3):
                if width > n:
                    for i in range(width - n + 1):
                        if tokenizer.FREQ.get(word[i:i + n]):
                            out.append((word[i:i + n], start + i, start + i + n))
        out.append((word, start, start + width))
        start += width
    return out
