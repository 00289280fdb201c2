import pytest

from pipeline import ConfigError
from stages.tokenizers import CharTokenizer, JiebaTokenizer, NLTKTokenizer, WhitespaceTokenizer


def test_whitespace_tokenizer_splits_on_runs_of_whitespace():
    assert WhitespaceTokenizer().tokenize(" a  b\tc\n") == ["a", "b", "c"]


def test_tokenizer_nfkc_turns_full_width_into_half_width():
    assert WhitespaceTokenizer().tokenize("ＡＢＣ　１２３") == ["ABC", "123"]


def test_tokenizer_nfkc_can_be_turned_off():
    assert WhitespaceTokenizer(nfkc=False).tokenize("ＡＢＣ") == ["ＡＢＣ"]


def test_tokenizer_lowercase():
    assert WhitespaceTokenizer(lowercase=True).tokenize("Hello ÉCOLE") == ["hello", "école"]


def test_char_tokenizer_drops_whitespace():
    assert CharTokenizer().tokenize("好 看！") == ["好", "看", "!"]


def test_char_tokenizer_keeps_alnum_runs_together():
    assert CharTokenizer(keep_alnum_runs=True).tokenize("iPhone12很好，ＯＫ") == ["iPhone12", "很", "好", ",", "OK"]


def test_nltk_tokenizer_needs_no_downloaded_data():
    assert NLTKTokenizer(lowercase=True).tokenize("It's great, isn't it?") == ["it", "'s", "great", ",", "is", "n't", "it", "?"]


@pytest.mark.parametrize("method", ["word", "treebank", "wordpunct", "tweet"])
def test_nltk_tokenizer_methods_split_a_sentence(method):
    assert "great" in NLTKTokenizer(method=method).tokenize("A great film.")


def test_nltk_regexp_tokenizer_uses_its_pattern():
    assert NLTKTokenizer(method="regexp", pattern=r"\w+").tokenize("a-b c") == ["a", "b", "c"]


def test_nltk_regexp_tokenizer_needs_a_pattern():
    with pytest.raises(ConfigError, match="pattern must be a non-empty string"):
        NLTKTokenizer(method="regexp")


def test_nltk_bad_regexp_is_a_config_error():
    with pytest.raises(ConfigError, match="pattern must be a valid regular expression"):
        NLTKTokenizer(method="regexp", pattern="(")


def test_jieba_accurate_mode_segments_words():
    assert JiebaTokenizer().tokenize("我来到北京清华大学") == ["我", "来到", "北京", "清华大学"]


def test_jieba_full_mode_lists_overlapping_words():
    tokens = JiebaTokenizer(mode="full").tokenize("我来到北京清华大学")
    assert "清华" in tokens and "清华大学" in tokens


def test_jieba_search_mode_adds_short_words():
    tokens = JiebaTokenizer(mode="search").tokenize("我来到北京清华大学")
    assert "清华" in tokens and "清华大学" in tokens


def test_jieba_hmm_finds_unknown_words():
    text = "他来到了网易杭研大厦"
    assert "杭研" in JiebaTokenizer(hmm=True).tokenize(text)
    assert "杭研" not in JiebaTokenizer(hmm=False).tokenize(text)


def test_jieba_extra_words_are_kept_whole():
    text = "我爱吃蓝莓芝士蛋糕"
    assert "蓝莓芝士蛋糕" not in JiebaTokenizer().tokenize(text)
    assert "蓝莓芝士蛋糕" in JiebaTokenizer(extra_words=["蓝莓芝士蛋糕"]).tokenize(text)


def test_jieba_user_dict_is_loaded_and_saved(tmp_path):
    user = tmp_path / "user.txt"
    user.write_text("蓝莓芝士蛋糕 10 n\n", encoding="utf-8")
    tok = JiebaTokenizer(user_dict=str(user)).fit()
    assert "蓝莓芝士蛋糕" in tok.tokenize("我爱吃蓝莓芝士蛋糕")
    assets = tmp_path / "assets"
    assets.mkdir()
    tok.save_assets(str(assets))
    user.unlink()  # the saved copy must be enough
    loaded = JiebaTokenizer.from_config(tok.get_config())
    loaded.load_assets(str(assets))
    assert "蓝莓芝士蛋糕" in loaded.tokenize("我爱吃蓝莓芝士蛋糕")


def test_jieba_missing_user_dict_is_reported_at_fit(tmp_path):
    with pytest.raises(ConfigError, match="user_dict must be the path of an existing file"):
        JiebaTokenizer(user_dict=str(tmp_path / "nope.txt")).fit()


def test_jieba_fingerprint_changes_with_the_user_dict(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("甲乙 5\n", encoding="utf-8")
    b.write_text("丙丁 5\n", encoding="utf-8")
    assert JiebaTokenizer(user_dict=str(a)).fingerprint() != JiebaTokenizer(user_dict=str(b)).fingerprint()


def test_jieba_unknown_mode_is_refused():
    with pytest.raises(ConfigError, match="mode must be one of accurate, full, search"):
        JiebaTokenizer(mode="fast")


def test_tokenizer_refuses_non_string_text():
    with pytest.raises(TypeError, match="expects str texts"):
        CharTokenizer().tokenize(None)


def test_tokenizer_empty_text_gives_no_tokens():
    for tok in (CharTokenizer(), WhitespaceTokenizer(), NLTKTokenizer(), JiebaTokenizer()):
        assert tok.tokenize("   ") == []
