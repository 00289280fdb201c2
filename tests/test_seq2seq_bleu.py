"""pipeline.bleu: sacrebleu corpus BLEU with the tokenizer of the target language, and perplexity."""

import math

import pytest

from pipeline.bleu import bleu_tokenizer, corpus_bleu, perplexity

pytest.importorskip("sacrebleu")


@pytest.mark.parametrize("language, expected", [("en", "13a"), ("de", "13a"), ("zh", "zh"), ("zh-CN", "zh"), ("ja", "char"), (None, "13a")])
def test_bleu_tokenizer_by_target_language(language, expected):
    assert bleu_tokenizer(language) == expected


def test_corpus_bleu_identical_is_100():
    result = corpus_bleu(["A dog runs in the park."], ["A dog runs in the park."], "en")
    assert result["bleu"] == pytest.approx(100.0)
    assert "tok:13a" in result["signature"]


def test_corpus_bleu_chinese_scores_characters():
    # Unsegmented Chinese would be one "word" under 13a; the zh tokenizer splits characters.
    hyp, ref = ["我喜欢吃苹果。"], ["我喜欢吃香蕉。"]
    zh = corpus_bleu(hyp, ref, "zh")
    assert zh["tokenize"] == "zh" and 0 < zh["bleu"] < 100
    assert corpus_bleu(hyp, ref, "en")["bleu"] == pytest.approx(0.0)


def test_corpus_bleu_lowercase_ignores_case():
    hyp, ref = ["a dog runs in the park ."], ["A Dog runs in the park ."]
    assert corpus_bleu(hyp, ref, "en", lowercase=True)["bleu"] == pytest.approx(100.0)
    assert corpus_bleu(hyp, ref, "en")["bleu"] < 100


def test_corpus_bleu_refuses_unpaired_lists():
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        corpus_bleu(["a", "b"], ["a"])


def test_perplexity_is_exp_of_mean_nll():
    assert perplexity(3 * math.log(5), 3) == pytest.approx(5.0)
    assert perplexity(1.0, 0) == math.inf
