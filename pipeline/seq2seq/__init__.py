"""Translation (encoder-decoder) and language-model (generation) task families.

Translation is a pipeline of two chains meeting at an ``rnn_seq2seq`` model::

    source text -> source_tokenizer -> source_vocabulary -> source_vectorizer --\\
                                                                               rnn_seq2seq -> text decoder
    target text -> target_tokenizer -> target_vocabulary -> target_vectorizer --/

A side may share a stage with the other: a stage named ``tokenizer``, ``vocabulary`` or
``vectorizer`` serves both (one vocabulary over both languages, for instance). The target (or
shared) vocabulary must reserve ``<bos>`` and ``<eos>``.

A language model is one chain: tokenizer -> vocabulary -> vectorizer -> rnn_language_model ->
sampler.

``TranslationPipeline`` is here; the other parts are modules of this package: ``options`` (the
families' ``data`` options and the ``<bos>`` / ``<eos>`` check), ``batches`` (id lists to
length-bucketed, padded batches) and ``language_model`` (``LanguageModelPipeline``).
"""

from __future__ import annotations

import logging
import time

import numpy as np

from stages.batching import length_batches, pad

from ..core import Pipeline, as_texts, register_task
from ..errors import ConfigError

# Attention pictures are drawn by pipeline.plots, whose one font lookup every picture uses
# (``find_cjk_font`` stays importable from here).
from ..plots import find_cjk_font, plot_attention  # noqa: F401
from .batches import _truncate, id_batches
from .options import (  # noqa: F401
    BOS,
    EOS,
    LANGUAGE_MODEL_DATA,
    TRANSLATION_DATA,
    _check_reserved,
    _lang_option,
)

log = logging.getLogger("ktp")

SIDES = ("source", "target")
CHAIN = ("tokenizer", "vocabulary", "vectorizer")


# -- translation ----------------------------------------------------------------------------------
@register_task("translation")
class TranslationPipeline(Pipeline):
    """Sentence translation with a recurrent encoder-decoder.

    Example:
        >>> from pipeline import Pipeline
        >>> p = Pipeline.from_config({"task": "translation",
        ...     "data": {"source_lang": "de", "target_lang": "en"},
        ...     "stages": {
        ...         "source_tokenizer": {"type": "whitespace"}, "target_tokenizer": {"type": "whitespace"},
        ...         "source_vocabulary": {}, "target_vocabulary": {"reserved": ["<bos>", "<eos>"]},
        ...         "vectorizer": {"type": "embedding", "dim": 8, "max_length": 10},
        ...         "model": {"type": "rnn_seq2seq", "units": 8}, "decoder": {"type": "text"}}})
        >>> _ = p.fit(["ein hund", "eine katze"], ["a dog", "a cat"], epochs=1, verbose=0)
        >>> sorted(p.predict(["ein hund"])[0])
        ['score', 'tokens', 'translation']
    """

    data_options = TRANSLATION_DATA

    def _check_stages(self):
        from ..registry import KINDS

        for name, stage in self.stages.items():
            if getattr(stage, "kind", None) not in KINDS:
                raise ConfigError(name, "must be a registered stage object", stage, "stages")
        allowed = {f"{side}_{kind}": kind for side in SIDES for kind in CHAIN}
        allowed.update({kind: kind for kind in CHAIN})
        for name, stage in self.stages.items():
            if stage.kind in CHAIN:
                if name not in allowed:
                    raise ConfigError(
                        name,
                        f"is not a stage name of a translation pipeline: name {stage.kind} stages "
                        f"source_{stage.kind} and target_{stage.kind}, or {stage.kind} to share one between both sides",
                        path="stages",
                    )
                if allowed[name] != stage.kind:
                    raise ConfigError(name, f"must be a {allowed[name]} stage", stage.type_name, "stages")
        for kind in CHAIN:
            shared = kind in self.stages
            split = [f"{side}_{kind}" in self.stages for side in SIDES]
            if shared and any(split):
                raise ConfigError(
                    "stages", f"has both a shared {kind} and source_{kind} / target_{kind}; keep one or the other"
                )
            if not shared and not all(split):
                missing = [f"{side}_{kind}" for side, present in zip(SIDES, split) if not present]
                raise ConfigError(
                    "stages",
                    f"of a translation pipeline needs {' and '.join(missing)} (or one shared {kind} stage). "
                    "A translation pipeline holds source_tokenizer, source_vocabulary, source_vectorizer, "
                    "target_tokenizer, target_vocabulary, target_vectorizer, model (rnn_seq2seq) and decoder (text)",
                )
        for kind, type_name in (("model", "rnn_seq2seq"), ("decoder", "text")):
            found = [(n, s) for n, s in self.stages.items() if s.kind == kind]
            if len(found) != 1:
                raise ConfigError("stages", f"of a translation pipeline must hold exactly one {kind} stage (found {len(found)})")
            name, stage = found[0]
            if stage.type_name != type_name:
                raise ConfigError("type", f"must be {type_name} in a translation pipeline", stage.type_name, f"stages.{name}")
        vocab_name = "vocabulary" if "vocabulary" in self.stages else "target_vocabulary"
        _check_reserved(self, vocab_name, self.stages[vocab_name])

    def side(self, kind: str, side: str):
        """The ``tokenizer`` / ``vocabulary`` / ``vectorizer`` stage of the ``source`` or ``target`` side."""
        own = self.stages.get(f"{side}_{kind}")
        return own if own is not None else self.stages[kind]

    @property
    def model(self):
        return self.stage("model")

    @property
    def decoder(self):
        return self.stage("decoder")

    @property
    def target_language(self):
        return self.data.get("target_lang")

    skipped_examples = "pairs (data.on_empty / data.on_error: skip)"

    def _read(self, path: str, need_targets: bool):
        """A parallel corpus (a ``PREFIX`` of two aligned files, or a TSV / CSV file; see
        ``pipeline.parallel``): a ``ParallelCorpus`` of ``texts`` (sources), ``labels``
        (targets), ``extra`` (other columns) and ``lines``."""
        from ..parallel import read_parallel

        return read_parallel(path, self.data, need_targets=need_targets)

    # -- text -> ids ------------------------------------------------------------------------
    def tokenize(self, texts) -> list[list[str]]:
        """Source texts -> source tokens (pure Python)."""
        return self.side("tokenizer", "source").transform(as_texts(texts))

    def tokenize_targets(self, texts) -> list[list[str]]:
        return self.side("tokenizer", "target").transform(as_texts(texts))

    def source_ids(self, tokens) -> list[list[int]]:
        """Source token lists -> the id lists ``search_ids`` takes (cut to the source
        vectorizer's ``max_length``)."""
        vec = self.side("vectorizer", "source")
        ids = self.side("vocabulary", "source").transform(tokens)
        return [_truncate(r, vec.max_length, vec.truncation) for r in ids]

    def _target_ids(self, tokens):
        vocab = self.side("vocabulary", "target")
        limit = self.side("vectorizer", "target").max_length
        bos, eos = vocab.id_of(BOS), vocab.id_of(EOS)
        ids = vocab.transform(tokens)
        ids = [_truncate(r, None if limit is None else max(limit - 1, 1)) for r in ids]
        return [[bos] + r for r in ids], [r + [eos] for r in ids]

    def batches(self, source_tokens, target_tokens, batch_size: int | None = None, seed=None, shuffle: bool = False):
        """Teacher-forcing batches of token-list pairs (``tokenize`` / ``tokenize_targets``
        results), as the model trains and is evaluated on: ``((source ids, <bos> + target
        ids), target ids + <eos>)``, bucketed by target length and padded per batch
        (``stages.batching.LengthBatches``; ``shuffle`` draws new batches each pass)."""
        tgt_in, tgt_out = self._target_ids(target_tokens)
        columns = {"source": self.source_ids(source_tokens), "target_in": tgt_in, "target_out": tgt_out}
        return id_batches(columns, batch_size or self.training["predict_batch_size"], seed=seed, shuffle=shuffle)

    # -- training ---------------------------------------------------------------------------
    def _train(self, texts, labels, validation_data, output_dir, options, callbacks):
        """Fit both chains on source ``texts`` and target ``labels`` (their translations) and
        train the model; the dev report has BLEU and perplexity."""
        if labels is None:
            raise ValueError("A translation pipeline trains on pairs: pass the target sentences as labels")
        sources, targets = self._paired(texts, labels, names=("source sentences", "targets"), targets=as_texts)
        src_tokens, tgt_tokens = self._fit_chains(sources, targets)
        src_voc, tgt_voc = self.side("vocabulary", "source"), self.side("vocabulary", "target")
        src_vec, tgt_vec = self.side("vectorizer", "source"), self.side("vectorizer", "target")
        train = self.batches(src_tokens, tgt_tokens, options["batch_size"], seed=options["seed"], shuffle=True)
        self.truncated_ = sum(len(t) > len(s) for t, s in zip(src_tokens, self.source_ids(src_tokens)))
        if self.truncated_:
            log.info("%d source sentences were longer than max_length and truncated", self.truncated_)
        val = None
        if validation_data is not None:
            val = self._dev_pairs(validation_data, options["predict_batch_size"])

        def build(i, seed, data):
            weights = getattr(src_vec, "initial_weights", lambda: None)(), getattr(tgt_vec, "initial_weights", lambda: None)()
            self.model.build(src_vec.input_layer(len(src_voc)), tgt_vec.input_layer(len(tgt_voc)), len(tgt_voc), initial_weights=weights)
            self._searches = {}

        self._fit_networks(options, output_dir, callbacks, build, lambda seed: train, val)
        return validation_data

    def _fit_chains(self, sources, targets):
        """Fit the tokenizers, vocabularies and vectorizers of both sides (a shared stage once, on
        both sides' data). Returns the source and target tokens."""
        src_tok, tgt_tok = self.side("tokenizer", "source"), self.side("tokenizer", "target")
        src_voc, tgt_voc = self.side("vocabulary", "source"), self.side("vocabulary", "target")
        src_vec, tgt_vec = self.side("vectorizer", "source"), self.side("vectorizer", "target")

        t0 = time.perf_counter()
        if src_tok is tgt_tok:
            src_tok.fit(sources + targets)
        else:
            src_tok.fit(sources)
            tgt_tok.fit(targets)
        src_tokens, tgt_tokens = src_tok.transform(sources), tgt_tok.transform(targets)
        log.info("Tokenized %d pairs in %.1fs", len(sources), time.perf_counter() - t0)
        if src_voc is tgt_voc:
            src_voc.fit(src_tokens + tgt_tokens)
        else:
            src_voc.fit(src_tokens)
            tgt_voc.fit(tgt_tokens)
        log.info("Vocabularies: source %d, target %d tokens", len(src_voc), len(tgt_voc))
        from stages.beam_search import check_search_options

        d = self.decoder
        check_search_options(d.beam_width, d.max_length, d.length_penalty, len(tgt_voc), path=f"stages.{self._name_of(d)}")
        src_vec.fit(vocabulary=src_voc)
        if tgt_vec is not src_vec or tgt_voc is not src_voc:
            tgt_vec.fit(vocabulary=tgt_voc)
        return src_tokens, tgt_tokens

    def _dev_pairs(self, validation_data, batch_size):
        """The dev set as batches of pairs; records the vocabularies' coverage of it."""
        src_tok, tgt_tok = self.side("tokenizer", "source"), self.side("tokenizer", "target")
        src_voc, tgt_voc = self.side("vocabulary", "source"), self.side("vocabulary", "target")
        v_src, v_tgt = validation_data
        v_src_tokens, v_tgt_tokens = src_tok.transform(as_texts(v_src)), tgt_tok.transform(as_texts(v_tgt))
        self.dev_coverage_ = {
            "source": src_voc.coverage(v_src_tokens)["coverage"],
            "target": tgt_voc.coverage(v_tgt_tokens)["coverage"],
        }
        log.info("Vocabulary covers %.1f%% of dev source and %.1f%% of dev target tokens", 100 * self.dev_coverage_["source"], 100 * self.dev_coverage_["target"])
        return self.batches(v_src_tokens, v_tgt_tokens, batch_size)

    def _name_of(self, stage):
        return next(n for n, s in self.stages.items() if s is stage)

    def _after_load(self):
        self._searches = {}

    # -- decoding ---------------------------------------------------------------------------
    def search_model(self, beam_width, max_length, length_penalty, attention=False, n_best=1):
        """The Keras search model (greedy with ``beam_width`` 1, else beam search) that maps
        padded source ids to target ids and scores; built once per setting and cached."""
        from stages.beam_search import check_search_options

        vocab = self.side("vocabulary", "target")
        check_search_options(beam_width, max_length, length_penalty, len(vocab), path=f"stages.{self._name_of(self.decoder)}")
        n_best = max(1, min(int(n_best), beam_width))
        key = (beam_width, max_length, float(length_penalty), attention, n_best)
        cache = self.__dict__.setdefault("_searches", {})
        if key not in cache:
            cache[key] = self.model.search_model(
                vocab.id_of(BOS), vocab.id_of(EOS), beam_width, max_length, length_penalty, attention, n_best
            )
        return cache[key]

    def search_ids(self, source_ids, beam=None, max_length=None, length_penalty=None, batch_size=None, attention=False, n_best=1) -> dict:
        """Decode lists of source ids, batched: sentences are sorted by length, cut into
        batches of ``batch_size`` and each batch is searched at once.

        Returns:
            ``{"tokens": (n, beams, max_length), "scores": (n, beams)}`` (and ``"attention"``
            as a list of ``(beams, max_length, source_length)`` arrays when asked for), in
            input order.
        """
        self.check_fitted()
        d = self.decoder
        beam = d.beam_width if beam is None else beam
        max_length = d.max_length if max_length is None else max_length
        alpha = d.length_penalty if length_penalty is None else length_penalty
        search = self.search_model(beam, max_length, alpha, attention, n_best)
        batch_size = batch_size or self.training["predict_batch_size"]
        n = len(source_ids)
        tokens = np.zeros((n, beam, max_length), dtype=np.int32)
        scores = np.zeros((n, beam), dtype=np.float32)
        attn = [None] * n
        for index in length_batches([len(r) for r in source_ids], batch_size):
            x = pad([source_ids[i] or [0] for i in index], 8)
            out = search.predict_on_batch(x)
            tokens[index] = np.asarray(out["tokens"])
            scores[index] = np.asarray(out["scores"])
            if attention:
                for j, i in enumerate(index):
                    attn[i] = np.asarray(out["attention"][j])[:, :, : len(source_ids[i])]
        result = {"tokens": tokens, "scores": scores}
        if attention:
            result["attention"] = attn
        return result

    def predict_tokens(self, tokens, batch_size=None, beam=None, n_best=None) -> list[dict]:
        """Translations of sources already split by ``tokenize`` (batch jobs tokenize in worker
        processes and decode in the main one)."""
        self.check_fitted()
        if not tokens:
            return []
        n_best = n_best or self.decoder.n_best
        out = self.search_ids(self.source_ids(tokens), beam=beam, batch_size=batch_size, n_best=n_best)
        vocab = self.side("vocabulary", "target")
        k = out["tokens"].shape[1]
        return self.decoder.decode(out["tokens"], out["scores"], vocab, vocab.id_of(EOS), self.target_language, n_best=min(n_best, k))

    def predict(self, texts, batch_size=None, beam=None, n_best=None) -> list[dict]:
        """Translate ``texts``: one dict per text with ``translation``, ``tokens`` and ``score``
        (and ``alternatives`` with ``n_best`` > 1).

        Args:
            texts: source sentences.
            batch_size: sentences decoded at once (default ``training.predict_batch_size``).
            beam: beam width (default: the decoder's ``beam_width``; 1 is greedy).
            n_best: hypotheses to list per sentence.
        """
        return self.predict_tokens(self.tokenize(texts), batch_size=batch_size, beam=beam, n_best=n_best)

    def translate(self, text: str, beam=None) -> dict:
        """Translate one sentence and return its attention matrix too.

        Returns:
            ``{"translation", "tokens", "score", "source_tokens", "target_tokens",
            "attention"}``: ``attention[i][j]`` is the weight of source token j when the i-th
            target token (``<eos>`` last, when produced) was chosen. Without attention
            (``attention: none``) it is None.
        """
        self.check_fitted()
        src_tokens = self.tokenize([text])
        ids = self.source_ids(src_tokens)
        with_attention = self.model.attention != "none"
        out = self.search_ids(ids, beam=beam, attention=with_attention)
        vocab = self.side("vocabulary", "target")
        eos = vocab.id_of(EOS)
        answer = self.decoder.decode(out["tokens"], out["scores"], vocab, eos, self.target_language, n_best=1)[0]
        row = [int(i) for i in out["tokens"][0, 0]]
        steps = row.index(eos) + 1 if eos in row else len(row)
        target_tokens = [vocab.tokens_[i] for i in row[:steps]]
        vec = self.side("vectorizer", "source")
        answer["source_tokens"] = _truncate(src_tokens[0], vec.max_length, vec.truncation)
        answer["target_tokens"] = target_tokens
        answer["attention"] = out["attention"][0][0, :steps].tolist() if with_attention else None
        return answer

    def plot_attention(self, text: str, path: str, beam=None) -> dict:
        """Translate ``text`` and save its attention matrix as a PNG heat map (source tokens on
        the x axis, target tokens on the y axis; Chinese glyphs drawn with a CJK font when one
        is installed). Returns the ``translate`` answer with ``path`` added."""
        answer = self.translate(text, beam=beam)
        if answer["attention"] is None:
            raise ValueError(
                "This model has no attention to plot (stages.model.attention is none); train one with "
                "attention: bahdanau or luong"
            )
        plot_attention(answer["attention"], answer["source_tokens"], answer["target_tokens"], path, title=answer["translation"])
        answer["path"] = path
        return answer

    # -- evaluation -------------------------------------------------------------------------
    def evaluate(self, texts, labels, batch_size=None, beam=None, samples: int = 5) -> dict:
        """Corpus BLEU (sacrebleu; ``13a`` or ``zh`` tokenizer by ``data.target_lang``) of the
        decoded translations, and the model's perplexity on the references.

        Returns:
            ``{"bleu", "bleu_signature", "bleu_tokenize", "lowercase", "perplexity",
            "token_accuracy", "sentences", "beam_width", "samples"}`` (``samples``: the first few
            source / reference / translation triples). With a target tokenizer
            that lower-cases, BLEU is case-insensitive (``lowercase: true``); ``bleu_cased``
            is always the case-sensitive score (equal to ``bleu`` otherwise).
        """
        from ..bleu import corpus_bleu

        self.check_fitted()
        sources, targets = as_texts(texts), as_texts(labels)
        if len(sources) != len(targets):
            raise ValueError(f"Got {len(sources)} source sentences but {len(targets)} targets")
        src_tokens = self.tokenize(sources)
        answers = self.predict_tokens(src_tokens, batch_size=batch_size, beam=beam, n_best=1)
        hyps = [a["translation"] for a in answers]
        lowercase = bool(getattr(self.side("tokenizer", "target"), "lowercase", False))
        bleu = corpus_bleu(hyps, targets, self.target_language, lowercase=lowercase)
        cased = corpus_bleu(hyps, targets, self.target_language)["bleu"] if lowercase else bleu["bleu"]
        scores = self.model.evaluate(self.batches(src_tokens, self.tokenize_targets(targets), batch_size))
        return {
            "bleu": bleu["bleu"],
            "bleu_signature": bleu["signature"],
            "bleu_tokenize": bleu["tokenize"],
            "lowercase": lowercase,
            "bleu_cased": cased,
            "bleu_precisions": bleu["precisions"],
            "brevity_penalty": bleu["brevity_penalty"],
            "perplexity": scores["perplexity"],
            "token_accuracy": scores["accuracy"],
            "sentences": len(sources),
            "beam_width": self.decoder.beam_width if beam is None else beam,
            "samples": [
                {"source": s, "reference": r, "translation": h} for s, r, h in list(zip(sources, targets, hyps))[:samples]
            ],
        }

    # -- export -----------------------------------------------------------------------------


# Registered after TranslationPipeline, so TASKS keeps its order (translation, then language_model).
from .language_model import LanguageModelPipeline  # noqa: F401
