"""Pipeline stages: tokenizers, vocabulary, vectorizers, models and decoders.

Importing this package registers every built-in stage under its YAML ``type`` name.
"""

from .backend import ensure_backend, import_tensorflow_quietly

ensure_backend()
import_tensorflow_quietly()  # TensorFlow's native start-up lines stay back unless KTP_VERBOSE / --verbose

from .base import Stage  # noqa: E402
from .decoders import LabelDecoder  # noqa: E402
from .models import RNNClassifier  # noqa: E402
from .seq2seq import RNNLanguageModel, RNNSeq2Seq, SamplerDecoder, TextDecoder  # noqa: E402
from .tagging import EntityDecoder, RNNTagger, TagDecoder  # noqa: E402
from .tokenizers import CharTokenizer, JiebaTokenizer, NLTKTokenizer, Tokenizer, WhitespaceTokenizer  # noqa: E402
from .vectorizers import EmbeddingVectorizer, OneHotVectorizer  # noqa: E402
from .vocabulary import Vocabulary  # noqa: E402

__all__ = [
    "Stage",
    "Tokenizer",
    "WhitespaceTokenizer",
    "CharTokenizer",
    "NLTKTokenizer",
    "JiebaTokenizer",
    "Vocabulary",
    "OneHotVectorizer",
    "EmbeddingVectorizer",
    "RNNClassifier",
    "LabelDecoder",
    "RNNTagger",
    "TagDecoder",
    "EntityDecoder",
    "RNNSeq2Seq",
    "RNNLanguageModel",
    "TextDecoder",
    "SamplerDecoder",
]
