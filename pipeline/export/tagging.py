"""SavedModel export of tagging pipelines, decoding inside the graph.

Signatures (common layout in ``pipeline.export.base``):

- ``serving_default`` / ``serve_text``: ``text`` (1-D ``tf.string`` of raw texts) -> ``tags``
  ``[batch, time]`` (in ``data.scheme``, ``""`` on padding), ``lengths`` ``[batch]``,
  ``tokens`` (as written in the text), ``token_start`` / ``token_end`` (character offsets into
  the raw text, -1 on padding), and the entities: ``num_entities`` ``[batch]``,
  ``entity_type``, ``entity_token_start``, ``entity_token_end`` (token indices, end
  exclusive), ``entity_start`` / ``entity_end`` (character offsets into the raw text),
  ``entity_text`` and ``entity_score``, each ``[batch, max_entities]`` (padded with ``""`` /
  -1 / 0). For character-level Chinese this is raw text in, entity spans out; jieba word-level
  taggers segment in the graph too.
- ``serve_tokens``: ``tokens`` (2-D, one row of tokens per sentence as written, padded with
  ``""``) -> the same outputs without the character offsets.

The computation after tokenizing is ``tagging_graph.TaggerGraph``.
"""

from __future__ import annotations

from ..errors import ExportError
from .base import TEXT_SIGNATURE, TOKENS_SIGNATURE, Exporter, ragged_tokens_spec, register_exporter, text_input, texts_spec, tokens_input, traced_once
from .tagging_graph import TaggerGraph


@register_exporter("tagging")
class TaggingExporter(Exporter):
    """Exports a fitted ``TaggingPipeline``."""

    default_atol = 5e-4

    def check_exportable(self):
        super().check_exportable()
        tokenizer = self.pipeline.stage("tokenizer")
        if getattr(tokenizer, "mode", "accurate") != "accurate":
            raise ExportError(
                f"tokenizer mode: {tokenizer.mode} gives overlapping words, which a tagger cannot tag; use mode: accurate"
            )

    def pipeline_samples(self):
        p = self.pipeline
        vocabulary = p.stage("vocabulary")
        known = [t for t in vocabulary.tokens_[len(vocabulary.specials):] if t.strip()][:60]
        if not known:
            return []
        sep = "" if p.data.get("format") == "char" or p.stage("tokenizer").type_name in ("char", "jieba") else " "
        limit = p.stage("vectorizer").max_length or 40
        long_tokens = (known * (limit // len(known) + 2))[: limit + 9]
        return [sep.join(known[:8]), sep.join(known[8:20]).upper(), sep.join(long_tokens), sep.join(reversed(long_tokens))]

    def write_assets(self, asset_dir):
        p = self.pipeline
        p.stage("vocabulary").save_assets(asset_dir)
        p.stage("decoder").save_assets(asset_dir)
        for feature in p.stage("model").feature_families():
            feature.save_assets(asset_dir)

    def build(self, module, asset_dir):
        tf = self.tf
        graph = TaggerGraph(self.pipeline, module)
        module.tag_names = tf.Variable(self.pipeline.stage("decoder").tags_, dtype=tf.string, trainable=False, name="tag_names")

        def public(out):
            return {k: v for k, v in out.items() if not k.startswith("_")}

        text_spec = texts_spec(tf)
        tag = traced_once(tf, graph, ragged_tokens_spec(tf), ragged_tokens_spec(tf))
        segment = traced_once(tf, graph.text.segment, text_spec)

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.string, name="tokens")], autograph=False)
        def serve_tokens(tokens):
            raw = tf.ragged.boolean_mask(tokens, tf.not_equal(tokens, ""))
            return public(tag(raw, raw.with_flat_values(graph.normalize_tokens(raw.flat_values))))

        @tf.function(input_signature=[text_spec], autograph=False)
        def serve_text(text):
            return _with_offsets(tf, graph, tag, segment(text), public)

        @tf.function(input_signature=[text_spec], autograph=False)
        def tokenize(text):
            return segment(text)["raw"]

        module.tokenize = tokenize.get_concrete_function()
        return {TEXT_SIGNATURE: serve_text.get_concrete_function(), TOKENS_SIGNATURE: serve_tokens.get_concrete_function()}

    def pipeline_tokens(self, samples):
        return [s.raw for s in self.pipeline.tokenize(samples)]

    def compare(self, loaded, samples):
        """Tags, entity types, token and character offsets, texts and scores of both signatures.

        ``serve_tokens`` gets each sample's tokens as written; the reference is the pipeline
        tagging exactly those tokens (joined with spaces, each normalised on its own).
        """
        from ..tagging import TokenizedText

        tf = self.tf
        p = self.pipeline
        sentences = p.tokenize(samples)
        raw_rows = [s.raw for s in sentences]
        tokenizer = p.stage("tokenizer")
        as_given = []
        for raw in raw_rows:
            spans, pos = [], 0
            for tok in raw:
                spans.append((pos, pos + len(tok)))
                pos += len(tok) + 1
            as_given.append(TokenizedText([tokenizer.normalize(tok) for tok in raw], " ".join(raw), spans))
        runs = [(TEXT_SIGNATURE, {"text": text_input(tf, samples)}, sentences),
                (TOKENS_SIGNATURE, {"tokens": tokens_input(tf, raw_rows)}, as_given)]
        problems, max_diff = [], 0.0
        for name, inputs, reference in runs:
            out = {k: v.numpy() for k, v in loaded.signatures[name](**inputs).items()}
            answers = p.predict_tokens(reference)
            # Answers carry their tags in data.scheme unless the decoder leaves them out.
            tags = [a["tags"] for a in answers] if all("tags" in a for a in answers) else p.tag_sequences(reference)
            for i, want in enumerate(answers):
                found, diff = _differences(name, i, out, want, tags[i], reference[i].raw, self.atol)
                problems += found
                max_diff = max(max_diff, diff)
        return problems, max_diff


def _with_offsets(tf, graph, tag, seg, public):
    """``serve_text``'s outputs: the tagging (``tag``) of the segmented text plus character offsets."""
    raw, start, end = seg["raw"], seg["start"], seg["end"]
    out = tag(raw, seg["tokens"])
    rows, nrows = out["_entity_row"], raw.nrows()
    e_start = tf.gather(start.flat_values, out["_entity_start"])
    e_end = tf.gather(end.flat_values, out["_entity_end"] - 1)

    def ragged(values):
        return tf.RaggedTensor.from_value_rowids(values, rows, nrows=nrows)

    e_text = graph.text.substrings(seg["text"], ragged(e_start), ragged(e_end))
    result = public(out)
    result.update(
        tokens=raw.to_tensor(default_value=""),
        token_start=tf.cast(start, tf.int32).to_tensor(default_value=-1),
        token_end=tf.cast(end, tf.int32).to_tensor(default_value=-1),
        entity_start=ragged(tf.cast(e_start, tf.int32)).to_tensor(default_value=-1),
        entity_end=ragged(tf.cast(e_end, tf.int32)).to_tensor(default_value=-1),
        entity_text=e_text.to_tensor(default_value=""),
    )
    return result


def _differences(name, i, out, want, want_tags, want_tokens, atol):
    found, max_diff = [], 0.0
    n = int(out["lengths"][i])
    got_tags = [t.decode("utf-8") for t in out["tags"][i][:n]]
    if got_tags != want_tags:
        found.append((i, f"{name}: tags {got_tags} != {want_tags} (Python)"))
    if name == TEXT_SIGNATURE:
        got_tokens = [t.decode("utf-8") for t in out["tokens"][i][:n]]
        if got_tokens != want_tokens:
            found.append((i, f"{name}: tokens {got_tokens} != {want_tokens} (Python)"))
    m = int(out["num_entities"][i])
    got = [(out["entity_type"][i][j].decode("utf-8"), int(out["entity_token_start"][i][j]), int(out["entity_token_end"][i][j]))
           for j in range(m)]
    expected = [(e["type"], e["token_start"], e["token_end"]) for e in want["entities"]]
    if got != expected:
        return found + [(i, f"{name}: entities {got} != {expected} (Python)")], max_diff
    for j, e in enumerate(want["entities"]):
        diff = abs(float(out["entity_score"][i][j]) - e["score"])
        max_diff = max(max_diff, diff)
        if diff > atol:
            found.append((i, f"{name}: entity {j} score {float(out['entity_score'][i][j]):.6g} != {e['score']:.6g}"))
        if name == TEXT_SIGNATURE:
            span = (int(out["entity_start"][i][j]), int(out["entity_end"][i][j]), out["entity_text"][i][j].decode("utf-8"))
            if span != (e["start"], e["end"], e["text"]):
                found.append((i, f"{name}: entity {j} at {span} != {(e['start'], e['end'], e['text'])}"))
    return found, max_diff
