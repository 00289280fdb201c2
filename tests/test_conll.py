import gzip
import json

import pytest

from pipeline.conll import TAGGING_DATA, check_spans, read_tagged, write_conll
from pipeline.config import validate_section
from pipeline.errors import ConfigError, DataError

CONLL = """-DOCSTART- -X- -X- O

Anna NNP B-NP B-PER
flew VBD B-VP O
to TO B-PP O
Oslo NNP B-NP B-LOC
. . O O

-DOCSTART- -X- -X- O
Acme NNP B-NP B-ORG
Corp NNP I-NP I-ORG
"""


def _options(**kw):
    return validate_section("data", kw, TAGGING_DATA)


def _write(tmp_path, text, name="x.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_read_conll_splits_sentences_and_skips_docstart(tmp_path):
    corpus = read_tagged(_write(tmp_path, CONLL), _options())
    assert corpus.texts == [["Anna", "flew", "to", "Oslo", "."], ["Acme", "Corp"]]
    assert corpus.labels == [["B-PER", "O", "O", "B-LOC", "O"], ["B-ORG", "I-ORG"]]
    assert corpus.lines == [3, 10] and corpus.unit == "word"


def test_read_conll_takes_configured_columns(tmp_path):
    corpus = read_tagged(_write(tmp_path, CONLL), _options(token_column=0, tag_column=2))
    assert corpus.labels[0][0] == "B-NP"


def test_read_conll_with_a_tab_separator_keeps_spaces_in_tokens(tmp_path):
    path = _write(tmp_path, "New York\tB-LOC\nis\tO\n")
    corpus = read_tagged(path, _options(separator="\t"))
    assert corpus.texts == [["New York", "is"]]


def test_read_conll_names_file_and_line_of_a_short_row(tmp_path):
    path = _write(tmp_path, "Anna B-PER\nflew\n")
    with pytest.raises(DataError, match=r"x\.txt:2: expected at least 2 columns \(token column 0, tag column 1\), found 1"):
        read_tagged(path, _options(tag_column=1))


def test_read_conll_names_file_and_line_of_an_unknown_tag(tmp_path):
    path = _write(tmp_path, "Anna B-PER\n\nBob E-PER\n")
    with pytest.raises(DataError, match=r"x\.txt:3: 'E-PER' is not a valid tag for the bio scheme"):
        read_tagged(path, _options())


def test_read_conll_skips_a_bad_sentence_and_reports_it(tmp_path):
    path = _write(tmp_path, "Anna B-PER\n\nBob\nsaid O\n\nCarl B-PER\n")
    corpus = read_tagged(path, _options(tag_column=1, on_error="skip"))
    assert corpus.texts == [["Anna"], ["Carl"]]
    assert len(corpus.skipped) == 1 and corpus.skipped[0][1] == 3


def test_read_conll_without_tags_needs_only_the_token_column(tmp_path):
    corpus = read_tagged(_write(tmp_path, "Anna\nflew\n"), _options(), need_tags=False)
    assert corpus.texts == [["Anna", "flew"]] and corpus.labels is None


def test_read_conll_reads_gzip(tmp_path):
    path = tmp_path / "x.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(CONLL)
    assert len(read_tagged(str(path), _options()).texts) == 2


def test_read_char_file_in_bmes(tmp_path):
    path = _write(tmp_path, "张 B-NAME\n伟 E-NAME\n好 O\n\n京 S-LOC\n", "x.bmes")
    corpus = read_tagged(path, _options(format="char", scheme="bmes"))
    assert corpus.texts == [["张", "伟", "好"], ["京"]] and corpus.unit == "char"
    assert corpus.labels[0] == ["B-NAME", "E-NAME", "O"]


def test_read_jsonl_tokens_and_tags(tmp_path):
    path = _write(tmp_path, json.dumps({"tokens": ["Anna", "ran"], "tags": ["B-PER", "O"]}) + "\n", "x.jsonl")
    corpus = read_tagged(path, _options(format="jsonl"))
    assert corpus.texts == [["Anna", "ran"]] and corpus.labels == [["B-PER", "O"]]


def test_read_jsonl_text_and_spans(tmp_path):
    rows = [{"text": "张伟在北京", "entities": [[3, 5, "LOC"], {"start": 0, "end": 2, "type": "NAME"}]}]
    path = _write(tmp_path, "\n".join(json.dumps(r, ensure_ascii=False) for r in rows), "x.jsonl")
    corpus = read_tagged(path, _options(format="jsonl"))
    assert corpus.texts == ["张伟在北京"]
    assert corpus.labels == [[{"start": 0, "end": 2, "type": "NAME"}, {"start": 3, "end": 5, "type": "LOC"}]]


def test_read_jsonl_rejects_overlapping_spans_naming_the_line(tmp_path):
    rows = [{"text": "abc", "entities": []}, {"text": "abcdef", "entities": [[0, 3, "A"], [2, 4, "B"]]}]
    path = _write(tmp_path, "\n".join(json.dumps(r) for r in rows), "x.jsonl")
    with pytest.raises(DataError, match=r"x\.jsonl:2: entities 0-3 'A' and 2-4 'B' overlap"):
        read_tagged(path, _options(format="jsonl"))


def test_read_jsonl_rejects_spans_outside_the_text(tmp_path):
    path = _write(tmp_path, json.dumps({"text": "abc", "entities": [[1, 9, "A"]]}), "x.jsonl")
    with pytest.raises(DataError, match=r"x\.jsonl:1: entity \[1, 9, 'A'\] lies outside the text"):
        read_tagged(path, _options(format="jsonl"))


def test_read_jsonl_rejects_tags_that_do_not_pair_with_tokens(tmp_path):
    path = _write(tmp_path, json.dumps({"tokens": ["a", "b"], "tags": ["O"]}), "x.jsonl")
    with pytest.raises(DataError, match="one tag per token"):
        read_tagged(path, _options(format="jsonl"))


def test_check_spans_rejects_empty_spans():
    with pytest.raises(ValueError, match="start < end"):
        check_spans("abc", [[1, 1, "A"]])


def test_read_tagged_refuses_an_empty_file(tmp_path):
    with pytest.raises(DataError, match="no sentences were read"):
        read_tagged(_write(tmp_path, "\n\n"), _options())


def test_tagging_data_options_reject_unknown_scheme():
    with pytest.raises(ConfigError, match="data.scheme must be one of bio, iob1, bioes, bmes"):
        _options(scheme="bilou")


def test_write_conll_round_trips(tmp_path):
    path = write_conll(str(tmp_path / "o.txt"), [["a", "b"], ["c"]], [["B-X", "I-X"], ["O"]])
    corpus = read_tagged(path, _options())
    assert corpus.texts == [["a", "b"], ["c"]] and corpus.labels == [["B-X", "I-X"], ["O"]]


@pytest.mark.slow
@pytest.mark.parametrize(
    "folder, name, options, sentences",
    [("conll2003", "train.txt", {}, 14041), ("conll2003", "valid.txt", {}, 3250),
     ("resume_ner", "train.char.bmes", {"format": "char", "scheme": "bmes"}, 3821),
     ("resume_ner", "dev.char.bmes", {"format": "char", "scheme": "bmes"}, 463)],
)
def test_read_tagged_loads_the_reference_corpora(folder, name, options, sentences):
    import os

    path = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", folder, name)
    if not os.path.isfile(path):
        path = os.path.join("/work/shared/data", folder, name)
    if not os.path.isfile(path):
        pytest.skip("reference corpus not available")
    corpus = read_tagged(path, _options(**options))
    assert len(corpus.texts) == sentences and not corpus.skipped


def test_read_conll_with_cr_only_line_endings_keeps_sentences_and_lines(tmp_path):
    path = tmp_path / "cr.txt"
    path.write_bytes(CONLL.replace("\n", "\r").encode("utf-8"))
    corpus = read_tagged(str(path), _options())
    assert corpus.texts == [["Anna", "flew", "to", "Oslo", "."], ["Acme", "Corp"]] and corpus.lines == [3, 10]


def test_read_conll_truncated_gzip_is_a_data_error_naming_the_line(tmp_path):
    text = "".join(f"w{i} O\n" + ("\n" if i % 5 == 4 else "") for i in range(20000))
    data = gzip.compress(text.encode("utf-8"))
    path = tmp_path / "cut.txt.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.txt\.gz:\d+: the file cannot be read past line \d+: the compressed file is truncated"):
        read_tagged(str(path), _options())
    corpus = read_tagged(str(path), _options(on_error="skip"))
    assert len(corpus.texts) > 100 and len(corpus.skipped) == 1


def test_read_jsonl_line_nested_too_deeply_is_a_data_error(tmp_path):
    path = _write(tmp_path, "[" * 100_000 + "]" * 100_000 + "\n", "deep.jsonl")
    with pytest.raises(DataError, match=r"deep\.jsonl:1: not valid JSON here \(it nests too deeply\)"):
        read_tagged(path, _options(format="jsonl"))
