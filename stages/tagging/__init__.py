"""Sequence tagging stages: the ``rnn_tagger`` model, its token feature plug-ins and the
``tags`` / ``entities`` decoders.

- ``model``: ``RNNTagger`` (softmax or CRF over stacked (bi)recurrent layers);
- ``features``: the feature families (``chars``, ``shape``, ``bigrams``, ``word_boundary``,
  ``lexicon``), each fit / transform / Keras inputs / save and load;
- ``lexicon``: dictionary matching and the ``LexiconEmbedding`` layer;
- ``decoders``: ``TagDecoder`` / ``EntityDecoder``;
- ``batches``: ``TaggingBatches`` and the dev ``EpochEndScorer``.
"""

from .batches import EpochEndScorer, TaggingBatches  # noqa: F401
from .decoders import EntityDecoder, TagDecoder  # noqa: F401
from .families import FEATURES, parse_features  # noqa: F401
from .features import (  # noqa: F401
    BIGRAM_EDGE,
    BOUNDARIES,
    CASES,
    FEATURE_PAD,
    FEATURE_UNK,
    CharEncoder,
    TokenFeature,
    bigrams,
    feature_vocab,
    word_shape,
)
from .lexicon import (  # noqa: F401
    LEXICON_CLASSES,
    Lexicon,
    LEXICON_POOLINGS,
    LEXICON_POSITIONS,
    LexiconEmbedding,
    jieba_dictionary_path,
    lexicon_matrix,
    lexicon_slots,
    lexicon_word_counts,
    lexicon_word_ids,
    pos_class,
    read_word_list,
)
from .model import RNNTagger  # noqa: F401

__all__ = [
    "BIGRAM_EDGE",
    "BOUNDARIES",
    "CASES",
    "CharEncoder",
    "EntityDecoder",
    "EpochEndScorer",
    "FEATURES",
    "FEATURE_PAD",
    "FEATURE_UNK",
    "LEXICON_CLASSES",
    "LEXICON_POOLINGS",
    "LEXICON_POSITIONS",
    "Lexicon",
    "LexiconEmbedding",
    "RNNTagger",
    "TagDecoder",
    "TaggingBatches",
    "TokenFeature",
    "bigrams",
    "feature_vocab",
    "jieba_dictionary_path",
    "lexicon_matrix",
    "lexicon_slots",
    "lexicon_word_counts",
    "lexicon_word_ids",
    "parse_features",
    "pos_class",
    "read_word_list",
    "word_shape",
]
