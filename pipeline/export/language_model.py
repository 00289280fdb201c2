"""SavedModel export of language models: raw prompt in, continuation out, generated in the graph.

Signatures (common layout in ``pipeline.export.base``):

- ``serving_default`` / ``serve_text``: ``text`` (1-D ``tf.string`` of prompts, tokenized in the
  graph) -> a continuation with the ``sampler`` decoder's settings: greedy when its
  ``temperature`` is 0, else sampled with TensorFlow's random generator (``top_k`` and
  ``temperature`` as in Python; seeded with the decoder's ``seed`` when it has one, so a prompt
  always gets the same continuation). Sampled continuations cannot equal the Python
  pipeline's, which draws with numpy; the golden check checks them for shape and vocabulary only.
- ``greedy``: the same input, always the most likely token (compared with the Python pipeline's
  ``predict(..., temperature=0)`` token for token in the golden check).
- ``serve_tokens``: ``tokens`` (2-D, padded with ``""``) -> the decoder's settings.

Each returns ``tokens`` (``[batch, max_tokens]`` strings, ``""`` after the end), ``token_ids``
(int32, 0 after the end), ``length`` and ``generated`` (the tokens joined with nothing for
unspaced languages such as Chinese, else with single spaces).
"""

from __future__ import annotations


from .base import TEXT_SIGNATURE, TOKENS_SIGNATURE, Exporter, register_exporter, text_input, texts_spec, tokens_input, traced_once
from .text import GraphText, lookup_table

BOS, EOS = "<bos>", "<eos>"


@register_exporter("language_model")
class LanguageModelExporter(Exporter):
    """Exports a fitted ``LanguageModelPipeline``."""

    def pipeline_samples(self):
        vocab = self.pipeline.stage("vocabulary")
        known = [t for t in vocab.tokens_[len(vocab.specials):] if t.strip()][:20]
        joiner = "" if self.pipeline.stage("tokenizer").type_name in ("char", "jieba") else " "
        return [joiner.join(known[:1]), joiner.join(known[1:4]), joiner.join(known[4:12])] if known else []

    def samples(self):
        # Generation runs token by token: the long row of other families would only cost time.
        given = super().samples()
        return [t for t in given if len(t) < 2000] if self._samples_given is None else given

    def write_assets(self, asset_dir):
        self.pipeline.stage("vocabulary").save_assets(asset_dir)

    def build(self, module, asset_dir):
        tf = self.tf
        p = self.pipeline
        vocab, model, d = p.stage("vocabulary"), p.stage("model"), p.stage("decoder")
        text = GraphText(p.stage("tokenizer")).attach(module)
        module.vocab_table = table = lookup_table(tf, vocab.tokens_, vocab.unk_id)
        names = tf.constant(vocab.tokens_, tf.string)
        bos, eos = vocab.id_of(BOS), vocab.id_of(EOS)
        # As LanguageModelPipeline._generate: never padding, <bos> or (with more than 4 tokens) <unk>.
        banned = [0, bos, vocab.unk_id] if len(vocab) > 4 else [0, bos]
        ban = tf.constant([-float("inf") if i in banned else 0.0 for i in range(len(vocab))], tf.float32)
        joiner = "" if (p.data.get("language") or "").split("-")[0] in ("zh", "ja", "th") else " "

        def generate(tokens, temperature):
            ids = tf.cast(table.lookup(tokens), tf.int32)
            ids = tf.concat([tf.fill([ids.nrows(), 1], bos), ids], axis=1)
            out = _generate(tf, model, ids, ban, eos, d.max_tokens, temperature, d.top_k, d.seed)
            words = tf.where(out > 0, tf.gather(names, out), "")
            kept = tf.ragged.boolean_mask(words, tf.not_equal(words, ""))
            return {"tokens": words, "token_ids": out, "length": tf.reduce_sum(tf.cast(out > 0, tf.int32), axis=1),
                    "generated": tf.strings.reduce_join(kept, axis=1, separator=joiner)}

        text_spec = texts_spec(tf)
        tokenize = traced_once(tf, text.tokenize, text_spec)

        @tf.function(input_signature=[text_spec], autograph=False)
        def serve_text(t):
            return generate(tokenize(t), d.temperature)

        @tf.function(input_signature=[text_spec], autograph=False)
        def greedy(t):
            return generate(tokenize(t), 0.0)

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.string, name="tokens")], autograph=False)
        def serve_tokens(tokens):
            return generate(tf.ragged.boolean_mask(tokens, tf.not_equal(tokens, "")), d.temperature)

        module.tokenize = tokenize.get_concrete_function()
        return {TEXT_SIGNATURE: serve_text.get_concrete_function(), "greedy": greedy.get_concrete_function(),
                TOKENS_SIGNATURE: serve_tokens.get_concrete_function()}

    def compare(self, loaded, samples):
        tf = self.tf
        p = self.pipeline
        tokens = p.tokenize(samples)
        want = p.predict_tokens(tokens, temperature=0)
        problems = []
        out = loaded.signatures["greedy"](text=text_input(tf, samples))
        for i, (answer, row) in enumerate(zip(want, out["tokens"].numpy())):
            got = [t.decode("utf-8") for t in row if t]
            if got != answer["tokens"]:
                problems.append((i, f"greedy: SavedModel {got[:12]!r} != Python {answer['tokens'][:12]!r}"))
        vocab = set(p.stage("vocabulary").tokens_)
        max_tokens = p.stage("decoder").max_tokens
        for name, inputs in ((TEXT_SIGNATURE, {"text": text_input(tf, samples)}),
                             (TOKENS_SIGNATURE, {"tokens": tokens_input(tf, tokens)})):
            rows = loaded.signatures[name](**inputs)["tokens"].numpy()
            for i, row in enumerate(rows):
                got = [t.decode("utf-8") for t in row if t]
                if len(got) > max_tokens or not set(got) <= vocab or {BOS, EOS, "<pad>"} & set(got):
                    problems.append((i, f"{name}: generated {got[:12]!r} is not a valid continuation"))
        return problems, 0.0


def _generate(tf, model, ids, ban, eos, max_tokens, temperature, top_k, seed):
    """Feed each row's prompt ids (ragged, ``<bos>`` first), then generate up to ``max_tokens``
    ids per row; returns ``[batch, max_tokens]`` int32, 0 after a row's ``<eos>``."""
    batch = ids.nrows()
    lengths = tf.cast(ids.row_lengths(), tf.int32)
    prompt = ids.to_tensor(default_value=0)
    state = [tf.zeros([batch, model.units]) for _ in range(model.layers * (2 if model.cell == "lstm" else 1))]
    log_probs = tf.zeros([batch, tf.shape(ban)[0]])

    def feed(t, log_probs, *state):
        new_lp, new_state, _ = model.step(prompt[:, t], list(state))
        live = (t < lengths)[:, None]
        return (t + 1, tf.where(live, new_lp, log_probs), *[tf.where(live, n, o) for n, o in zip(new_state, state)])

    _, log_probs, *state = tf.while_loop(lambda t, *_: t < tf.shape(prompt)[1], feed, [tf.constant(0), log_probs, *state])

    def draw(t, log_probs, done, out, *state):
        logits = log_probs + ban
        if temperature == 0:
            token = tf.cast(tf.argmax(logits, axis=-1), tf.int32)
        else:
            logits = logits / temperature
            if top_k and top_k < logits.shape[-1]:
                cutoff = tf.math.top_k(logits, k=top_k).values[:, -1:]
                logits = tf.where(logits < cutoff, -float("inf"), logits)
            if seed is None:
                token = tf.cast(tf.random.categorical(logits, 1)[:, 0], tf.int32)
            else:
                token = tf.cast(tf.random.stateless_categorical(logits, 1, seed=[seed, t])[:, 0], tf.int32)
        done = done | tf.equal(token, eos)
        out = out.write(t, tf.where(done, 0, token))
        new_lp, new_state, _ = model.step(token, list(state))
        return (t + 1, new_lp, done, out, *new_state)

    # Every row runs all max_tokens steps (rows that ended write 0): a fixed-size TensorArray
    # then stacks fine, also for an empty batch.
    out = tf.TensorArray(tf.int32, size=max_tokens)
    loop = tf.while_loop(lambda t, *_: t < max_tokens, draw,
                         [tf.constant(0), log_probs, tf.zeros([batch], tf.bool), out, *state])
    return tf.transpose(loop[3].stack())
