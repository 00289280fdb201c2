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

Attention is computed on the top decoder layer's output ``h_t`` (the Luong et al. 2015
architecture): a context vector ``c_t`` over the encoder outputs, then the attentional state
``tanh(W_c [c_t; h_t])`` feeds the output layer. ``bahdanau`` scores with the additive form
``v^T tanh(W_q h_t + W_k s)`` of Bahdanau et al. (2015); ``luong`` with ``h_t^T s`` (``dot``) or
``h_t^T W s`` (``general``). The context is not fed back into the next step's input (no
input feeding), which keeps teacher-forced training a single pass of the built-in RNN layers.
"""

from .decoders import BOS, DETOKENIZE, EOS, UNSPACED_LANGUAGES, SamplerDecoder, TextDecoder, detokenize, ids_to_tokens  # noqa: F401
from .layers import ClearMask, MaskedAccuracy, MaskedSequenceLoss, PaddingMask, Perplexity, SequenceAttention  # noqa: F401
from .models import RNNLanguageModel, RNNSeq2Seq, SearchModel  # noqa: F401
