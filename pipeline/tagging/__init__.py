"""Sequence tagging / NER (many-to-many, one tag per token):
tokenizer -> vocabulary -> vectorizer -> rnn_tagger (softmax or CRF) -> tags / entities.

Inputs and alignment
--------------------
A text is either a raw string or a list of tokens:

- raw string: the pipeline's tokenizer splits it, remembering each token's character offsets, so
  entities come back as ``start`` / ``end`` offsets into that very string. With a ``char``
  tokenizer this is character-level Chinese (raw text in, spans at character offsets out);
  with ``jieba`` it is word-level Chinese; with ``whitespace`` word-level English.
- token list (CoNLL files, pre-tokenized JSONL): the tokens are joined into a text (with a
  space, or with nothing for ``data.format: char``) and that text is tokenized as above. With a
  ``whitespace`` tokenizer on word files, or a ``char`` tokenizer on char files, the tokens come
  out unchanged; with ``jieba`` over a char file, the gold entities are mapped onto the jieba
  words and predicted words are mapped back to character offsets.

Targets are tags (one per token, in ``data.scheme``) for token lists and entity spans
(``{"start", "end", "type"}`` at character offsets) for raw strings. When a gold entity's
edges fall inside a token (jieba merged characters across the edge), the entity is widened to
whole tokens for training and counted in ``alignment_``; when two gold entities end up on the
same token, the second is left out of the training targets and counted too. Evaluation always
compares entities at character offsets of the text, against the gold entities as given.

Long sentences (``data.long_sentences``) are handled against ``vectorizer.max_length``:
``split`` (default) cuts them into pieces of at most ``max_length`` tokens, tagged one by one
and joined again (an entity crossing a cut may come out as two); ``truncate`` tags only the
first ``max_length`` tokens and marks the answer ``"truncated": true``. Either way the count is
logged and reported; nothing is dropped silently.

Entity types seen at evaluation but not in training cannot be predicted: they count as misses
(as in seqeval) and are listed under ``unseen_types`` in the report, with a warning.

``TaggingPipeline`` is here; the other parts are modules of this package: ``offsets`` (tokens with
their character offsets), ``alignment`` (gold entities onto tokens) and ``scoring`` (entity
scores).
"""

from __future__ import annotations

import logging
import time

import numpy as np

from stages.base import check_choice
from stages.tag_schemes import (
    OUTSIDE,
    Span,
    allowed_transitions,
    convert,
    parse_tag,
    spans_to_tags,
    tags_to_spans,
)

from ..conll import TAGGING_DATA, check_spans, read_tagged
from ..core import Pipeline, register_task
from ..errors import ConfigError, DataError
from ..tagging_metrics import entity_report
from .alignment import _Example, project_spans
from .offsets import TokenizedText, _join, tokenize_with_offsets
from .scoring import span_score

__all__ = ["DEV_FIGURES", "TAGGING_TRAINING", "TaggingPipeline", "TokenizedText", "tokenize_with_offsets"]

log = logging.getLogger("ktp")

#: Dev figures the pipeline logs after every epoch (higher is better); ``training.monitor``
#: may name any of them, or ``val_loss``.
DEV_FIGURES = ("val_accuracy", "val_entity_f1")
TAGGING_TRAINING = {
    "monitor": ("val_accuracy", lambda n, v: check_choice(n, v, (*DEV_FIGURES, "val_loss"))),
}


@register_task("tagging")
class TaggingPipeline(Pipeline):
    """Sequence tagging and named-entity recognition.

    Example:
        >>> from pipeline import Pipeline
        >>> p = Pipeline.from_config({"task": "tagging", "stages": {
        ...     "tokenizer": {"type": "whitespace"}, "vocabulary": {},
        ...     "vectorizer": {"type": "embedding", "dim": 8, "max_length": 50},
        ...     "model": {"type": "rnn_tagger", "units": 8, "output": "crf"},
        ...     "decoder": {"type": "tags", "scheme": "bioes"}},
        ...     "training": {"verbose": 0, "plots": False}})
        >>> _ = p.fit([["Anna", "met", "Bob"]], [["B-PER", "O", "B-PER"]], epochs=1)
        >>> sorted(p.predict(["Anna met Bob"])[0])
        ['entities', 'tags', 'text', 'tokens']
    """

    required_kinds = ("tokenizer", "vocabulary", "vectorizer", "model", "decoder")
    data_options = TAGGING_DATA
    training_options = TAGGING_TRAINING

    def _check_stages(self):
        super()._check_stages()
        from stages.taggers import RNNTagger, TagDecoder

        names = {stage.kind: name for name, stage in self.stages.items()}
        model, decoder, vectorizer = self.stage("model"), self.stage("decoder"), self.stage("vectorizer")
        if not isinstance(model, RNNTagger):
            raise ConfigError(
                "type", "must be rnn_tagger in a tagging pipeline (rnn_classifier gives one label per text)",
                model.type_name, f"stages.{names['model']}",
            )
        if not isinstance(decoder, TagDecoder):
            raise ConfigError(
                "type", "must be tags or entities in a tagging pipeline", decoder.type_name, f"stages.{names['decoder']}"
            )
        if getattr(vectorizer, "padding", "post") != "post":
            raise ConfigError(
                "padding", "must be post in a tagging pipeline (the CRF and the masks expect padding after the tokens)",
                vectorizer.padding, f"stages.{names['vectorizer']}",
            )
        if not getattr(vectorizer, "mask", True):
            raise ConfigError(
                "mask", "must be true in a tagging pipeline (padding steps must not be tagged)",
                vectorizer.mask, f"stages.{names['vectorizer']}",
            )
        if getattr(vectorizer, "truncation", "post") != "post":
            raise ConfigError(
                "truncation",
                "is not used by tagging; long sentences follow data.long_sentences (split or truncate). Remove it",
                vectorizer.truncation, f"stages.{names['vectorizer']}",
            )
        for feature in model.feature_families():
            if feature.needs_char_tokenizer and self.stage("tokenizer").type_name != "char":
                raise ConfigError(
                    feature.name, "needs a char tokenizer (it describes each character's place in words)",
                    feature.options, f"stages.{names['model']}.features",
                )

    # -- reading ----------------------------------------------------------------------------
    skipped_examples = "malformed sentences (data.on_error: skip)"

    def _read(self, path: str, need_targets: bool):
        """A tagged corpus (see ``pipeline.conll``): a ``TaggedCorpus`` of ``texts`` (token
        lists or raw strings), ``labels`` (tags or entity spans) and ``lines``."""
        # The generic CLI overrides data.text_column / label_column; here they are the
        # token and tag columns.
        for alias, key in (("text_column", "token_column"), ("label_column", "tag_column")):
            if alias in self.data:
                self.data[key] = self.data.pop(alias)
        return read_tagged(path, self.data, need_tags=need_targets)

    # -- text -> tokens ---------------------------------------------------------------------
    @property
    def _unit(self) -> str:
        return "char" if self.data.get("format") == "char" else "word"

    def _tokenize_one(self, text) -> TokenizedText:
        tokenizer = self.stage("tokenizer")
        if isinstance(text, TokenizedText):
            return text
        if isinstance(text, str):
            return tokenize_with_offsets(tokenizer, text)
        if isinstance(text, (list, tuple)) and all(isinstance(t, str) for t in text):
            joined, _ = _join(list(text), self._unit)
            return tokenize_with_offsets(tokenizer, joined)
        raise TypeError(f"A text must be a str or a list of token strings, got {type(text).__name__}")

    def tokenize(self, texts) -> list[TokenizedText]:
        """Tokenize raw strings or token lists; each result is a list of tokens carrying its
        text and character offsets (picklable, so batch jobs can tokenize in workers)."""
        if isinstance(texts, str):
            raise TypeError("Expected a list of texts, got a single str; wrap it in a list: [text]")
        return [self._tokenize_one(t) for t in texts]

    def _examples(self, texts, targets=None, where: str = "") -> list[_Example]:
        if isinstance(texts, str):
            raise TypeError("Expected a list of texts, got a single str; wrap it in a list: [text]")
        texts = list(texts)
        if targets is not None:
            targets = list(targets)
            if len(texts) != len(targets):
                raise ValueError(f"Got {len(texts)} texts but {len(targets)} targets; they must pair up one to one")
        scheme = self.data["scheme"]
        examples = []
        for i, text in enumerate(texts):
            label = targets[i] if targets is not None else None
            sentence = self._tokenize_one(text)
            gold = tags = None
            if label is not None:
                try:
                    gold = self._gold_spans(text, label, scheme)
                except (ValueError, TypeError) as err:
                    raise DataError(f"{where}text {i}: {err}") from None
                if not isinstance(text, str) and sentence.raw == list(text):
                    tags = list(label)
            examples.append(_Example(sentence, gold, tags))
        return examples

    def _gold_spans(self, text, label, scheme):
        if isinstance(text, str):
            return [(e["type"], e["start"], e["end"]) for e in check_spans(text, list(label))]
        tags = list(label)
        if len(tags) != len(text):
            raise ValueError(f"has {len(text)} tokens but {len(tags)} tags")
        for tag in tags:
            parse_tag(tag, scheme)
        _, offsets = _join(list(text), self._unit)
        return [(s.type, offsets[s.start][0], offsets[s.end - 1][1]) for s in tags_to_spans(tags, scheme)]

    #: Gold character spans -> token spans; see ``pipeline.tagging.alignment.project_spans``.
    _project = staticmethod(project_spans)

    # -- long sentences ---------------------------------------------------------------------
    def _pieces(self, n: int) -> list[tuple[int, int]]:
        limit = self.stage("vectorizer").max_length
        if limit is None or n <= limit:
            return [(0, n)]
        if self.data["long_sentences"] == "truncate":
            return [(0, limit)]
        return [(a, min(a + limit, n)) for a in range(0, n, limit)]

    def _report_long(self, sentences, what: str, level=logging.WARNING):
        limit = self.stage("vectorizer").max_length
        n_long = sum(1 for s in sentences if limit is not None and len(s) > limit)
        if n_long:
            action = "truncated (data.long_sentences: truncate)" if self.data["long_sentences"] == "truncate" else "split into pieces (data.long_sentences: split)"
            log.log(level, "%d of %d %s sentences are longer than max_length=%d tokens and were %s", n_long, len(sentences), what, limit, action)
        return n_long

    # -- encoding ---------------------------------------------------------------------------
    def _encode(self, examples, with_targets: bool, report: dict | None = None):
        """Pieces of every sentence as model inputs (unpadded), optionally with tag ids."""
        vocabulary, model, decoder = self.stage("vocabulary"), self.stage("model"), self.stage("decoder")
        known = set(decoder.types_) if decoder.is_fitted else set()
        items = []
        for idx, ex in enumerate(examples):
            sentence = ex.sentence
            ids = np.asarray(vocabulary.transform([sentence])[0], dtype="int32")
            feats = model.feature_arrays(sentence) if len(sentence) else {}
            spans = None
            if with_targets:
                gold = ex.gold or []
                unseen = [g for g in gold if g[0] not in known]
                if unseen and report is not None:
                    report["unseen_type_entities"] = report.get("unseen_type_entities", 0) + len(unseen)
                spans = self._project(sentence, [g for g in gold if g[0] in known], report if report is not None else {})
            for a, b in self._pieces(len(sentence)):
                if b <= a:
                    continue
                item = {"token_ids": ids[a:b], "_sentence": idx, "_start": a}
                for name, arr in feats.items():
                    item[name] = arr[a:b]
                if with_targets:
                    clipped = [Span(s.type, max(s.start, a) - a, min(s.end, b) - a) for s in spans if s.start < b and s.end > a]
                    item["y"] = decoder.encode_spans(clipped, b - a)
                items.append(item)
        return items

    def _input_names(self):
        return ["token_ids", *self.stage("model").feature_names()]

    # -- training ---------------------------------------------------------------------------
    def _train(self, texts, labels, validation_data, output_dir, options, callbacks, resume: bool = False):
        """Fit every stage on tagged sentences and train the tagger.

        ``texts`` are token lists (with ``labels`` their tags in ``data.scheme``) or raw strings
        (with ``labels`` their entity spans ``{"start", "end", "type"}``). A dev set gives
        per-epoch dev token accuracy (``val_accuracy``, of the decoded tags) and entity F1
        (``val_entity_f1``) for early stopping and best-epoch restore.

        ``resume=True`` keeps what a fitted (or loaded) pipeline has learned, vocabulary, tags
        and features included, and trains its model on for ``epochs`` more epochs from its
        current weights and optimizer state. Entities of types it does not know are left out of
        the targets and counted in ``alignment_``. An ensemble (see ``RNNTagger.combine``)
        cannot be trained on.
        """
        train_items = self._training_items(texts, labels, resume)
        dev_examples = val = None
        if validation_data is not None:
            dev_examples, val = self._dev_batches(validation_data, options["batch_size"])
        self._train_members(train_items, dev_examples, val, options, output_dir, resume, callbacks)
        return validation_data

    def _training_items(self, texts, labels, resume: bool) -> list[dict]:
        """Tokenize the training set, fit every stage on it (unless resuming) and encode it with
        its targets; the alignment counts go to ``alignment_``."""
        tokenizer, vocabulary, vectorizer, model, decoder = (self.stage(k) for k in self.required_kinds)
        if resume:
            self.check_fitted()
            if getattr(model, "is_ensemble", False):
                raise ValueError(
                    "This tagger is an ensemble of several networks, which cannot be trained on as one "
                    "(resume=True). Train a new pipeline instead, e.g. on the old and new data together."
                )
        else:
            tokenizer.fit(None)
        t0 = time.perf_counter()
        examples = self._examples(texts, labels, where="training ")
        if not examples:
            raise ValueError("Cannot fit on an empty training set")
        log.info("Tokenized %d training sentences in %.1fs", len(examples), time.perf_counter() - t0)
        sentences = [ex.sentence for ex in examples]
        if not resume:
            vocabulary.fit(sentences)
            vectorizer.fit(vocabulary=vocabulary)
            types = sorted({g[0] for ex in examples for g in ex.gold})
            decoder.fit(types)
            model.fit_features(sentences, normalize=tokenizer.normalize)
            log.info("Vocabulary: %d tokens; %d entity types %s; %d tags in %s", len(vocabulary), len(types), types, len(decoder.tags_), decoder.scheme)

        self.alignment_ = {}
        train_items = self._encode(examples, True, self.alignment_)
        self.long_sentences_ = self._report_long(sentences, "training")
        if self.alignment_:
            log.warning("Aligning gold entities with the tokens: %s (see pipeline.tagging)", self.alignment_)
        if self.alignment_.get("unseen_type_entities"):
            log.warning("%d training entities have types the loaded tagger does not know; they are left out of the targets", self.alignment_["unseen_type_entities"])
        return train_items

    def _dev_batches(self, validation_data, batch_size: int):
        """The dev set's examples and its batches with targets; records the vocabulary's coverage."""
        dev_texts, dev_labels = validation_data
        dev_examples = self._examples(dev_texts, dev_labels, where="dev ")
        self.dev_coverage_ = self.stage("vocabulary").coverage([ex.sentence for ex in dev_examples])
        log.info("Vocabulary covers %.1f%% of dev tokens", 100 * self.dev_coverage_["coverage"])
        from stages.taggers import TaggingBatches

        val = TaggingBatches(self._encode(dev_examples, True, {}), self._input_names(), batch_size, shuffle=False)
        return dev_examples, val

    def _train_members(self, train_items, dev_examples, val, options, output_dir, resume: bool, callbacks_extra):
        """Build (unless resuming) and train the tagger, or each member of an ensemble in turn and
        then join them (``Pipeline._fit_networks``); with a dev set, the dev scorer runs first."""
        from stages.taggers import EpochEndScorer, TaggingBatches

        vocabulary, vectorizer, model, decoder = (self.stage(k) for k in ("vocabulary", "vectorizer", "model", "decoder"))
        n_members = 1 if resume else getattr(model, "ensemble", 1)

        def train_data(seed):
            return TaggingBatches(train_items, self._input_names(), options["batch_size"], shuffle=True, seed=seed or 0)

        def build(i, seed, data):
            if resume:
                return
            model.build(
                vectorizer.input_layer(len(vocabulary)),
                n_tags=len(decoder.tags_),
                constraints=allowed_transitions(decoder.tags_, decoder.scheme),
                initial_weights=self._initial_weights(vectorizer, seed),
                steps_per_epoch=len(data),
                seed=seed,
                **({"member": i} if n_members > 1 else {}),
            )

        def scorer_first(callbacks):
            if dev_examples is not None:
                # First, so early stopping, the checkpoint and the CSV log see its figures.
                scorer = EpochEndScorer(lambda: self._dev_figures(dev_examples), maximize=DEV_FIGURES)
                callbacks.insert(0, scorer)
                scorer.set_modes(callbacks)
            return callbacks

        self._fit_networks(options, output_dir, callbacks_extra, build, train_data, val, n_members=n_members,
                           own_callbacks=scorer_first)

    def _dev_figures(self, examples) -> dict:
        # Keras' own val_accuracy of a CRF model scores the per-token scores before Viterbi;
        # this replaces it with the accuracy of the decoded tags.
        report = self._score(examples)
        return {"val_accuracy": report["accuracy"], "val_entity_f1": report["f1"]}

    def _run_report(self) -> dict:
        return {"alignment": self.alignment_, "long_training_sentences": self.long_sentences_}

    # -- inference --------------------------------------------------------------------------
    def batches(self, texts, batch_size: int | None = None):
        """The model's input batches for ``texts`` (raw strings, token lists or ``tokenize``
        results): every sentence's pieces, encoded, bucketed by length and padded
        (``stages.batching.LengthBatches``: ``batches[i]`` is a dict of input arrays, and
        ``batches.batches[i]`` the indices of its pieces)."""
        self.check_fitted()
        return self._piece_batches(self.tokenize(texts), batch_size)[1]

    def _piece_batches(self, sentences, batch_size: int | None):
        from stages.taggers import TaggingBatches

        items = self._encode([_Example(s, None) for s in sentences], with_targets=False)
        size = batch_size or self.training["predict_batch_size"]
        return items, TaggingBatches(items, self._input_names(), size, shuffle=False, with_targets=False)

    def _run(self, sentences, batch_size: int | None = None) -> list[dict]:
        """Tag tokenized sentences: per sentence the tag ids, per-entity scores and flags."""
        self.check_fitted()
        model, decoder = self.stage("model"), self.stage("decoder")
        items, batches = self._piece_batches(sentences, batch_size)
        pieces = [None] * len(items)
        for b in range(len(batches)):
            idx = batches.batches[b]
            out = model.decode_batch(batches[b])
            for row, j in enumerate(idx):
                n = len(items[j]["token_ids"])
                piece = {"tags": out["tags"][row, :n].astype("int64")}
                if model.uses_crf:
                    piece.update(alpha=out["alpha"][row, :n], beta=out["beta"][row, :n],
                                 emissions=out["scores"][row, :n], log_z=float(out["log_z"][row]))
                else:
                    piece["probs"] = out["probs"][row, :n]
                pieces[j] = piece
        if model.uses_crf:
            trans = np.asarray(model.crf.effective_transitions()[0])
        by_sentence = [[] for _ in sentences]
        for item, piece in zip(items, pieces):
            by_sentence[item["_sentence"]].append((item["_start"], piece))
        results = []
        outside = decoder.tags_.index(OUTSIDE)
        for sentence, parts in zip(sentences, by_sentence):
            tag_ids = np.full(len(sentence), outside, dtype="int64")
            for start, piece in parts:
                tag_ids[start : start + len(piece["tags"])] = piece["tags"]
            covered = sum(len(p["tags"]) for _, p in parts)
            spans = tags_to_spans(decoder.tags_of(tag_ids))
            scores = [self._span_score(span, parts, trans if model.uses_crf else None) for span in spans]
            results.append({"tag_ids": tag_ids, "spans": spans, "scores": scores,
                            "truncated": covered < len(sentence), "pieces": len(parts)})
        return results

    #: See ``pipeline.tagging.scoring.span_score``.
    _span_score = staticmethod(span_score)

    def predict_tokens(self, tokens, batch_size: int | None = None) -> list[dict]:
        """Answers for texts already split by ``tokenize`` (or plain token lists).

        Returns:
            one dict per text: ``text``, ``tokens`` and ``tags`` (in ``data.scheme``; unless
            the decoder has ``include_tags: false``), ``entities`` (``type``, ``start``,
            ``end``, ``text``, ``token_start``, ``token_end``, ``score``), plus
            ``truncated: true`` or ``pieces: N`` for sentences longer than ``max_length``.
        """
        sentences = self.tokenize(tokens)
        if not sentences:
            return []
        # Each such answer also says so ("pieces" / "truncated"), so a log line at INFO is enough.
        self._report_long(sentences, "input", logging.INFO)
        decoder = self.stage("decoder")
        answers = []
        for sentence, result in zip(sentences, self._run(sentences, batch_size)):
            answer = decoder.answer(sentence, result["tag_ids"], result["scores"], self.data["scheme"])
            if result["truncated"]:
                answer["truncated"] = True
            elif result["pieces"] > 1:
                answer["pieces"] = result["pieces"]
            answers.append(answer)
        return answers

    def predict(self, texts, batch_size: int | None = None) -> list[dict]:
        """Tag raw strings (or token lists); see ``predict_tokens`` for the answer layout."""
        return self.predict_tokens(self.tokenize(texts), batch_size)

    def tag_sequences(self, texts, batch_size: int | None = None) -> list[list[str]]:
        """The predicted tag of every token of every text (raw strings, token lists or
        ``tokenize`` results), in ``data.scheme`` (also when the decoder leaves tags out of
        its answers)."""
        sentences = self.tokenize(texts)
        decoder = self.stage("decoder")
        runs = self._run(sentences, batch_size) if sentences else []
        return [convert(decoder.tags_of(r["tag_ids"]), decoder.scheme, self.data["scheme"]) for r in runs]

    @property
    def labels(self) -> list[str]:
        """The entity types the tagger knows."""
        self.check_fitted()
        return list(self.stage("decoder").types_)

    def evaluate(self, texts, targets, batch_size: int | None = None) -> dict:
        """Entity-level precision / recall / F1 (overall and per type, conlleval rules: equal to
        seqeval) and token accuracy.

        Entities are compared at character offsets of each text against the gold entities as
        given. Returns a JSON-serialisable dict: ``precision``, ``recall``, ``f1``,
        ``macro_*``, ``per_type``, entity counts, ``accuracy`` (tokens whose predicted tag, in
        ``data.scheme``, equals the gold tag), ``sentences``, ``tokens``, and the
        ``unseen_types`` / ``long_sentences`` / ``alignment`` notes.
        """
        examples = self._examples(texts, targets, where="evaluation ")
        return self._score(examples, batch_size)

    def _score(self, examples, batch_size=None) -> dict:
        decoder = self.stage("decoder")
        scheme = self.data["scheme"]
        sentences = [ex.sentence for ex in examples]
        results = self._run(sentences, batch_size) if sentences else []
        known = set(decoder.types_)
        gold_all, pred_all = [], []
        unseen = {}
        alignment = {}
        correct = total = 0
        for ex, result in zip(examples, results):
            sentence = ex.sentence
            gold_all.append([tuple(g) for g in ex.gold])
            pred_all.append(
                [(s.type, sentence.spans[s.start][0], sentence.spans[s.end - 1][1]) for s in result["spans"]]
            )
            for g in ex.gold:
                if g[0] not in known:
                    unseen[g[0]] = unseen.get(g[0], 0) + 1
            gold_tokens = self._project(sentence, [g for g in ex.gold if g[0] in known], alignment)
            # Token accuracy compares with the gold tags as written when they pair with the
            # tokens (as seqeval does), else with the gold entities re-tagged on the tokens.
            gold_tags = ex.tags if ex.tags is not None else spans_to_tags(gold_tokens, len(sentence), scheme)
            pred_tags = convert(decoder.tags_of(result["tag_ids"]), decoder.scheme, scheme)
            correct += sum(a == b for a, b in zip(gold_tags, pred_tags))
            total += len(sentence)
        report = entity_report(gold_all, pred_all)
        report["accuracy"] = correct / total if total else 0.0
        report["sentences"] = len(examples)
        report["tokens"] = total
        limit = self.stage("vectorizer").max_length
        report["long_sentences"] = sum(1 for s in sentences if limit is not None and len(s) > limit)
        if report["long_sentences"]:
            report["long_sentences_handling"] = self.data["long_sentences"]
        if unseen:
            log.warning(
                "Evaluation data has entities of types the tagger never saw in training (%s); "
                "they count as misses", ", ".join(f"{t}: {n}" for t, n in sorted(unseen.items())),
            )
            report["unseen_types"] = unseen
        if alignment:
            report["alignment"] = alignment
        return report
