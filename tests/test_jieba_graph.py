"""In-graph jieba (pipeline/export/jieba_graph/) must be token-for-token identical to jieba.

Every comparison checks words AND code-point offsets against ``python_segment``, whose words are
checked against jieba's ``cut`` / ``cut_for_search`` and whose offsets against jieba's own
``Tokenizer.tokenize``. The real-corpus parity runs are ``slow`` (shared/data/README.md: the
corpora are read only by benchmarks and opt-in tests): ``pytest -m slow tests/test_jieba_graph.py``.
"""

from __future__ import annotations

import json
import math
import random
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

jieba = pytest.importorskip("jieba")
tf = pytest.importorskip("tensorflow")

from jieba import finalseg  # noqa: E402

from pipeline.export.jieba_graph import GraphJieba, UnsupportedInGraph, python_segment  # noqa: E402

jieba.setLogLevel(60)
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CONFIGS = [(True, "accurate"), (False, "accurate"), (True, "search"), (False, "search")]
SIGNATURE = [tf.TensorSpec([None], tf.string)]

HAND_CASES = [
    "我来到北京清华大学", "他来到了网易杭研大厦", "小明硕士毕业于中国科学院计算所，后在日本京都大学深造",
    "iPhone12很好用，OK?", "3.5%的增长", "增长了12.75%和0.5倍", "C++和C#", "a-b_c",
    "AT&T的v2.0版本", "1.2.3.4abc5.6%%", "a1.5b", "ＡＢＣ全角１２３，ｘｙｚ", "😀好的👍🏽❤️🇨🇳",
    "㐀䶵㐁是扩展A", "𠀀𪚲是扩展B", "\u9fd6\u9fe0\u9fff龥", "第一行\r\n第二行\n\r第三行\r\r\n",
    " \t\x0b\x0c\x1c\x85\xa0\u2028\u3000", "", " ", "\r\n", "   \u3000  ", "我", "a",
    "《红楼梦》第120回", "南京市长江大桥", "工信处女干事每月经过下属科室", "结婚的和尚未结婚的",
    "研究生命起源", "服务太差，兼容性还行，叫来服务员", "中华人民共和国万岁！", "Python3.8教程.pdf",
    "%%%---...___", "一二三四五六七八九十百千万亿", "乒乓球拍卖完了", "abc😀def", "\x00零\x00",
]
# Everyday sentences (written for this test, not taken from a corpus) in the style of reviews.
EVERYDAY = [
    "酒店的位置很好，离地铁站只有五分钟，房间干净整洁，早餐种类也多，下次还会再来。",
    "这本书的内容太浅了，很多地方都是泛泛而谈，不值这个价钱。",
    "笔记本电脑的屏幕很亮，键盘手感不错，就是风扇声音有点大，续航大概4.5小时。",
    "服务员态度冷淡，等了半个多小时才上菜，菜的味道也一般般，不推荐。",
    "物流很快，昨天下单今天就到了，包装完好，客服小王解答问题也很耐心。",
    "房间隔音差，晚上能听到隔壁电视的声音，空调还坏了，前台说明天修，结果一直没人来。",
]


def _tokenizer_copy(base):
    """A Tokenizer sharing nothing mutable with ``base`` (no dictionary reload needed)."""
    tok = jieba.Tokenizer()
    tok.FREQ, tok.total, tok.initialized = dict(base.FREQ), base.total, True
    return tok


@pytest.fixture(scope="module")
def tok():
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    return tokenizer


@pytest.fixture(scope="module")
def segmenters(tok):
    """One GraphJieba per (hmm, mode), shared by the tests of this module."""
    return {config: GraphJieba(tok, hmm=config[0], mode=config[1]) for config in CONFIGS}


@pytest.fixture(scope="module")
def graph_fns(segmenters):
    """Their traced ``segment`` functions (each traces once, on first use)."""
    return {config: _graph_fn(segmenter) for config, segmenter in segmenters.items()}


@pytest.fixture
def restore_force_split():
    # add_word(w, 0) adds to finalseg.Force_Split_Words, a module-global set.
    saved = set(finalseg.Force_Split_Words)
    yield
    finalseg.Force_Split_Words.clear()
    finalseg.Force_Split_Words.update(saved)


def _graph_fn(segmenter):
    return tf.function(segmenter.segment, input_signature=SIGNATURE, autograph=False)


def _run(fn, texts, batch=256):
    """Segment ``texts`` with a traced segmenter: a list of [(word, start, end), ...] per text."""
    out = []
    for i in range(0, len(texts), batch):
        words, starts, ends = fn(tf.constant(texts[i:i + batch], tf.string))
        for w, s, e in zip(words.to_list(), starts.to_list(), ends.to_list()):
            out.append([(x.decode("utf-8"), a, b) for x, a, b in zip(w, s, e)])
    return out


def _assert_same(fn, tok, texts, hmm, mode, batch=256):
    """Graph == python_segment for every text; returns (texts, tokens) compared."""
    got = _run(fn, texts, batch)
    tokens = 0
    for text, row in zip(texts, got):
        expected = python_segment(tok, text, hmm=hmm, mode=mode)
        assert row == expected, f"hmm={hmm} mode={mode} text={text!r}"
        tokens += len(expected)
    return len(texts), tokens


def _random_text(rng, words, length):
    """Seeded odd text: dictionary words, rare CJK, ASCII runs, decimals, whitespace, emoji."""
    pieces = [
        (0.30, lambda: rng.choice(words)),
        (0.08, lambda: chr(rng.randint(0x4E00, 0x9FD5))),
        (0.05, lambda: chr(rng.choice([rng.randint(0x3400, 0x4DB5), rng.randint(0x20000, 0x2A6D6),
                                       rng.randint(0x9FD6, 0x9FFF)]))),
        (0.12, lambda: "".join(rng.choice("abcXYZ0189+#&._%-") for _ in range(rng.randint(1, 7)))),
        (0.06, lambda: rng.choice(["3.5", "12.75%", "0.5", "1.2.3", "100%", "v2.0", "a1.5b",
                                   "5."])),
        (0.08, lambda: rng.choice([" ", "\r\n", "\n", "\t", "\u3000", "\r", "\r\r\n", "\x0b",
                                   "\xa0", "\u2028", "\x1c", "  "])),
        (0.05, lambda: rng.choice(["😀", "👍🏽", "❤️", "🇨🇳", "\u200d", "🀄"])),
        (0.10, lambda: rng.choice("，。！？、；：“”（）《》…—·")),
        (0.05, lambda: rng.choice("ＡＢＣ１２３ｘｙｚ％＋")),
        (0.11, lambda: rng.choice(words) + rng.choice(words)),
    ]
    out, size = [], 0
    while size < length:
        r, acc = rng.random(), 0.0
        for p, make in pieces:
            acc += p
            if r < acc:
                break
        piece = make()
        out.append(piece)
        size += len(piece)
    return "".join(out)[:length]


@pytest.fixture(scope="module")
def dict_words(tok):
    return sorted(w for w, f in tok.FREQ.items() if f)


# -- the reference itself ---------------------------------------------------------------------

@pytest.mark.parametrize("hmm,mode", CONFIGS)
def test_python_segment_is_jieba(tok, hmm, mode):
    for text in HAND_CASES + EVERYDAY:
        ref = python_segment(tok, text, hmm=hmm, mode=mode)
        cut = tok.cut(text, HMM=hmm) if mode == "accurate" else tok.cut_for_search(text, HMM=hmm)
        assert [w for w, _, _ in ref] == list(cut)
        native = tok.tokenize(text, mode="default" if mode == "accurate" else "search", HMM=hmm)
        assert ref == list(native)
        assert all(text[s:e] == w for w, s, e in ref)


def test_known_segmentations(segmenters, graph_fns):
    [row] = _run(graph_fns[True, "accurate"], ["我来到北京清华大学"])
    assert [w for w, _, _ in row] == ["我", "来到", "北京", "清华大学"]
    assert segmenters[True, "accurate"](tf.constant(["我来到北京"])).to_list() == [
        [w.encode() for w in ("我", "来到", "北京")]]  # __call__: the words only
    [hmm_on] = _run(graph_fns[True, "accurate"], ["他来到了网易杭研大厦"])
    [hmm_off] = _run(graph_fns[False, "accurate"], ["他来到了网易杭研大厦"])
    assert ("杭研", 6, 8) in hmm_on  # the HMM joins the unknown word
    assert ("杭", 6, 7) in hmm_off and ("研", 7, 8) in hmm_off
    [search] = _run(graph_fns[True, "search"], ["小明硕士毕业于中国科学院计算所"])
    assert ("中国", 7, 9) in search and ("中国科学院", 7, 12) in search
    # A buffer of one-character route words that is itself a dictionary word ("太差") is
    # yielded character by character, not sent to the HMM.
    [buf] = _run(graph_fns[True, "accurate"], ["服务太差"])
    assert [w for w, _, _ in buf] == ["服务", "太", "差"]
    [crlf] = _run(graph_fns[True, "accurate"], ["a\r\nb\r\r\n"])
    assert [w for w, _, _ in crlf] == ["a", "\r\n", "b", "\r", "\r\n"]


# finalseg's re_skip keeps the text between its matches whole; without the HMM only runs of
# one-character [a-zA-Z0-9] route words are merged.
RE_SKIP_CASES = [
    ("%%%---...___", ["%%%---...___"], list("%%%---...___")),
    ("1.2.3", ["1.2", ".", "3"], ["1", ".", "2", ".", "3"]),
    ("a1.5b", ["a1.5", "b"], ["a1", ".", "5b"]),
    ("12.75%和", ["12.75%", "和"], ["12", ".", "75", "%", "和"]),
    ("a-b_c", ["a", "-", "b", "_", "c"], ["a", "-", "b", "_", "c"]),
]


@pytest.mark.parametrize("text,with_hmm,without_hmm", RE_SKIP_CASES)
def test_re_skip_pieces(tok, graph_fns, text, with_hmm, without_hmm):
    for hmm, expected in ((True, with_hmm), (False, without_hmm)):
        assert tok.lcut(text, HMM=hmm) == expected
        assert [w for w, _, _ in _run(graph_fns[hmm, "accurate"], [text])[0]] == expected


# -- hand cases, odd text, long rows ----------------------------------------------------------

@pytest.mark.parametrize("hmm,mode", CONFIGS)
def test_hand_cases(tok, graph_fns, hmm, mode):
    n_texts, n_tokens = _assert_same(graph_fns[hmm, mode], tok, HAND_CASES + EVERYDAY, hmm, mode)
    assert n_texts == len(HAND_CASES + EVERYDAY) and n_tokens > 250
    # Batch 1 takes other code paths (a single block, a single HMM piece, no padding).
    for text in HAND_CASES[:12]:
        _assert_same(graph_fns[hmm, mode], tok, [text], hmm, mode)


@pytest.mark.parametrize("hmm,mode", CONFIGS)
def test_generated_odd_text(tok, graph_fns, dict_words, hmm, mode):
    rng = random.Random(20240611)
    texts = [_random_text(rng, dict_words, rng.randint(0, 120)) for _ in range(300)]
    n_texts, n_tokens = _assert_same(graph_fns[hmm, mode], tok, texts, hmm, mode, batch=100)
    print(f"generated: hmm={hmm} mode={mode}: {n_texts} texts, {n_tokens} tokens identical")


def test_unknown_characters_hmm_ties(tok, graph_fns):
    """Han characters without any emission probability make float64 absorb the transition terms
    (-0.26 + -3.14e100 == -3.14e100), so Viterbi ties everywhere: only the exact tie rules match."""
    unknown = [c for c in map(chr, range(0x4E00, 0x9FD6))
               if c not in tok.FREQ and all(c not in finalseg.emit_P[s] for s in "BMES")]
    assert len(unknown) > 100
    rng = random.Random(7)
    texts = ["".join(rng.choice(unknown) for _ in range(n)) for n in range(1, 40)]
    texts += ["的" + t + "了" for t in texts[:10]]
    for hmm, mode in CONFIGS:
        _assert_same(graph_fns[hmm, mode], tok, texts, hmm, mode)


@pytest.mark.parametrize("hmm,mode", CONFIGS)
def test_ten_thousand_character_row(tok, graph_fns, dict_words, hmm, mode):
    text = _random_text(random.Random(10_000), dict_words, 10_000)
    assert len(text) == 10_000
    _, n_tokens = _assert_same(graph_fns[hmm, mode], tok, [text, "短句"], hmm, mode)
    assert n_tokens > 3000


def test_long_block_without_punctuation(tok, graph_fns, dict_words):
    """One 3,000-character block (dictionary words and unknown characters, no separator)."""
    rng = random.Random(3)
    han = [w for w in dict_words if all("\u4e00" <= c <= "\u9fd5" for c in w)]
    text = "".join(rng.choice(han) if rng.random() < 0.7 else chr(rng.randint(0x4E00, 0x9FD5))
                   for _ in range(1500))[:3000]
    for hmm in (True, False):
        _assert_same(graph_fns[hmm, "accurate"], tok, [text], hmm, "accurate")


@pytest.mark.parametrize("hmm,mode", CONFIGS)
def test_empty_inputs(segmenters, graph_fns, hmm, mode):
    eager = segmenters[hmm, mode].segment(tf.constant([], tf.string))  # eager mode works too
    assert [x.shape[0] for x in eager] == [0, 0, 0]
    fn = graph_fns[hmm, mode]
    words, starts, ends = fn(tf.constant([], tf.string))
    assert words.shape[0] == 0 and starts.shape[0] == 0 and ends.shape[0] == 0
    words, starts, ends = fn(tf.constant(["", "", ""]))
    assert words.to_list() == [[], [], []] and starts.to_list() == [[], [], []]
    assert starts.dtype == tf.int64 and ends.dtype == tf.int64
    rows = _run(fn, ["", "好", ""])
    assert rows == [[], [("好", 0, 1)], []]


# -- tokenizer state: user dictionaries, add_word, Force_Split_Words ---------------------------

def test_route_tie_takes_the_longer_word():
    """Equal route probabilities: Python's tuple max takes the larger end index x."""
    tok = jieba.Tokenizer()
    tok.FREQ, tok.total, tok.initialized = {"甲": 2, "乙": 2, "甲乙": 1}, 4, True
    # (log 2 - log 4) + (log 2 - log 4) == log 1 - log 4 exactly in float64.
    assert (math.log(2) - math.log(4)) + (math.log(2) - math.log(4)) == math.log(1) - math.log(4)
    assert list(tok.cut("甲乙甲乙", HMM=False)) == ["甲乙", "甲乙"]
    fn = _graph_fn(GraphJieba(tok, hmm=False))
    _assert_same(fn, tok, ["甲乙甲乙", "甲乙乙甲", "乙甲乙"], False, "accurate")


def test_user_dictionary_and_add_word(tok, tmp_path, restore_force_split):
    user = _tokenizer_copy(tok)
    long_word = "中华人民共和国国务院总理办公室秘书处"  # 18 characters, longer than any default word
    assert len(long_word) > max(len(w) for w, f in tok.FREQ.items() if f)
    dict_file = tmp_path / "user.txt"
    dict_file.write_text("\ufeff杭研大厦 30 nt\n云计算 5\n创新办 3 i\nPython3.8教程\n凱特琳 nz\n\n"
                         f"{long_word} 10\n", encoding="utf-8")
    user.load_userdict(str(dict_file))
    user.add_word("石墨烯")
    user.add_word("C++教程", freq=20, tag="n")
    user.add_word("杭研", 0)  # freq 0: removed as a word and added to Force_Split_Words
    user.del_word("清华大学")
    texts = [f"他们在{long_word}开会，{long_word}很忙", "他来到了网易杭研大厦", "我来到北京清华大学",
             "石墨烯和云计算是创新办的重点", "Python3.8教程和C++教程", "凱特琳说杭研很好",
             long_word[:-1], long_word * 3] + HAND_CASES
    assert "杭研" in finalseg.Force_Split_Words
    # Two segmenters cover both HMM settings and both modes (each one costs a trace).
    for hmm, mode in [(True, "accurate"), (False, "search")]:
        fn = _graph_fn(GraphJieba(user, hmm=hmm, mode=mode))
        _assert_same(fn, user, texts, hmm, mode)
    [row] = _run(fn, [f"在{long_word}开会"])
    assert (long_word, 1, 19) in row


def test_force_split_words_split_hmm_words(tok, restore_force_split):
    """Force_Split_Words only splits words the HMM produced; a snapshot is taken at construction."""
    text = "他来到了网易杭研大厦"
    assert "杭研" in jieba.Tokenizer.lcut(tok, text)
    finalseg.Force_Split_Words.add("杭研")  # what add_word("杭研", 0) does besides FREQ
    segmenter = GraphJieba(tok, hmm=True)
    assert "jieba_force_split_table" in segmenter.trackables()
    fn = _graph_fn(segmenter)
    _assert_same(fn, tok, [text, "杭研杭研", "网易杭研"], True, "accurate")
    assert ("杭", 6, 7) in _run(fn, [text])[0]


def test_unsupported_modes_and_dictionaries(tok):
    with pytest.raises(UnsupportedInGraph, match="full") as err:
        GraphJieba(tok, mode="full")
    assert isinstance(err.value, ValueError) and "accurate or search" in str(err.value)
    with pytest.raises(UnsupportedInGraph):
        python_segment(tok, "你好", mode="full")
    with pytest.raises(ValueError, match="unknown jieba mode"):
        GraphJieba(tok, mode="fast")
    saved = jieba.re_eng
    jieba.re_eng = re.compile("[a-z]")  # a monkeypatched jieba is refused
    try:
        with pytest.raises(UnsupportedInGraph, match="re_eng"):
            GraphJieba(tok)
    finally:
        jieba.re_eng = saved
    broken = jieba.Tokenizer()
    broken.FREQ, broken.total, broken.initialized = {"甲": -3}, 1, True
    with pytest.raises(UnsupportedInGraph, match="frequency"):
        GraphJieba(broken)


# -- graph properties and SavedModel -----------------------------------------------------------

def test_graph_uses_stock_ops_only(graph_fns):
    concrete = graph_fns[True, "search"].get_concrete_function()
    graph_def = concrete.graph.as_graph_def()
    ops = {n.op for n in graph_def.node}
    ops |= {n.op for f in graph_def.library.function for n in f.node_def}
    assert not ops & {"PyFunc", "EagerPyFunc", "PyFuncStateless"}
    assert "While" in ops or "StatelessWhile" in ops
    assert not any(op.startswith(("Text", "Sentencepiece", "Wordpiece")) for op in ops)


def _export(segmenter, fn, path):
    """A tf.Module holding only the segmenter: its tables attached, ``segment`` as the function."""
    module = tf.Module()
    for name, resource in segmenter.trackables().items():
        setattr(module, name, resource)
    module.segment = fn
    tf.saved_model.save(module, str(path))
    return path


@pytest.fixture(scope="module")
def saved_model(segmenters, graph_fns, tmp_path_factory):
    config = (True, "search")
    return _export(segmenters[config], graph_fns[config], tmp_path_factory.mktemp("jieba") / "m")


def test_saved_model_round_trip(tok, saved_model):
    texts = HAND_CASES + EVERYDAY
    expected = [python_segment(tok, t, hmm=True, mode="search") for t in texts]
    loaded = tf.saved_model.load(str(saved_model))
    assert _run(loaded.segment, texts) == expected
    words, starts, ends = loaded.segment(tf.constant([], tf.string))
    assert words.shape[0] == starts.shape[0] == ends.shape[0] == 0


@pytest.mark.slow
def test_saved_model_in_a_process_without_jieba(tok, saved_model, tmp_path):
    texts = HAND_CASES + EVERYDAY
    expected = [python_segment(tok, t, hmm=True, mode="search") for t in texts]
    (tmp_path / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
    script = textwrap.dedent(f"""
        import json, os, sys
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        import tensorflow as tf
        texts = json.load(open({str(tmp_path / "texts.json")!r}, encoding="utf-8"))
        model = tf.saved_model.load({str(saved_model)!r})
        w, s, e = model.segment(tf.constant(texts))
        rows = [[[x.decode("utf-8"), a, b] for x, a, b in zip(*r)]
                for r in zip(w.to_list(), s.to_list(), e.to_list())]
        bad = sorted(m for m in sys.modules if m.split(".")[0] in ("jieba", "pipeline", "stages"))
        print(json.dumps({{"rows": rows, "modules": bad}}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["modules"] == []
    assert [[tuple(x) for x in row] for row in result["rows"]] == expected


# -- real corpora (opt-in) ----------------------------------------------------------------------

def _corpus(name):
    files = {
        "chnsenticorp_train": DATA / "chnsenticorp" / "train.tsv",
        "chnsenticorp_dev": DATA / "chnsenticorp" / "dev.tsv",
        "cmn_eng_train": DATA / "cmn_eng" / "train.tsv",
        "resume_ner_train": DATA / "resume_ner" / "train.char.bmes",
    }
    path = files[name]
    if not path.is_file():
        pytest.skip(f"corpus not found: {path}")
    lines = path.read_text(encoding="utf-8").split("\n")
    if name.startswith("chnsenticorp"):
        assert lines[0] == "label\ttext_a"
        return [line.split("\t", 1)[1] for line in lines[1:] if line]
    if name.startswith("cmn_eng"):
        return [line.split("\t")[1] for line in lines if line]
    sentences, chars = [], []
    for line in lines:
        if line.strip():
            chars.append(line.split(" ")[0])
        elif chars:
            sentences.append("".join(chars))
            chars = []
    return sentences + (["".join(chars)] if chars else [])


@pytest.mark.slow
@pytest.mark.parametrize("corpus", ["chnsenticorp_train", "chnsenticorp_dev", "cmn_eng_train",
                                    "resume_ner_train"])
@pytest.mark.parametrize("hmm", [True, False])
def test_corpus_parity(tok, graph_fns, corpus, hmm):
    texts = _corpus(corpus)
    got = _run(graph_fns[hmm, "accurate"], texts)
    identical = tokens = 0
    for text, row in zip(texts, got):
        words = tok.lcut(text, HMM=hmm)  # jieba.lcut semantics on the same tokenizer
        tokens += len(words)
        identical += row == python_segment(tok, text, hmm=hmm) and [w for w, _, _ in row] == words
    print(f"{corpus} hmm={hmm}: {len(texts)} texts, {tokens} tokens, {identical} texts identical")
    assert len(got) == len(texts) > 400
    assert identical == len(texts)


@pytest.mark.slow
@pytest.mark.parametrize("hmm", [True, False])
def test_corpus_parity_search_mode(tok, graph_fns, hmm):
    texts = _corpus("chnsenticorp_train")
    n_texts, n_tokens = _assert_same(graph_fns[hmm, "search"], tok, texts, hmm, "search")
    print(f"chnsenticorp_train search hmm={hmm}: {n_texts} texts, {n_tokens} tokens identical")


@pytest.mark.slow
def test_hundred_thousand_character_rows(tok, graph_fns, dict_words):
    mixed = _random_text(random.Random(100_000), dict_words, 100_000)
    han = "".join(w for w in random.Random(1).choices(
        [w for w in dict_words if all("\u4e00" <= c <= "\u9fd5" for c in w)], k=50_000))[:100_000]
    for hmm in (True, False):
        _assert_same(graph_fns[hmm, "accurate"], tok, [mixed, han], hmm, "accurate")


def test_words_whose_prefixes_are_missing(tok):
    """FREQ edited by hand (no prefix entries): get_DAG's `while frag in FREQ` never reaches the
    word, but the buffer check FREQ.get(buf) and cut_for_search's n-gram check still see it."""
    odd = _tokenizer_copy(tok)
    odd.FREQ["杭研大厦"] = 50  # "杭研" and "杭研大" stay absent
    odd.FREQ["乙丙"] = 7  # a two-character word reachable only as a buffer / an n-gram
    odd.FREQ.pop("乙", None)
    texts = ["他来到了网易杭研大厦", "杭研大厦", "甲乙丙丁", "乙丙乙丙", "x乙丙"]
    assert "杭研大厦" not in odd.lcut("网易杭研大厦", HMM=False)
    for hmm, mode in [(True, "accurate"), (False, "search")]:
        _assert_same(_graph_fn(GraphJieba(odd, hmm=hmm, mode=mode)), odd, texts, hmm, mode)
