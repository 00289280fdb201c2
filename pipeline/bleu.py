"""Translation metrics: corpus BLEU through ``sacrebleu``, and perplexity.

BLEU is computed on detokenised text against the raw references, so the figure is comparable
with published ones: sacrebleu tokenises both sides itself, with ``13a`` (its default, for
English, German and other space-separated languages) or ``zh`` (Chinese: each CJK character a
token) as the target language asks.
"""

from __future__ import annotations

import math

#: Target languages scored with sacrebleu's ``zh`` tokenizer.
CHINESE = ("zh", "cmn", "yue", "wuu", "zh-cn", "zh-tw", "zh-hans", "zh-hant")
#: Other languages without spaces, scored per character.
CHARACTER = ("ja", "th", "lo", "km", "my", "bo")


def bleu_tokenizer(language: str | None) -> str:
    """sacrebleu's tokenizer for a target language code: ``zh``, ``char`` or ``13a``.

    Example:
        >>> bleu_tokenizer("zh"), bleu_tokenizer("en"), bleu_tokenizer(None)
        ('zh', '13a', '13a')
    """
    code = (language or "").lower().replace("_", "-")
    if code in CHINESE or code.split("-")[0] in CHINESE:
        return "zh"
    if code.split("-")[0] in CHARACTER:
        return "char"
    return "13a"


def corpus_bleu(hypotheses, references, language: str | None = None, lowercase: bool = False) -> dict:
    """Corpus BLEU of detokenised hypotheses against one reference each.

    Args:
        hypotheses: system outputs, one string per sentence.
        references: reference translations, one string per sentence.
        language: the target language (picks the tokenizer, see ``bleu_tokenizer``).
        lowercase: compare case-insensitively (use it when the pipeline lower-cases targets).

    Returns:
        ``{"bleu", "precisions", "brevity_penalty", "hypothesis_length", "reference_length",
        "tokenize", "lowercase", "signature"}``; ``bleu`` is on sacrebleu's 0-100 scale.

    Example:
        >>> round(corpus_bleu(["the cat sat on the mat"], ["the cat sat on the mat"])["bleu"], 1)
        100.0
    """
    hypotheses, references = list(hypotheses), list(references)
    if len(hypotheses) != len(references):
        raise ValueError(f"Got {len(hypotheses)} hypotheses but {len(references)} references; they must pair up")
    try:
        from sacrebleu.metrics import BLEU
    except ImportError:
        raise ImportError("BLEU needs sacrebleu: pip install 'sacrebleu>=2.3'") from None
    tokenize = bleu_tokenizer(language)
    metric = BLEU(tokenize=tokenize, lowercase=lowercase)
    result = metric.corpus_score(hypotheses, [references])
    return {
        "bleu": float(result.score),
        "precisions": [float(p) for p in result.precisions],
        "brevity_penalty": float(result.bp),
        "hypothesis_length": int(result.sys_len),
        "reference_length": int(result.ref_len),
        "tokenize": tokenize,
        "lowercase": bool(lowercase),
        "signature": str(metric.get_signature()),
    }


def perplexity(total_nll: float, tokens: int) -> float:
    """``exp(total negative log-likelihood / tokens)``; inf when there are no tokens.

    Example:
        >>> round(perplexity(4 * math.log(10), 4), 6)
        10.0
    """
    if tokens <= 0:
        return float("inf")
    return math.exp(total_nll / tokens)
