"""The language-model task family: one chain, tokenizer -> vocabulary -> vectorizer ->
rnn_language_model -> sampler."""

from __future__ import annotations

import numpy as np

from ..core import Pipeline, as_texts, register_task
from ..errors import ConfigError, DataError
from .batches import id_batches
from .options import BOS, EOS, LANGUAGE_MODEL_DATA, _check_reserved


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

    skipped_examples = "unreadable lines"

    def _read(self, path: str, need_targets: bool):
        """A plain-text corpus (one sequence a line; blank lines are separators and are left
        out, counted in ``blank_lines``). ``need_targets`` is ignored: a language model's
        targets are its texts."""
        from ..readers import read_corpus

        corpus = read_corpus(path, self.data, need_labels=False)
        kept = [t for t in corpus.texts if t.strip()]
        corpus.blank_lines = len(corpus.texts) - len(kept)
        corpus.texts = kept
        if not kept:
            raise DataError(f"{path}: holds no non-blank lines")
        return corpus

    def tokenize(self, texts) -> list[list[str]]:
        return self.stage("tokenizer").transform(as_texts(texts))

    def batches(self, tokens, batch_size: int | None = None, seed=None, shuffle: bool = False):
        """Next-token batches of token lists (``tokenize`` results), as the model trains and is
        evaluated on: ``(<bos> + ids, ids + <eos>)`` of every window of at most the
        vectorizer's ``max_length`` tokens (a long text gives several, each continuing where
        the last stopped), bucketed by length and padded per batch
        (``stages.batching.LengthBatches``; ``columns["inputs"]`` / ``["targets"]`` hold the
        windows)."""
        inputs, targets = self._windows(tokens)
        columns = {"inputs": inputs, "targets": targets}
        return id_batches(columns, batch_size or self.training["predict_batch_size"], seed=seed, shuffle=shuffle)

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

    def _train(self, texts, labels, validation_data, output_dir, options, callbacks):
        """Fit the chain on ``texts`` (blank ones left out) and train next-token prediction.
        ``labels`` is unused (a language model's targets are its texts); the dev set may be
        the texts alone or ``(texts, None)``."""
        texts = [t for t in as_texts(texts) if t.strip()]
        if not texts:
            raise ValueError("Cannot fit a language model on no (non-blank) texts")
        tokenizer, vocabulary, vectorizer, model, _ = (self.stage(k) for k in self.required_kinds)
        tokenizer.fit(texts)
        tokens = tokenizer.transform(texts)
        vocabulary.fit(tokens)
        vectorizer.fit(vocabulary=vocabulary)
        train = self.batches(tokens, options["batch_size"], seed=options["seed"], shuffle=True)
        val = None
        dev_texts = self._dev_texts(validation_data)
        if dev_texts:
            val = self.batches(tokenizer.transform(dev_texts), options["predict_batch_size"])
        def build(i, seed, data):
            model.build(vectorizer.input_layer(len(vocabulary)), len(vocabulary), getattr(vectorizer, "initial_weights", lambda: None)())

        self._fit_networks(options, output_dir, callbacks, build, lambda seed: train, val)
        return (dev_texts, None) if dev_texts else None

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
        batches = self.batches(self.tokenize(texts), batch_size)
        scores = self.stage("model").evaluate(batches)
        return {
            "perplexity": scores["perplexity"],
            "token_accuracy": scores["accuracy"],
            "tokens": int(sum(len(t) for t in batches.columns["targets"])),
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
