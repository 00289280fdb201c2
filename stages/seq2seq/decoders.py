"""The ``text`` (translation search settings, detokenisation) and ``sampler`` (generation
settings) decoders of the sequence-to-sequence and language-model stages."""

from __future__ import annotations

import re

import numpy as np

from ..base import Stage, check_bool, check_choice, check_float, check_int
from ..errors import ConfigError
from ..registry import register

BOS = "<bos>"
EOS = "<eos>"

#: Languages written without spaces between words (detokenised by joining tokens).
UNSPACED_LANGUAGES = ("zh", "ja", "th", "lo", "km", "my", "bo", "cmn", "yue", "wuu")


def detokenize(tokens, mode: str = "auto", language: str | None = None) -> str:
    """Join tokens into text.

    Args:
        tokens: the tokens.
        mode: ``space`` (join with spaces), ``none`` (join with nothing: Chinese, Japanese),
            ``treebank`` (spaces, but none before punctuation and clitics: English and other
            space-separated languages) or ``auto`` (``none`` for languages written without
            spaces, such as ``zh``, else ``treebank``).
        language: the text's language code (for ``auto``).

    Example:
        >>> detokenize(["a", "dog", "'s", "ball", "."], language="en")
        "a dog's ball."
        >>> detokenize(["我", "爱", "你", "。"], language="zh")
        '我爱你。'
    """
    if mode == "auto":
        code = (language or "").lower().replace("_", "-").split("-")[0]
        mode = "none" if code in UNSPACED_LANGUAGES else "treebank"
    tokens = [str(t) for t in tokens]
    if mode == "none":
        return _join_unspaced(tokens)
    if mode == "space":
        return " ".join(tokens)
    from nltk.tokenize.treebank import TreebankWordDetokenizer

    return TreebankWordDetokenizer().detokenize(tokens)


_LATIN_RUN = re.compile(r"^[A-Za-z0-9]")


def _join_unspaced(tokens):
    # Chinese text has no spaces, but Latin words inside it (names, numbers) keep one between them.
    out = []
    for tok in tokens:
        if out and _LATIN_RUN.match(tok) and _LATIN_RUN.match(out[-1][-1:]):
            out.append(" ")
        out.append(tok)
    return "".join(out)


DETOKENIZE = ("auto", "space", "none", "treebank")


@register("decoder", "text")
class TextDecoder(Stage):
    """Turns target ids into text, with the search settings used to find them.

    Args:
        beam_width: hypotheses kept per sentence; 1 is greedy search.
        length_penalty: GNMT length-penalty exponent alpha (0: rank by raw log-probability,
            which favours short outputs; 0.6-1.0 is usual with beams).
        max_length: most target tokens generated per sentence (``<eos>`` included); decoding
            always stops there.
        detokenize: ``auto`` (by the target language: no spaces for Chinese / Japanese, nltk
            Treebank rules otherwise), ``space``, ``none`` or ``treebank``.
        n_best: how many hypotheses each answer lists under ``alternatives`` (<= beam_width;
            1 lists none).
        capitalize: upper-case the first character of each translation (Python's
            ``str.upper``), for models whose target tokenizer lower-cases: sentence-initial
            capitals then match cased references (cased BLEU). The exported SavedModel does the
            same in the graph.

    Example:
        >>> TextDecoder(beam_width=5, length_penalty=0.6).get_config()["beam_width"]
        5
        >>> TextDecoder(capitalize=True).to_text(["a", "dog", "."], "en")
        'A dog.'
    """

    def __init__(self, beam_width: int = 1, length_penalty: float = 0.0, max_length: int = 50, detokenize: str = "auto", n_best: int = 1,
                 capitalize: bool = False):
        super().__init__()

    def _validate(self):
        from ..beam_search import check_search_options

        try:
            check_search_options(self.beam_width, self.max_length, self.length_penalty, path="")
        except ConfigError as err:
            raise ConfigError(err.key, err.requirement, err.received) from None
        check_choice("detokenize", self.detokenize, DETOKENIZE)
        check_int("n_best", self.n_best, minimum=1)
        check_bool("capitalize", self.capitalize)
        if self.n_best > self.beam_width:
            raise ConfigError("n_best", f"must be <= beam_width ({self.beam_width})", self.n_best)

    def transform(self, batch):
        return batch

    def to_text(self, tokens, language=None) -> str:
        text = detokenize(tokens, self.detokenize, language)
        return text[:1].upper() + text[1:] if self.capitalize else text

    def decode(self, token_ids, scores, vocabulary, eos_id, language=None, n_best=None) -> list[dict]:
        """Answers from search results.

        Args:
            token_ids: int ``(sentences, beams, steps)`` ids, best beam first.
            scores: ``(sentences, beams)`` scores.
            vocabulary: the target vocabulary.
            eos_id: the ``<eos>`` id (ends a hypothesis).
            language: the target language, for ``detokenize: auto``.
            n_best: hypotheses to list (default: the stage's ``n_best``).

        Returns:
            One dict per sentence: ``translation`` (text), ``tokens``, ``score``, and
            ``alternatives`` (``[{"translation", "score"}]``) when n_best > 1.
        """
        n_best = self.n_best if n_best is None else n_best
        answers = []
        for rows, row_scores in zip(np.asarray(token_ids), np.asarray(scores)):
            hyps = []
            for ids, score in zip(rows[:n_best], row_scores[:n_best]):
                tokens = ids_to_tokens(ids, vocabulary, eos_id)
                hyps.append((tokens, float(score)))
            tokens, score = hyps[0]
            answer = {"translation": self.to_text(tokens, language), "tokens": tokens, "score": score}
            if n_best > 1:
                answer["alternatives"] = [{"translation": self.to_text(t, language), "score": s} for t, s in hyps]
            answers.append(answer)
        return answers


def ids_to_tokens(ids, vocabulary, eos_id) -> list[str]:
    """Tokens of one id row up to (not including) ``<eos>``; padding and specials are dropped."""
    ids = [int(i) for i in ids]
    if eos_id in ids:
        ids = ids[: ids.index(eos_id)]
    return vocabulary.inverse_transform([ids])[0]


@register("decoder", "sampler")
class SamplerDecoder(Stage):
    """Generation settings of a language model: how many tokens, and how each is drawn.

    Args:
        max_tokens: tokens generated after the prompt (generation also stops at ``<eos>``).
        temperature: divides the logits before sampling; 0 picks the most likely token
            (greedy), below 1 sharpens, above 1 flattens.
        top_k: sample among the ``top_k`` most likely tokens only (0: all).
        seed: random seed of the sampler (null: a fresh one each call).
        detokenize: ``auto`` (by ``data.language``), ``space``, ``none`` or ``treebank``.

    Example:
        >>> SamplerDecoder(temperature=0.8, top_k=20).get_config()["top_k"]
        20
    """

    def __init__(self, max_tokens: int = 50, temperature: float = 1.0, top_k: int = 0, seed: int | None = None, detokenize: str = "auto"):
        super().__init__()

    def _validate(self):
        check_int("max_tokens", self.max_tokens, minimum=1)
        check_float("temperature", self.temperature, 0.0)
        check_int("top_k", self.top_k, minimum=0)
        check_int("seed", self.seed, minimum=0, allow_none=True)
        check_choice("detokenize", self.detokenize, DETOKENIZE)

    def transform(self, batch):
        return batch

    def to_text(self, tokens, language=None) -> str:
        return detokenize(tokens, self.detokenize, language)

    @staticmethod
    def pick(log_probs: np.ndarray, temperature: float, top_k: int, rng: np.random.Generator, banned=()) -> int:
        """Draw one token id from ``log_probs`` (1-D) with temperature and top-k."""
        logits = np.asarray(log_probs, dtype=np.float64).copy()
        for b in banned:
            logits[b] = -np.inf
        if temperature == 0:
            return int(np.argmax(logits))
        logits = logits / temperature
        if top_k and top_k < len(logits):
            cutoff = np.partition(logits, -top_k)[-top_k]
            logits[logits < cutoff] = -np.inf
        logits -= logits.max()
        p = np.exp(logits)
        p /= p.sum()
        return int(rng.choice(len(p), p=p))
