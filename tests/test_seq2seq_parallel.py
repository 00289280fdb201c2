"""Parallel-corpus readers (pipeline.parallel) and TranslationPipeline.read."""

import os

import pytest

from pipeline import DataError, Pipeline
from pipeline.parallel import read_parallel

ALIGNED = {"format": "aligned", "source_lang": "de", "target_lang": "en"}
SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data")


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_read_parallel_aligned_prefix_pairs_lines(tmp_path):
    _write(tmp_path / "train.de", "ein hund\neine katze\n")
    _write(tmp_path / "train.en", "a dog\na cat\n")
    corpus = read_parallel(str(tmp_path / "train"), ALIGNED)
    assert corpus.texts == ["ein hund", "eine katze"] and corpus.labels == ["a dog", "a cat"]
    assert corpus.lines == [1, 2]


def test_read_parallel_aligned_either_direction(tmp_path):
    _write(tmp_path / "train.de", "ein hund\n")
    _write(tmp_path / "train.en", "a dog\n")
    corpus = read_parallel(str(tmp_path / "train"), {**ALIGNED, "source_lang": "en", "target_lang": "de"})
    assert (corpus.texts, corpus.labels) == (["a dog"], ["ein hund"])


def test_read_parallel_aligned_unequal_files_name_the_line(tmp_path):
    _write(tmp_path / "train.de", "eins\nzwei\ndrei\n")
    _write(tmp_path / "train.en", "one\ntwo\n")
    with pytest.raises(DataError, match=r"train\.de:3: has no partner line: .*train\.en ends after 2 lines"):
        read_parallel(str(tmp_path / "train"), ALIGNED)


def test_read_parallel_aligned_empty_line_is_an_error_naming_it(tmp_path):
    _write(tmp_path / "train.de", "eins\nzwei\n")
    _write(tmp_path / "train.en", "one\n\n")
    with pytest.raises(DataError, match=r"train\.en:2: the target sentence is empty.*on_empty: skip"):
        read_parallel(str(tmp_path / "train"), ALIGNED)


def test_read_parallel_on_empty_skip_reports_left_out_pairs(tmp_path):
    _write(tmp_path / "train.de", "eins\n \ndrei\n")
    _write(tmp_path / "train.en", "one\ntwo\nthree\n")
    corpus = read_parallel(str(tmp_path / "train"), {**ALIGNED, "on_empty": "skip"})
    assert corpus.texts == ["eins", "drei"] and corpus.lines == [1, 3]
    assert corpus.skipped[0][1] == 2 and "source sentence is empty" in corpus.skipped[0][2]


def test_read_parallel_aligned_needs_languages(tmp_path):
    with pytest.raises(DataError, match="needs data.source_lang and data.target_lang"):
        read_parallel(str(tmp_path / "train"), {"format": "aligned"})


def test_read_parallel_aligned_sources_only_from_a_plain_file(tmp_path):
    path = _write(tmp_path / "input.txt", "ein hund\neine katze\n")
    corpus = read_parallel(path, ALIGNED, need_targets=False)
    assert corpus.texts == ["ein hund", "eine katze"] and corpus.labels is None


def test_read_parallel_tsv_keeps_extra_columns(tmp_path):
    path = _write(tmp_path / "pairs.tsv", "Hi.\t嗨。\tCC-BY #1\nRun.\t跑。\tCC-BY #2\n")
    options = {"format": "tsv", "header": False, "source_column": 1, "target_column": 0}
    corpus = read_parallel(path, options)
    assert corpus.texts == ["嗨。", "跑。"] and corpus.labels == ["Hi.", "Run."]
    assert corpus.extra == {"column_2": ["CC-BY #1", "CC-BY #2"]}


def test_read_parallel_csv_with_header_names_and_quotes(tmp_path):
    path = _write(tmp_path / "pairs.csv", 'en,de,note\n"Hello, world",Hallo Welt,x\nYes,Ja,"multi\nline"\n')
    options = {"format": "csv", "source_column": "de", "target_column": "en"}
    corpus = read_parallel(path, options)
    assert corpus.texts == ["Hallo Welt", "Ja"] and corpus.labels == ["Hello, world", "Yes"]
    assert corpus.extra == {"note": ["x", "multi\nline"]}
    assert corpus.lines == [2, 3]


def test_read_parallel_tsv_wrong_column_count_names_the_line(tmp_path):
    path = _write(tmp_path / "pairs.tsv", "source\ttarget\na\tb\nc\n")
    with pytest.raises(DataError, match=r"pairs\.tsv:3: expected 2 TSV columns, found 1"):
        read_parallel(path, {"format": "tsv"})


def test_read_parallel_tsv_unknown_column_name(tmp_path):
    path = _write(tmp_path / "pairs.tsv", "en\tde\na\tb\n")
    with pytest.raises(DataError, match="data.source_column 'source' is not one of the header columns"):
        read_parallel(path, {"format": "tsv"})


def test_translation_read_uses_data_section(tmp_path):
    _write(tmp_path / "train.de", "ein hund\n")
    _write(tmp_path / "train.en", "a dog\n")
    p = Pipeline.from_yaml(os.path.join(os.path.dirname(__file__), "..", "data", "configs", "quickstart_translation.yaml"))
    corpus = p.read(str(tmp_path / "train"))
    assert corpus.labels == ["a dog"]


@pytest.mark.parametrize(
    "config, pairs, first",
    [("multi30k_de_en", 29000, ("Zwei junge weiße Männer", "Two young, White males")), ("cmn_en", 19869, ("嗨。", "Hi."))],
)
def test_real_corpora_load_through_their_configs(config, pairs, first):
    if not os.path.isdir(SHARED):
        pytest.skip("the shared corpora are not next to the repository")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = Pipeline.from_yaml(os.path.join(root, "data", "configs", f"{config}.yaml"))
    cwd = os.getcwd()
    os.chdir(root)  # the configs name the corpora relative to the repository root
    try:
        corpus = p.read(p.data["train"])
    finally:
        os.chdir(cwd)
    assert len(corpus) == pairs
    assert corpus.texts[0].startswith(first[0]) and corpus.labels[0].startswith(first[1])


def test_read_parallel_csv_unclosed_quote_is_one_error_and_later_pairs_are_read(tmp_path):
    path = _write(tmp_path / "pairs.csv", 'source,target\nein hund,a dog\n"eine katze,a cat\nrot,red\nklein,small\n')
    corpus = read_parallel(path, {"format": "csv", "on_error": "skip"})
    assert corpus.texts == ["ein hund", "rot", "klein"] and corpus.lines == [2, 4, 5]
    assert corpus.skipped[0][1] == 3 and "a quoted field starts on this line" in corpus.skipped[0][2]


def test_read_parallel_aligned_cr_only_files_pair_up(tmp_path):
    (tmp_path / "train.de").write_bytes(b"ein hund\reine katze\r")
    (tmp_path / "train.en").write_bytes(b"a dog\r\na cat\r\n")
    corpus = read_parallel(str(tmp_path / "train"), ALIGNED)
    assert corpus.texts == ["ein hund", "eine katze"] and corpus.labels == ["a dog", "a cat"] and corpus.lines == [1, 2]
