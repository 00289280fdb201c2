import pytest

from pipeline import ConfigError, DataError, NotFittedError
from stages.vocabulary import Vocabulary


def test_vocabulary_orders_by_count_then_token():
    v = Vocabulary().fit([["b", "a", "c", "a", "b"], ["c", "d"]])
    assert v.tokens_ == ["<pad>", "<unk>", "a", "b", "c", "d"]


def test_vocabulary_order_does_not_depend_on_input_order():
    a = Vocabulary().fit([["x", "y", "z"]]).tokens_
    b = Vocabulary().fit([["z", "y", "x"]]).tokens_
    assert a == b


def test_vocabulary_max_size_counts_the_special_tokens():
    v = Vocabulary(max_size=4).fit([["a", "a", "b", "b", "c"]])
    assert v.tokens_ == ["<pad>", "<unk>", "a", "b"]


def test_vocabulary_min_freq_drops_rare_tokens():
    v = Vocabulary(min_freq=2).fit([["a", "a", "b"]])
    assert "b" not in v.tokens_


def test_vocabulary_unknown_tokens_map_to_unk():
    v = Vocabulary().fit([["a"]])
    assert v.transform([["a", "zzz"], []]) == [[2, 1], []]


def test_vocabulary_reserved_tokens_follow_unk():
    v = Vocabulary(reserved=["<bos>", "<eos>"]).fit([["a"]])
    assert v.tokens_[:5] == ["<pad>", "<unk>", "<bos>", "<eos>", "a"]


def test_vocabulary_inverse_transform_skips_specials():
    v = Vocabulary(reserved=["<bos>"]).fit([["a", "b"]])
    assert v.inverse_transform([[2, 3, 4, 0]]) == [["a", "b"]]


def test_vocabulary_saves_one_token_a_line(tmp_path):
    v = Vocabulary().fit([["好", "看", "好"]])
    v.save_assets(str(tmp_path))
    assert (tmp_path / "vocab.txt").read_text(encoding="utf-8") == "<pad>\n<unk>\n好\n看\n"
    loaded = Vocabulary()
    loaded.load_assets(str(tmp_path))
    assert loaded.tokens_ == v.tokens_


def test_vocabulary_load_refuses_a_file_without_specials(tmp_path):
    (tmp_path / "vocab.txt").write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(ValueError, match="does not start with the special tokens"):
        Vocabulary().load_assets(str(tmp_path))


def test_vocabulary_coverage_reports_unknown_tokens():
    v = Vocabulary().fit([["a", "b"]])
    report = v.coverage([["a", "x", "x", "y"]])
    assert report["coverage"] == 0.25
    assert report["top_unknown"][0] == ["x", 2]
    assert report["unknown_types"] == 2


def test_vocabulary_unfitted_use_raises_not_fitted():
    with pytest.raises(NotFittedError, match="not fitted"):
        Vocabulary().transform([["a"]])


def test_vocabulary_reserved_cannot_repeat_specials():
    with pytest.raises(ConfigError, match="reserved must not repeat"):
        Vocabulary(reserved=["<pad>"])


def test_vocabulary_load_refuses_a_repeated_token(tmp_path):
    (tmp_path / "vocab.txt").write_text("<pad>\n<unk>\na\nb\na\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"vocab\.txt:5: repeats 'a' \(first on line 3\)"):
        Vocabulary().load_assets(str(tmp_path))


def test_vocabulary_load_refuses_more_tokens_than_max_size(tmp_path):
    (tmp_path / "vocab.txt").write_text("<pad>\n<unk>\na\nb\n", encoding="utf-8")
    with pytest.raises(DataError, match="holds 4 tokens, more than max_size 3"):
        Vocabulary(max_size=3).load_assets(str(tmp_path))


def test_vocabulary_load_refuses_a_file_that_is_not_utf8(tmp_path):
    (tmp_path / "vocab.txt").write_bytes(b"<pad>\n<unk>\n\xff\n")
    with pytest.raises(DataError, match=r"vocab\.txt:3: not valid UTF-8"):
        Vocabulary().load_assets(str(tmp_path))


def test_vocabulary_max_size_has_a_limit():
    with pytest.raises(ConfigError, match=r"max_size must be an integer >= 3 and <= 10000000 or null"):
        Vocabulary(max_size=10**10)


def test_vocabulary_reserved_tokens_cannot_hold_line_breaks():
    with pytest.raises(ConfigError, match="without line breaks"):
        Vocabulary(reserved=["<bos>\n"])
