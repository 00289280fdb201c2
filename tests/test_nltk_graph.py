"""The in-graph nltk tokenizers (pipeline/export/nltk_graph.py) against nltk itself.

Every comparison is token for token and offset for offset (``token_spans``), on hand cases,
seeded fuzz text and the real corpora under ``../shared/data``; each test prints how many rows
and tokens it compared (``pytest -s``). The full corpora and the larger fuzz run are ``slow``.
"""

from __future__ import annotations

import functools
import json
import os
import random
import string
import subprocess
import sys
import time
from pathlib import Path

import pytest

tf = pytest.importorskip("tensorflow")
pytest.importorskip("nltk")

from nltk.tokenize import (  # noqa: E402
    NLTKWordTokenizer,
    RegexpTokenizer,
    TreebankWordTokenizer,
    WordPunctTokenizer,
)

from pipeline.export.nltk_graph import GraphNLTK, UnsupportedInGraph, token_spans  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
METHODS = ("word", "treebank", "wordpunct")
BOOK_PATTERN = r"""(?x)          # the nltk book's verbose pattern
      (?:[A-Z]\.)+               # abbreviations, e.g. U.S.A.
    | \w+(?:-\w+)*               # words with optional internal hyphens
    | \$?\d+(?:\.\d+)?%?         # currency and percentages
    | \.\.\.                     # ellipsis
    | [][.,;"'?():-_`]           # separate tokens, ] and [ included
"""
PATTERNS = (
    r"\w+",
    r"[A-Za-z]+|\d+(?:\.\d+)?|\S",
    r"\$?\d+(\.\d+)?%?|\w+|[^\w\s]+",  # one capturing group: findall returns the group
    BOOK_PATTERN,
    r"(?i)[a-z]+(?:'[a-z]+)?|\S",
    r"^\w+|\w+$|(?m:^)\S|\A.|.\Z",
    r".+?(?:\n|\Z)",
    r"\w{2,3}?",
    r"[Ss]|[Kk]|x",  # RE2 would add U+017F / U+212A to [Ss]|x without the class guard
    r"S|s|K|k|x",
    r"(?i:straße|k)|(?-s:.)",  # scoped flags
    r"[^\W\d_]+|\d+|[^\w\s]",
)

HAND = [
    "Good muffins cost $3.88\nin New York.  Please buy me\ntwo of them.\nThanks.",
    "They'll save and invest more. hi, my name can't hello,",
    "can't cannot CANNOT cannot cannot gonna gimme lemme gotta d'ye more'n wanna wanna  wanna\x1c",
    "'tis 'Tis 'tis 'TWAS'TWAS+t 'twas, 'tıs 'tİs I'm you're we've they'd he's she'll isn't",
    "rock 'n' roll 'n 'em 'sup 'ſs 'ſx 'x '1 _'a x'y ''a",
    '"quoted" text, he said "hi" ("x") ["y"] {"z"} <"w">',
    "''double'' quotes and ``already`` backticks ```x``` and `single'",
    "«guillemets» “curly” ‘single’ „low“ a’s ’tis",
    "ellipsis... and.. more.... end...",
    'trailing closers."', 'trailing closers.)"', "trailing spaces.   ", "trailing newline.\n",
    "trailing mixed. \t\n ", 'quote close.")  \n', "x.\n\n", "no period", "..", ".", '."',
    "a:b a: b 3:4 x,y 3,5 1,000 end:", "end,", "end,\n", "end:\n ", ":,", ",,a", "::1",
    "a--b -- c---d", "(parens) [brackets] {braces} <angles>", "$3.88 50% #tag @me a&b c;d",
    "what?! yes! *stars* a‒b c–d e—f g―h",
    "emoji 😀👍🏽 here, and 中文文本。全角，标点！ and 日本語",
    "accented é café naïve e\u0301 a\u0308 combining\u20dd",
    "U+017F ſ, Kelvin \u212a, dotted \u0130stanbul, dotless ı, ǅ titlecase, Straße ẞ",
    "tabs\tand\nnewlines\r\nand\x0bvt\x0cff\x1cfs\x1dgs\x1ers\x1fus\x85nel\u00a0nbsp\u2028ls",
    "\u3000ideographic\u2003em\u200bzwsp\u180emvs\ufeffbom",
    "", " ", "   ", "\n", "\t\n\x1c\u3000",
    "'", "''", '"', "``", "'''", "\"'", "'\"", "a'", "'a", "x'' 's 'S 'm 'D 'll 'LL 'Re",
    "don't DON'T won't can't", "n't N'T",
    "nul\x00char \ufffd \ufffe\uffff \U0010ffff \U0001d400 math",
]


@functools.lru_cache(maxsize=None)
def graph(method, pattern=None):
    return GraphNLTK(method, pattern)


@functools.lru_cache(maxsize=None)
def python_tokenize(method, pattern=None):
    return {
        "word": NLTKWordTokenizer().tokenize,
        "treebank": TreebankWordTokenizer().tokenize,
        "wordpunct": WordPunctTokenizer().tokenize,
        "regexp": lambda text: RegexpTokenizer(pattern).tokenize(text),
    }[method]


def _span_ok(method, text, tok, start, end):
    """What each offset must cover: the token itself, except the quote rewrites (word/treebank)
    and the group token of a one-group regexp (inside its match)."""
    piece = text[start:end]
    if method in ("word", "treebank"):
        return piece == tok or (piece == '"' and tok in ("``", "''")) or (piece == "''" and tok == "``")
    return piece == tok or tok in piece


def check(method, texts, pattern=None, label="", batch=2048):
    """Compare GraphNLTK.segment with nltk and token_spans on every text; return the counts."""
    g, py = graph(method, pattern), python_tokenize(method, pattern)
    bad, ntok = [], 0
    for i in range(0, len(texts), batch):
        chunk = texts[i:i + batch]
        toks, starts, ends = g.segment(tf.constant(chunk, tf.string))
        for text, t, s, e in zip(chunk, toks.to_list(), starts.to_list(), ends.to_list()):
            got = [x.decode("utf-8") for x in t]
            exp = py(text)
            ntok += len(exp)
            spans = list(zip(s, e))
            if got != exp or spans != token_spans(method, text, exp, pattern) or not all(
                    _span_ok(method, text, tok, a, b) for tok, (a, b) in zip(exp, spans)):
                bad.append((text, got, exp, spans))
    assert not bad, f"{len(bad)} of {len(texts)} rows differ, e.g. {bad[:3]}"
    print(f"\n[nltk_graph] {method}{' ' + repr(pattern) if pattern else ''} {label}: "
          f"{len(texts)} rows, {ntok} tokens, all match")
    return len(texts), ntok


# ----------------------------------------------------------------------------------------------
# Generated text

SPACES = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF and chr(c).isspace()]
SPACES += ["\u200b", "\u180e", "\ufeff"]  # not spaces for str.isspace()
PIECES = (
    list(string.ascii_letters) * 2 + list("éßſKİıǅΣσςЖжñ") + ["\u0301", "\u0308", "\u20dd"]
    + list(string.digits) + list("٣०") + list(string.punctuation) * 3 + list("«»“”‘’„")
    + ["\u2012", "\u2013", "\u2014", "\u2015"] + list("中文日本語。，") + ["😀", "👍🏽"]
    + ["can", "not", "cannot", "CanNot", "gonna", "gimme", "lemme", "gotta", "d'ye", "more'n",
       "wanna", "'t", "is", "was", "'tis", "'TWAS", "'tıs", "n't", "'s", "'S", "'ll", "'re", "'ve",
       "'m", "'d", "'n", "'em", "``", "''", '"', "...", "..", "--", "'", "'ſ", "x'", "I'm",
       "don't", "$3.88", "3,5", "a:b", ",", ":"]
)
DENSE = ["'tis", "'TWAS", "'twas", "'t", "'T", "is", "was", "cannot", "CANNOT", "can", "not",
         "wanna", "gonna", "gimme", "gotta", "lemme", "d'ye", "more'n", "'", "''", '"', " ", "  ",
         "\x1c", "\t", "\n", ",", "x", "s", "ſ", "İs", "'ſ", "n't", "'s", "'ll", "'re", "'RE",
         "'m", "'ve", "'d", "'n", "'x", "'1", "_", "(", ".", "...", ")", '."']
ENDINGS = [".", '."', '.)"', ". ", ".\n", ". \n ", "'", ":", ",\n", '"', ".'\n", ".»", ".’ "]


def fuzz_text(rng):
    out = []
    for _ in range(rng.choice([0, 1, 2, 3, 5, 8, 13, 21, 40])):
        if rng.random() < 0.25:
            out.append(rng.choice(SPACES[:7]) if rng.random() < 0.7 else rng.choice(SPACES))
        else:
            out.append(rng.choice(PIECES))
    text = "".join(out)
    return text + rng.choice(ENDINGS) if rng.random() < 0.3 else text


def dense_text(rng):
    """Contractions and quotes packed together, so that their contexts overlap."""
    return "".join(rng.choice(DENSE) for _ in range(rng.randrange(0, 20)))


def fuzz_rows(n, seed, make=fuzz_text):
    rng = random.Random(seed)
    return [make(rng) for _ in range(n)]


# ----------------------------------------------------------------------------------------------
# Exactness


@pytest.mark.parametrize("method", METHODS)
def test_hand_cases(method):
    check(method, HAND, label="hand cases")
    check(method, [t.lower() for t in HAND], label="hand cases, lower-cased")


@pytest.mark.parametrize("method", METHODS)
def test_fuzz(method):
    check(method, fuzz_rows(2000, seed=11), label="fuzz")
    check(method, [t.lower() for t in fuzz_rows(500, seed=12)], label="fuzz, lower-cased")


@pytest.mark.parametrize("method", ("word", "treebank"))
def test_dense_contractions(method):
    check(method, fuzz_rows(3000, seed=13, make=dense_text), label="dense contractions")


@pytest.mark.parametrize("pattern", PATTERNS)
def test_regexp(pattern):
    check("regexp", HAND, pattern, label="hand cases")
    check("regexp", fuzz_rows(600, seed=14), pattern, label="fuzz")


def test_capturing_group_tokens_are_the_group():
    """RegexpTokenizer's findall returns group 1 (or '' when it did not take part); the offsets
    are those of the whole match, as nltk's span_tokenize."""
    pattern = r"\$?\d+(\.\d+)?%?|\w+|[^\w\s]+"
    toks, starts, ends = graph("regexp", pattern).segment(tf.constant(["cost $3.88 now"]))
    assert [t.decode() for t in toks[0].numpy()] == ["", ".88", ""]
    assert list(zip(starts[0].numpy(), ends[0].numpy())) == [(0, 4), (5, 10), (11, 14)]


def test_second_contraction_pass_is_needed_and_exact():
    """Neighbouring contractions share their context characters (see _contraction_rules)."""
    texts = ["cannot cannot cannot", " 'tis 'tis 'tis", "'TWAS'TWAS+t", "wanna wanna wanna ",
             "gonna,gonna.gonna", "x 'tis'tis 'twas 'twas"]
    for method in ("word", "treebank"):
        check(method, texts, label="shared contexts")
    assert TreebankWordTokenizer().tokenize("'TWAS'TWAS+t") == ["'T", "WAS", "'TWAS+t"]
    assert TreebankWordTokenizer().tokenize("cannot cannot") == ["can", "not", "can", "not"]


@pytest.mark.parametrize("method", METHODS + ("regexp",))
def test_long_rows(method):
    """100,000-character rows (linear work; a quadratic step would take minutes here)."""
    pattern = PATTERNS[1] if method == "regexp" else None
    rng = random.Random(3)
    words = ["can't", "cannot", "'tis", "hello", "world.", '"quoted"', "(x)", "3.88", "a,b", "--",
             "...", "'s", "I'm", "é\u0301", "中文", "😀", "'", "\x1c", "\n"]
    mixed = " ".join(rng.choice(words) for _ in range(25000))[:100_000]
    rows = [mixed, "'" * 100_000, "a." * 50_000]
    t0 = time.perf_counter()
    check(method, rows, pattern, label="100,000-character rows")
    assert time.perf_counter() - t0 < 60


@pytest.mark.parametrize("method", METHODS + ("regexp",))
def test_empty_inputs(method):
    g = graph(method, PATTERNS[0] if method == "regexp" else None)
    toks, starts, ends = g.segment(tf.zeros([0], tf.string))
    assert toks.shape[0] == 0 and starts.shape[0] == 0 and ends.shape[0] == 0
    toks, starts, ends = g.segment(tf.constant(["", " \n\t", ""]))
    assert toks.to_list() == [[], [], []] and starts.to_list() == [[], [], []]
    assert g(tf.constant(["", "a"])).to_list() == [[], [b"a"]]


# ----------------------------------------------------------------------------------------------
# Real text


def _corpora():
    files = {
        "sst2": (DATA / "sst2" / "train.txt", lambda line: line.split(" ", 1)[1] if " " in line else ""),
        "multi30k.en": (DATA / "multi30k" / "train.en", lambda line: line),
        "multi30k.de": (DATA / "multi30k" / "train.de", lambda line: line),
        "cmn_eng.en": (DATA / "cmn_eng" / "train.tsv", lambda line: line.split("\t")[0]),
    }
    out = {}
    for name, (path, take) in files.items():
        if path.is_file():
            out[name] = [take(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return out


@pytest.fixture(scope="module")
def corpora():
    found = _corpora()
    if not found:
        pytest.skip(f"no corpora under {DATA}")
    return found


@pytest.mark.parametrize("method", METHODS)
def test_corpora_slice(method, corpora):
    for name, lines in corpora.items():
        check(method, lines[:200], label=f"{name} first 200 lines")
        check(method, [t.lower() for t in lines[:200]], label=f"{name} first 200 lines, lower-cased")


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_corpora_full(method, corpora):
    for name, lines in corpora.items():
        check(method, lines, label=f"{name} all lines")
        check(method, [t.lower() for t in lines], label=f"{name} all lines, lower-cased")


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_fuzz_large(method):
    check(method, fuzz_rows(30000, seed=21), label="large fuzz")
    if method != "wordpunct":
        check(method, fuzz_rows(30000, seed=22, make=dense_text), label="large dense contractions")


@pytest.mark.slow
@pytest.mark.parametrize("pattern", PATTERNS)
def test_regexp_large(pattern):
    check("regexp", fuzz_rows(10000, seed=23), pattern, label="large fuzz")


# ----------------------------------------------------------------------------------------------
# SavedModel

_LOADER = """
import json, sys
import tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
texts = json.loads(sys.argv[2])
out = {}
for name in sys.argv[3:]:
    r = getattr(model, name)(tf.constant(texts, tf.string))
    out[name] = [r["tokens"].to_list(), r["starts"].to_list(), r["ends"].to_list()]
bad = [m for m in ("pipeline", "stages", "nltk", "regex") if m in sys.modules]
print(json.dumps({"bad_modules": bad,
                  "out": {k: [[[t.decode() for t in row] for row in v[0]], v[1], v[2]]
                          for k, v in out.items()}}))
"""


def _module(specs):
    module = tf.Module()
    for name, (method, pattern) in specs.items():
        g = graph(method, pattern)
        for attr, resource in g.trackables().items():
            setattr(module, f"{name}_{attr}", resource)

        def make(g):
            def segment(text):
                toks, starts, ends = g.segment(text)
                return {"tokens": toks, "starts": starts, "ends": ends}
            return segment

        fn = tf.function(make(g), input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
        setattr(module, name, fn)
    return module


def _save_and_expect(tmp_path, specs, texts):
    path = str(tmp_path / "nltk_graph")
    tf.saved_model.save(_module(specs), path)
    expected = {}
    for name, (method, pattern) in specs.items():
        toks = [python_tokenize(method, pattern)(t) for t in texts]
        spans = [token_spans(method, t, k, pattern) for t, k in zip(texts, toks)]
        expected[name] = [toks, [[a for a, _ in s] for s in spans], [[b for _, b in s] for s in spans]]
    return path, expected


def test_saved_model_round_trip(tmp_path):
    """word (regex rules + the code-point mask step) and a one-group regexp (findall)."""
    specs = {"word": ("word", None), "regexp": ("regexp", PATTERNS[2])}
    texts = HAND[:12] + fuzz_rows(40, seed=31) + ["", "  "]
    path, expected = _save_and_expect(tmp_path, specs, texts)
    loaded = tf.saved_model.load(path)
    for name in specs:
        r = getattr(loaded, name)(tf.constant(texts))
        got = [[[t.decode() for t in row] for row in r["tokens"].to_list()],
               r["starts"].to_list(), r["ends"].to_list()]
        assert got == expected[name], name
        assert getattr(loaded, name)(tf.zeros([0], tf.string))["tokens"].shape[0] == 0
    print(f"\n[nltk_graph] SavedModel: {len(texts)} rows x {len(specs)} methods match after load")


@pytest.mark.slow
def test_saved_model_in_a_tensorflow_only_process(tmp_path):
    """Every method, loaded by a fresh interpreter that imports only TensorFlow (-I: the project
    is not on sys.path; nltk, regex and the project must stay unimported)."""
    specs = {"word": ("word", None), "treebank": ("treebank", None),
             "wordpunct": ("wordpunct", None), "regexp": ("regexp", PATTERNS[2])}
    texts = HAND + fuzz_rows(200, seed=32)
    path, expected = _save_and_expect(tmp_path, specs, texts)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-I", "-c", _LOADER, path, json.dumps(texts), *specs],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["bad_modules"] == []
    assert result["out"] == expected
    print(f"\n[nltk_graph] SavedModel in a TensorFlow-only process: {len(texts)} rows x "
          f"{len(specs)} methods match")


# ----------------------------------------------------------------------------------------------
# Character classes


@pytest.mark.parametrize("engine,item,flags", [
    ("regex", r"\w", 0), ("regex", r"[^\w\s]", 0), ("regex", r"\s", 0), ("regex", "s", 2),
    ("re", r"\W", 2), ("re", "i", 2), ("re", "k", 2), ("regex", r"[^\d]", 0),
])
def test_enumerated_classes_match_the_engine(engine, item, flags):
    """The run-based enumeration equals asking the engine one code point at a time (here for
    the first 0x3400 code points and a sample of the rest; every code point in the slow test)."""
    import re

    import regex

    from pipeline.export.regex_graph import char_ranges

    import bisect

    rx = (regex if engine == "regex" else re).compile(item, flags)
    bounds = [x for a, b in char_ranges(engine, item, flags) for x in (a, b + 1)]
    rng = random.Random(5)
    sample = list(range(0x3400)) + [rng.randrange(0xE000, 0x110000) for _ in range(20000)]
    for c in sample:
        assert bool(rx.fullmatch(chr(c))) == (bisect.bisect_right(bounds, c) % 2 == 1), hex(c)


@pytest.mark.slow
def test_enumerated_classes_every_code_point():
    import re

    import regex

    from pipeline.export.regex_graph import char_ranges

    for engine, item, flags in [("regex", r"\w", 0), ("regex", r"\s", 0), ("re", r"\W", 2),
                                ("regex", "s", 2), ("regex", r"[^\d]", 0)]:
        rx = (regex if engine == "regex" else re).compile(item, flags)
        cps = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF and rx.fullmatch(chr(c))]
        expect = [c for a, b in char_ranges(engine, item, flags) for c in range(a, b + 1)]
        assert cps == expect, item
    # \b of both engines tests their own \w (the quote rule and the contractions rely on it)
    for mod in (regex, re):
        word = {c for a, b in char_ranges(mod.__name__, r"\w", 0) for c in range(a, b + 1)}
        boundary = mod.compile(r"\b")
        for c in range(0x110000):
            if not 0xD800 <= c <= 0xDFFF:
                assert bool(boundary.match(chr(c))) == (c in word), (mod.__name__, hex(c))


def test_whitespace_sets():
    """The rules delete only regex \\s characters, all of which str.split() drops too, so S (the
    text without str.isspace() characters) is what the tokens are cut from. The four separators
    U+001C..U+001F are str.isspace() but not regex \\s."""
    from pipeline.export.regex_graph import char_ranges

    regex_space = {c for a, b in char_ranges("regex", r"\s", 0) for c in range(a, b + 1)}
    isspace = {c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF and chr(c).isspace()}
    assert regex_space < isspace and isspace - regex_space == {0x1C, 0x1D, 0x1E, 0x1F}


def test_invalid_utf8_is_replaced_not_misread():
    """Outside the input contract: invalid bytes become U+FFFD instead of breaking the brackets."""
    toks = graph("wordpunct")(tf.constant([b"ab\xff\xfecd"])).to_list()
    assert toks == [[b"ab", "\ufffd\ufffd".encode(), b"cd"]]


# ----------------------------------------------------------------------------------------------
# Refusals and API

REFUSED = [
    (r"(?<=a)b", "look-behind (?<=...)"),
    (r"(?<!a)b", "negative look-behind (?<!...)"),
    (r"a(?=b)", "look-ahead (?=...)"),
    (r"a(?!b)", "negative look-ahead (?!...)"),
    (r"(a)\1", "back-reference"),
    (r"(?P<x>a)(?P=x)", "back-reference"),
    (r"(a)?(?(1)b|c)", "conditional"),
    (r"(?>ab)c", "atomic group"),
    (r"a++", "possessive quantifier"),
    (r"\bfoo\b", "word boundary"),
    (r"a\B", "word boundary"),
    (r"a*", "can match the empty string"),
    (r"x|", "can match the empty string"),
    (r"(?:a|)+b", "repetition of a sub-pattern that can match the empty string"),
    (r"(a)(b)", "2 capturing groups"),
    (r"(a)+", "capturing group inside a repetition"),
    (r"[[:alpha:]]+", "nested set"),
    (r"\p{L}+", "re parser rejects"),
    (r"a{1001}", "RE2's limit"),
    (r"(?-m:a$)", "$ without MULTILINE"),
    (r"(", "does not compile for nltk"),
]


@pytest.mark.parametrize("pattern,needle", REFUSED)
def test_refused_patterns(pattern, needle):
    with pytest.raises(UnsupportedInGraph) as err:
        GraphNLTK("regexp", pattern)
    assert needle in str(err.value) and "pattern" in str(err.value)


def test_refused_methods_and_arguments():
    with pytest.raises(UnsupportedInGraph, match=r"tweet cannot run inside the TensorFlow graph.*"
                                                 r"use word, treebank, wordpunct or regexp"):
        GraphNLTK("tweet")
    with pytest.raises(UnsupportedInGraph, match="unknown"):
        GraphNLTK("sentencepiece")
    with pytest.raises(ValueError):
        GraphNLTK("word", r"\w+")
    with pytest.raises(ValueError):
        GraphNLTK("regexp")
    with pytest.raises(ValueError, match="needs the pattern"):
        token_spans("regexp", "a b", ["a", "b"])
    with pytest.raises(ValueError, match="no span rule"):
        token_spans("tweet", "a", ["a"])
    with pytest.raises(ValueError):
        token_spans("word", "a b", ["a", "c", "d"])
    from pipeline import KtpError
    from pipeline.export import jieba_graph

    # one class for every in-graph tokenizer, an ExportError under the one root, still a ValueError
    assert issubclass(UnsupportedInGraph, ValueError) and issubclass(UnsupportedInGraph, KtpError)
    assert UnsupportedInGraph is jieba_graph.UnsupportedInGraph
    assert graph("word").trackables() == {}


def test_token_spans_examples():
    text = 'He said "can\'t"  now.'
    toks = NLTKWordTokenizer().tokenize(text)
    assert toks == ["He", "said", "``", "ca", "n't", "''", "now", "."]
    assert token_spans("word", text, toks) == [(0, 2), (3, 7), (8, 9), (9, 11), (11, 14), (14, 15),
                                               (17, 20), (20, 21)]
    assert token_spans("wordpunct", "a.b", ["a", ".", "b"]) == [(0, 1), (1, 2), (2, 3)]
