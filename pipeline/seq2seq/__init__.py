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
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time

import numpy as np

from stages.base import check_choice, check_str

from ..config import column_option
from ..core import Pipeline, as_texts, register_task, set_seed
from ..errors import ConfigError, DataError

# Attention pictures are drawn by pipeline.plots, whose one font lookup every picture uses
# (``find_cjk_font`` stays importable from here).
from ..plots import find_cjk_font, plot_attention  # noqa: F401

log = logging.getLogger("ktp")

BOS, EOS = "<bos>", "<eos>"
SIDES = ("source", "target")
CHAIN = ("tokenizer", "vocabulary", "vectorizer")


def _lang_option(name, value):
    check_str(name, value, allow_none=True)
    if value is not None and not re.fullmatch(r"[A-Za-z]{2,3}([-_][A-Za-z0-9]+)*", value):
        raise ConfigError(name, "must be a language code such as en, de or zh", value)


#: The translation family's ``data`` options.
TRANSLATION_DATA = {
    "format": ("aligned", lambda n, v: check_choice(n, v, ("aligned", "tsv", "csv"))),
    "source_lang": (None, _lang_option),
    "target_lang": (None, _lang_option),
    "source_column": ("source", column_option),
    "target_column": ("target", column_option),
    "header": (True, lambda n, v: check_choice(n, v, (True, False))),
    "on_empty": ("error", lambda n, v: check_choice(n, v, ("error", "skip"))),
}

#: The language-model family's ``data`` options.
LANGUAGE_MODEL_DATA = {
    "format": ("text", lambda n, v: check_choice(n, v, ("text", "tsv", "csv", "jsonl"))),
    "text_column": ("text", column_option),
    "header": (True, lambda n, v: check_choice(n, v, (True, False))),
    "language": (None, _lang_option),
}


# -- batching -------------------------------------------------------------------------------------
def _pad(rows, multiple: int = 8) -> np.ndarray:
    """Right-pad id lists with 0 to the longest, rounded up to ``multiple`` (few distinct shapes,
    so compiled functions are reused)."""
    longest = max((len(r) for r in rows), default=1) or 1
    width = int(math.ceil(longest / multiple) * multiple)
    out = np.zeros((len(rows), width), dtype=np.int32)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def _length_batches(lengths, batch_size, rng=None):
    """Index batches of sentences of similar length (little padding). With ``rng`` the lengths
    get a little noise (so batches differ between epochs) and the batch order is shuffled;
    without, batches come shortest first."""
    lengths = np.asarray(lengths, dtype=np.float64)
    key = lengths + (rng.uniform(0, 2, size=len(lengths)) if rng is not None else 0)
    order = np.argsort(key, kind="stable")
    batches = [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
    if rng is not None:
        rng.shuffle(batches)
    return batches


class _Batches:
    """Length-bucketed, per-batch padded id arrays; a new batch order each pass when shuffling.

    ``columns``: lists of id lists; the first ``n_inputs`` are model inputs, the last the target.
    """

    def __init__(self, columns, n_inputs, batch_size, seed=None, shuffle=True):
        self.columns, self.n_inputs, self.batch_size = columns, n_inputs, batch_size
        self.rng = np.random.default_rng(seed) if shuffle else None
        self.lengths = [len(r) for r in columns[-1]]
        self.batches = _length_batches(self.lengths, batch_size, self.rng)

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, idx):
        index = self.batches[idx]
        arrays = [_pad([col[i] for i in index]) for col in self.columns]
        inputs = tuple(arrays[: self.n_inputs]) if self.n_inputs > 1 else arrays[0]
        return inputs, arrays[-1]

    def reshuffle(self):
        if self.rng is not None:
            self.batches = _length_batches(self.lengths, self.batch_size, self.rng)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]
        self.reshuffle()


def _dataset(columns, n_inputs, batch_size, seed=None, shuffle=True):
    """Batches for ``Model.fit`` / ``evaluate``: a ``tf.data.Dataset`` on TensorFlow (declaring
    every dimension variable, since batches differ in size and width), a
    ``keras.utils.PyDataset`` on other backends."""
    import keras

    batches = _Batches(columns, n_inputs, batch_size, seed=seed, shuffle=shuffle)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        spec = tf.TensorSpec(shape=(None, None), dtype=tf.int32)
        inputs_spec = tuple([spec] * n_inputs) if n_inputs > 1 else spec
        ds = tf.data.Dataset.from_generator(lambda: iter(batches), output_signature=(inputs_spec, spec))
        # A known length lets Keras count steps (and not warn that the data "ran out").
        return ds.apply(tf.data.experimental.assert_cardinality(len(batches))).prefetch(2)

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()

        def __len__(self):
            return len(batches)

        def __getitem__(self, idx):
            return batches[idx]

        def on_epoch_end(self):
            batches.reshuffle()

    return Batches()


def _truncate(ids, max_length, truncation="post"):
    if max_length is None or len(ids) <= max_length:
        return ids
    return ids[:max_length] if truncation == "post" else ids[len(ids) - max_length:]


def _check_reserved(pipeline, name, vocabulary):
    missing = [t for t in (BOS, EOS) if t not in vocabulary.reserved]
    if missing:
        raise ConfigError(
            "reserved",
            f"must include {' and '.join(missing)} for a {pipeline.task} pipeline, e.g. reserved: [<bos>, <eos>]",
            list(vocabulary.reserved),
            f"stages.{name}",
        )


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

    def read(self, path: str, need_targets: bool = True):
        """Read a parallel corpus (a ``PREFIX`` of two aligned files, or a TSV / CSV file) with
        the ``data`` section's options; see ``pipeline.parallel``.

        Returns:
            a ``ParallelCorpus``: ``texts`` (sources), ``labels`` (targets), ``extra`` (other
            columns), ``skipped``.
        """
        from ..parallel import read_parallel

        corpus = read_parallel(path, self.data, need_targets=need_targets)
        if corpus.skipped:
            log.warning("%s: left out %d pairs (data.on_empty / data.on_error: skip); first: %s", path, len(corpus.skipped), corpus.skipped[0][2])
        return corpus

    # -- text -> ids ------------------------------------------------------------------------
    def tokenize(self, texts) -> list[list[str]]:
        """Source texts -> source tokens (pure Python)."""
        return self.side("tokenizer", "source").transform(as_texts(texts))

    def tokenize_targets(self, texts) -> list[list[str]]:
        return self.side("tokenizer", "target").transform(as_texts(texts))

    def _source_ids(self, tokens):
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

    def _pairs(self, src_tokens, tgt_tokens, batch_size, seed=None, shuffle=True):
        src = self._source_ids(src_tokens)
        tgt_in, tgt_out = self._target_ids(tgt_tokens)
        return _dataset([src, tgt_in, tgt_out], 2, batch_size, seed=seed, shuffle=shuffle)

    # -- training ---------------------------------------------------------------------------
    def fit(self, texts, labels, validation_data=None, output_dir=None, epochs=None, batch_size=None, seed=None, verbose=None,
            callbacks=None):
        """Fit both chains on source ``texts`` and target ``labels`` and train the model.

        Args:
            texts: source sentences.
            labels: their translations.
            validation_data: ``(sources, targets)`` for early stopping, best-epoch restore and
                the dev report (BLEU, perplexity).
            output_dir: a run folder: the fitted pipeline, ``history.csv``, checkpoints,
                ``metrics.json`` and ``training_curves.png`` go there.
            epochs, batch_size, seed, verbose: override the ``training`` section.
            callbacks: extra Keras callbacks, run after the pipeline's own.

        Returns:
            self (the Keras history is in ``history_``).
        """
        sources = as_texts(texts)
        if labels is None:
            raise ValueError("A translation pipeline trains on pairs: pass the target sentences as labels")
        targets = as_texts(labels)
        if len(sources) != len(targets):
            raise ValueError(f"Got {len(sources)} source sentences but {len(targets)} targets; they must pair up one to one")
        if not sources:
            raise ValueError("Cannot fit on an empty training set")
        options = self._options({"epochs": epochs, "batch_size": batch_size, "seed": seed, "verbose": verbose})
        set_seed(options["seed"])
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
        train = self._pairs(src_tokens, tgt_tokens, options["batch_size"], seed=options["seed"])
        self.truncated_ = sum(len(t) > len(s) for t, s in zip(src_tokens, self._source_ids(src_tokens)))
        if self.truncated_:
            log.info("%d source sentences were longer than max_length and truncated", self.truncated_)
        val = None
        if validation_data is not None:
            v_src, v_tgt = validation_data
            v_src_tokens, v_tgt_tokens = src_tok.transform(as_texts(v_src)), tgt_tok.transform(as_texts(v_tgt))
            self.dev_coverage_ = {
                "source": src_voc.coverage(v_src_tokens)["coverage"],
                "target": tgt_voc.coverage(v_tgt_tokens)["coverage"],
            }
            log.info("Vocabulary covers %.1f%% of dev source and %.1f%% of dev target tokens", 100 * self.dev_coverage_["source"], 100 * self.dev_coverage_["target"])
            val = self._pairs(v_src_tokens, v_tgt_tokens, options["predict_batch_size"], shuffle=False)

        weights = getattr(src_vec, "initial_weights", lambda: None)(), getattr(tgt_vec, "initial_weights", lambda: None)()
        self.model.build(src_vec.input_layer(len(src_voc)), tgt_vec.input_layer(len(tgt_voc)), len(tgt_voc), initial_weights=weights)
        self._searches = {}
        self.model.fit(
            train,
            validation_data=val,
            epochs=options["epochs"],
            callbacks=self._callbacks(options, output_dir, val is not None) + list(callbacks or ()),
            verbose=options["verbose"],
        )
        self.history_ = self.model.history_
        if output_dir:
            self._write_run(output_dir, options, validation_data)
        return self

    def _name_of(self, stage):
        return next(n for n, s in self.stages.items() if s is stage)

    def _write_run(self, output_dir, options, validation_data):
        self.save(output_dir)
        report = {"history": self.history_}
        if options["plots"]:
            from ..plots import plot_history

            plot_history(self.history_, os.path.join(output_dir, "training_curves.png"), monitor=options["monitor"])
        if validation_data is not None:
            report["dev"] = self.evaluate(*validation_data)
        with open(os.path.join(output_dir, "metrics.json"), "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2, ensure_ascii=False)

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
        for index in _length_batches([len(r) for r in source_ids], batch_size):
            x = _pad([source_ids[i] or [0] for i in index])
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
        out = self.search_ids(self._source_ids(tokens), beam=beam, batch_size=batch_size, n_best=n_best)
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
        ids = self._source_ids(src_tokens)
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
        ds = self._pairs(src_tokens, self.tokenize_targets(targets), batch_size or self.training["predict_batch_size"], shuffle=False)
        scores = self.model.evaluate(ds)
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

# -- language model -------------------------------------------------------------------------------
@register_task("language_model")
class LanguageModelPipeline(Pipeline):
    """Next-token language model on plain text, with sampling-based generation.

    Each non-empty line of the corpus is one sequence (``<bos>`` tokens ``<eos>``); sequences
    longer than the vectorizer's ``max_length`` are cut into consecutive windows so no token
    is lost.

    Example:
        >>> from pipeline import Pipeline
        >>> p = Pipeline.from_config({"task": "language_model", "stages": {
        ...     "tokenizer": {"type": "char"}, "vocabulary": {"reserved": ["<bos>", "<eos>"]},
        ...     "vectorizer": {"type": "embedding", "dim": 8, "max_length": 16},
        ...     "model": {"type": "rnn_language_model", "units": 8}, "decoder": {"type": "sampler"}}})
        >>> _ = p.fit(["我爱北京", "我爱上海"], epochs=1, verbose=0)
        >>> isinstance(p.generate("我", max_tokens=3, seed=1), str)
        True
    """

    required_kinds = ("tokenizer", "vocabulary", "vectorizer", "model", "decoder")
    data_options = LANGUAGE_MODEL_DATA

    def _check_stages(self):
        super()._check_stages()
        for kind, type_name in (("model", "rnn_language_model"), ("decoder", "sampler")):
            stage = self.stage(kind)
            if stage.type_name != type_name:
                name = next(n for n, s in self.stages.items() if s is stage)
                raise ConfigError("type", f"must be {type_name} in a language_model pipeline", stage.type_name, f"stages.{name}")
        vocab = self.stage("vocabulary")
        _check_reserved(self, next(n for n, s in self.stages.items() if s is vocab), vocab)

    def read(self, path: str, need_targets: bool = True):
        """Read a plain-text corpus (one sequence a line; blank lines are separators and are
        left out, counted in ``blank_lines``). ``need_targets`` is ignored: a language model's
        targets are its texts."""
        from ..readers import read_corpus

        corpus = read_corpus(path, self.data, need_labels=False)
        kept = [t for t in corpus.texts if t.strip()]
        corpus.blank_lines = len(corpus.texts) - len(kept)
        corpus.texts = kept
        if not kept:
            raise DataError(f"{path}: holds no non-blank lines")
        if corpus.skipped:
            log.warning("%s: skipped %d unreadable lines; first: %s", path, len(corpus.skipped), corpus.skipped[0][2])
        return corpus

    def tokenize(self, texts) -> list[list[str]]:
        return self.stage("tokenizer").transform(as_texts(texts))

    def _windows(self, tokens):
        vocab = self.stage("vocabulary")
        bos, eos = vocab.id_of(BOS), vocab.id_of(EOS)
        limit = self.stage("vectorizer").max_length
        inputs, targets = [], []
        for ids in vocab.transform(tokens):
            seq = [bos] + ids + [eos]
            step = limit or len(seq)
            for start in range(0, len(seq) - 1, step):
                window = seq[start: start + step + 1]
                inputs.append(window[:-1])
                targets.append(window[1:])
        return inputs, targets

    def fit(self, texts, labels=None, validation_data=None, output_dir=None, epochs=None, batch_size=None, seed=None, verbose=None,
            callbacks=None):
        """Fit the chain on ``texts`` and train next-token prediction.

        Args:
            texts: the training texts (one sequence each).
            labels: unused (a language model's targets are its texts); accepted so every task
                family trains through the same call.
            validation_data: dev texts, or ``(texts, None)``.
            output_dir, epochs, batch_size, seed, verbose: as for classification.
            callbacks: extra Keras callbacks, run after the pipeline's own.
        """
        texts = [t for t in as_texts(texts) if t.strip()]
        if not texts:
            raise ValueError("Cannot fit a language model on no (non-blank) texts")
        options = self._options({"epochs": epochs, "batch_size": batch_size, "seed": seed, "verbose": verbose})
        set_seed(options["seed"])
        tokenizer, vocabulary, vectorizer, model, _ = (self.stage(k) for k in self.required_kinds)
        tokenizer.fit(texts)
        tokens = tokenizer.transform(texts)
        vocabulary.fit(tokens)
        vectorizer.fit(vocabulary=vocabulary)
        inputs, targets = self._windows(tokens)
        train = _dataset([inputs, targets], 1, options["batch_size"], seed=options["seed"])
        val = None
        dev_texts = self._dev_texts(validation_data)
        if dev_texts:
            val = _dataset(list(self._windows(tokenizer.transform(dev_texts))), 1, options["predict_batch_size"], shuffle=False)
        model.build(vectorizer.input_layer(len(vocabulary)), len(vocabulary), getattr(vectorizer, "initial_weights", lambda: None)())
        own = self._callbacks(options, output_dir, val is not None)
        model.fit(train, validation_data=val, epochs=options["epochs"], callbacks=own + list(callbacks or ()), verbose=options["verbose"])
        self.history_ = model.history_
        if output_dir:
            self.save(output_dir)
            report = {"history": self.history_}
            if options["plots"]:
                from ..plots import plot_history

                plot_history(self.history_, os.path.join(output_dir, "training_curves.png"), monitor=options["monitor"])
            if dev_texts:
                report["dev"] = self.evaluate(dev_texts)
            with open(os.path.join(output_dir, "metrics.json"), "w", encoding="utf-8") as f:
                json.dump(report, f, indent=2, ensure_ascii=False)
        return self

    @staticmethod
    def _dev_texts(validation_data):
        if validation_data is None:
            return None
        if isinstance(validation_data, tuple) and len(validation_data) == 2 and not isinstance(validation_data[1], str):
            validation_data = validation_data[0]
        return [t for t in as_texts(validation_data) if t.strip()]

    def evaluate(self, texts, labels=None, batch_size=None) -> dict:
        """Perplexity and next-token accuracy on ``texts`` (``labels`` is unused).

        Returns:
            ``{"perplexity", "token_accuracy", "tokens", "texts"}``; tokens counts every
            predicted position, ``<eos>`` included.
        """
        self.check_fitted()
        texts = [t for t in as_texts(texts) if t.strip()]
        if not texts:
            raise ValueError("Nothing to evaluate: no non-blank texts")
        inputs, targets = self._windows(self.tokenize(texts))
        scores = self.stage("model").evaluate(_dataset([inputs, targets], 1, batch_size or self.training["predict_batch_size"], shuffle=False))
        return {
            "perplexity": scores["perplexity"],
            "token_accuracy": scores["accuracy"],
            "tokens": int(sum(len(t) for t in targets)),
            "texts": len(texts),
        }

    def generate(self, prompt: str = "", max_tokens=None, temperature=None, top_k=None, seed=None) -> str:
        """Continue ``prompt``: sample up to ``max_tokens`` tokens (stopping at ``<eos>``).

        Args:
            prompt: the text to continue ("" starts a new text).
            max_tokens, temperature, top_k, seed: override the ``sampler`` decoder's settings
                (temperature 0 is greedy; top_k 0 samples from the whole vocabulary).

        Returns:
            the generated continuation, detokenised (without the prompt).
        """
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
        self.check_fitted()
        return self._generate(self.tokenize([prompt])[0], max_tokens, temperature, top_k, seed)["generated"]

    def _generate(self, prompt_tokens, max_tokens=None, temperature=None, top_k=None, seed=None) -> dict:
        from keras import ops

        from stages.base import check_float, check_int

        self.check_fitted()
        d = self.stage("decoder")
        max_tokens = d.max_tokens if max_tokens is None else max_tokens
        temperature = d.temperature if temperature is None else temperature
        top_k = d.top_k if top_k is None else top_k
        seed = d.seed if seed is None else seed
        try:
            check_int("max_tokens", max_tokens, minimum=1)
            check_float("temperature", temperature, 0.0)
            check_int("top_k", top_k, minimum=0)
        except ConfigError as err:
            raise ValueError(str(err)) from None
        vocab = self.stage("vocabulary")
        model = self.stage("model")
        bos, eos = vocab.id_of(BOS), vocab.id_of(EOS)
        ids = [bos] + vocab.transform([list(prompt_tokens)])[0]
        state = model.initial_state(1)
        for tok in ids:
            log_probs, state, _ = model.step(ops.convert_to_tensor([tok], "int32"), state)
        rng = np.random.default_rng(seed)
        # Never sample padding, <bos> or <unk> (unless the vocabulary has almost nothing else).
        banned = [0, bos, vocab.unk_id] if len(vocab) > 4 else [0, bos]
        out = []
        for _ in range(max_tokens):
            tok = d.pick(ops.convert_to_numpy(log_probs)[0], temperature, top_k, rng, banned=banned)
            if tok == eos:
                break
            out.append(tok)
            log_probs, state, _ = model.step(ops.convert_to_tensor([tok], "int32"), state)
        tokens = [vocab.tokens_[i] for i in out]
        language = self.data.get("language")
        return {
            "prompt": d.to_text(list(prompt_tokens), language),
            "generated": d.to_text(tokens, language),
            "tokens": tokens,
        }

    def predict_tokens(self, tokens, batch_size=None, max_tokens=None, temperature=None, top_k=None, seed=None) -> list[dict]:
        """Continue each prompt, given as tokens (from ``tokenize``): one dict per prompt with
        ``prompt``, ``generated`` and ``tokens``. ``max_tokens``, ``temperature``, ``top_k``
        and ``seed`` override the decoder's settings (``temperature=0`` is greedy)."""
        self.check_fitted()
        return [self._generate(t, max_tokens, temperature, top_k, seed) for t in tokens]

    def predict(self, texts, batch_size=None, max_tokens=None, temperature=None, top_k=None, seed=None) -> list[dict]:
        """Continue each prompt in ``texts`` (see ``predict_tokens``)."""
        return self.predict_tokens(self.tokenize(texts), batch_size, max_tokens, temperature, top_k, seed)
