"""Sequence-to-sequence and language-model stages.

- ``rnn_seq2seq``: a recurrent encoder-decoder (SimpleRNN / LSTM / GRU), optionally
  bidirectional and stacked on the encoder side, with ``none``, ``bahdanau`` (additive) or
  ``luong`` (multiplicative, ``dot`` or ``general``) attention, trained with teacher forcing.
- ``rnn_language_model``: a stacked recurrent next-token model.
- ``text`` decoder: greedy or beam-search settings and detokenisation for translations.
- ``sampler`` decoder: temperature / top-k sampling settings for generated text.

Modules: ``layers`` (attention, masks, loss and metrics in ``keras.ops``, registered for
``safe_mode`` loading, so training and decoding run on every Keras 3 backend), ``models`` (the
two model stages), ``decoders`` (the two decoders and detokenisation).

How attention is computed (Luong et al. 2015 architecture, Bahdanau or Luong scores) is told in
``models``' docstring.
"""

from .decoders import BOS, DETOKENIZE, EOS, UNSPACED_LANGUAGES, SamplerDecoder, TextDecoder, detokenize, ids_to_tokens  # noqa: F401
from .layers import ClearMask, MaskedAccuracy, MaskedSequenceLoss, PaddingMask, Perplexity, SequenceAttention  # noqa: F401
from .models import RNNLanguageModel, RNNSeq2Seq, SearchModel  # noqa: F401
