import gzip
import os

import pytest

from pipeline import DataError
from pipeline.readers import read_corpus


def _write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return str(path)


#: (file name, content, data options, need_labels, texts, labels) of files that read cleanly
GOOD_FILES = [
    pytest.param("a.tsv", "label\ttext_a\n1\t很好\n0\t\"差\"劲\n", {"format": "tsv", "text_column": "text_a", "label_column": "label"}, True, ["很好", '"差"劲'], ["1", "0"], id="tsv_with_header_names"),
    pytest.param("a.tsv", "good\tpos\nbad\tneg\n", {"format": "tsv", "header": False, "text_column": 0, "label_column": 1}, True, ["good", "bad"], ["pos", "neg"], id="tsv_by_column_number_without_header"),
    pytest.param("a.csv", 'text,label\n"hello, ""world""",pos\n"two\nlines",neg\n', {"format": "csv"}, True, ['hello, "world"', "two\nlines"], ["pos", "neg"], id="csv_handles_quotes_and_multiline_fields"),
    pytest.param("a.jsonl", '{"review": "好", "y": "pos"}\n\n{"review": "差", "y": "neg"}\n', {"format": "jsonl", "text_column": "review", "label_column": "y"}, True, ["好", "差"], ["pos", "neg"], id="jsonl_fields"),
    pytest.param("a.txt", "1 a fine film\n0 a dull film\n", {"format": "fasttext"}, True, ["a fine film", "a dull film"], ["1", "0"], id="fasttext_sst_style_lines"),
    pytest.param("a.txt", "__label__a __label__b some text\n__label__c other\n", {"format": "fasttext", "label_prefix": "__label__"}, True, ["some text", "other"], [["a", "b"], "c"], id="fasttext_label_prefix_and_multiple_labels"),
    pytest.param("a.txt", "one\n\nthree\n", {"format": "text"}, False, ["one", "", "three"], None, id="plain_text_keeps_empty_lines"),
    pytest.param("cr.tsv", b"text\tlabel\rgood\tpos\rbad\tneg\r\rfine\tpos\r", {"format": "tsv"}, True, ["good", "bad", "fine"], ["pos", "neg", "pos"], id="cr_only_line_endings_give_every_row"),
    pytest.param("a.csv", 'label,text\nneg,the 5" screen is tiny\npos,great\n', {"format": "csv"}, True, ['the 5" screen is tiny', "great"], ["neg", "pos"], id="csv_quote_inside_a_field_is_a_literal_character"),
    pytest.param("a.tsv", "text\tlabel\r\n好\tpos\r\n差\tneg\r\n".encode("utf-16"), {"format": "tsv", "encoding": "utf-16"}, True, ["好", "差"], ["pos", "neg"], id="utf16_file_is_read_with_its_encoding"),
]


@pytest.mark.parametrize("name, content, options, need_labels, texts, labels", GOOD_FILES)
def test_reader_reads_every_row_of_a_good_file(name, content, options, need_labels, texts, labels, tmp_path):
    c = read_corpus(_write(tmp_path / name, content), options, need_labels=need_labels)
    assert c.texts == texts and c.labels == labels


def test_reader_label_separator_gives_label_lists(tmp_path):
    path = _write(tmp_path / "a.tsv", "text\tlabel\nx\ta|b\n")
    assert read_corpus(path, {"format": "tsv", "label_separator": "|"}).labels == [["a", "b"]]


def test_reader_reads_gzip(tmp_path):
    path = tmp_path / "a.tsv.gz"
    path.write_bytes(gzip.compress("text\tlabel\nhi\tpos\n".encode()))
    assert read_corpus(str(path), {"format": "tsv"}).texts == ["hi"]


#: (file name, content, data options, the error's message): each bad file is refused with a
#: DataError naming the file and, where there is one, the line
BAD_FILES = [
    pytest.param("bad.tsv", b"text\tlabel\nok\tpos\n\xff\xfe\tneg\n", {"format": "tsv"}, r"bad\.tsv:3: not valid utf-8 \(byte 0xff at column 1\)", id="non_utf8_line_names_file_and_line"),
    pytest.param("bad.tsv", "text\tlabel\nok\tpos\nextra\tpos\tcolumn\n", {"format": "tsv"}, r"bad\.tsv:3: expected 2 TSV columns, found 3", id="wrong_column_count_names_file_and_line"),
    pytest.param("bad.tsv", "text\tlabel\nok\t\n", {"format": "tsv"}, r"bad\.tsv:2: the label is missing", id="missing_label_names_file_and_line"),
    pytest.param("a.tsv", "label\ttext_a\n1\tx\n", {"format": "tsv"}, r"data.text_column 'text' is not one of the header columns \['label', 'text_a'\]", id="unknown_column_name_lists_the_header"),
    pytest.param("a.jsonl", '{"text": "a", "label": "x"}\n{oops\n', {"format": "jsonl"}, r"a\.jsonl:2: not valid JSON", id="bad_json_names_the_line"),
    pytest.param("a.csv", 'label,text\nneg,"unclosed\npos,fine\n', {"format": "csv"}, r"a\.csv:2: a quoted field starts on this line but is not closed before the end of the file", id="csv_unclosed_quote_raises_naming_the_line"),
    pytest.param("a.tsv.gz", "text\tlabel\nx\tpos\n", {"format": "tsv"}, r"a\.tsv\.gz:1: the file cannot be read at all: it is not a gzip file", id="fake_gzip_is_a_data_error"),
]


@pytest.mark.parametrize("name, content, options, message", BAD_FILES)
def test_reader_refuses_a_bad_file_naming_what_is_wrong(name, content, options, message, tmp_path):
    path = _write(tmp_path / name, content)
    with pytest.raises(DataError, match=message):
        read_corpus(path, options)


def test_reader_skip_mode_reports_every_skipped_row(tmp_path):
    path = _write(tmp_path / "bad.tsv", b"text\tlabel\nok\tpos\n\xff\tneg\nno label\t\nfine\tneg\n")
    c = read_corpus(path, {"format": "tsv", "on_error": "skip"})
    assert c.texts == ["ok", "fine"]
    assert [line for _, line, _ in c.skipped] == [3, 4]


@pytest.mark.parametrize("task, stages, name, content, what", [
    ("classification", {"tokenizer": {"type": "char"}, "vocabulary": {}, "vectorizer": {"type": "onehot", "max_length": 8},
                        "model": {"type": "rnn_classifier"}, "decoder": {"type": "label"}},
     "bad.tsv", b"text\tlabel\nok\tpos\nno label\t\nfine\tneg\n", "malformed rows"),
    ("tagging", {"tokenizer": {"type": "whitespace"}, "vocabulary": {}, "vectorizer": {"type": "embedding", "dim": 4},
                 "model": {"type": "rnn_tagger"}, "decoder": {"type": "tags"}},
     "bad.conll", b"Anna B-PER\nsings O\n\nbroken\n\nBob B-PER\n", "malformed sentences"),
])
def test_pipeline_read_logs_the_examples_it_left_out(task, stages, name, content, what, tmp_path, caplog):
    from pipeline import Pipeline

    p = Pipeline.from_config({"task": task, "stages": stages, "data": {"on_error": "skip"}})
    path = _write(tmp_path / name, content)
    with caplog.at_level("WARNING", logger="ktp"):
        corpus = p.read(path)
    assert len(corpus.texts) == 2 and len(corpus.skipped) == 1
    assert f"{path}: left out 1 {what}" in caplog.text


def test_reader_missing_file_is_reported(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_corpus(str(tmp_path / "none.tsv"), {"format": "tsv"})


def test_reader_utf8_bom_is_dropped(tmp_path):
    path = _write(tmp_path / "a.tsv", "\ufefftext\tlabel\nx\tpos\n")
    assert read_corpus(path, {"format": "tsv"}).texts == ["x"]


# -- line endings, CSV quotes and unreadable files ------------------------------------------------

def test_reader_mixed_line_endings_keep_line_numbers(tmp_path):
    path = _write(tmp_path / "m.tsv", b"text\tlabel\r\nok\tpos\r\xff\tneg\nfine\tpos\n")
    c = read_corpus(path, {"format": "tsv", "on_error": "skip"})
    assert c.texts == ["ok", "fine"] and [line for _, line, _ in c.skipped] == [3]


def test_split_lines_matches_python_universal_newlines():
    import io
    import random

    from pipeline.readers import split_lines

    rng = random.Random(0)
    for _ in range(2000):
        text = "".join(rng.choice(["a", "b", "\r", "\n", "\r\n"]) for _ in range(rng.randint(0, 12)))
        expected = [line.encode() for line in text.splitlines()]
        for block in (1, 2, 3, 64):
            assert list(split_lines(io.BytesIO(text.encode()), block=block)) == expected, (text, block)


def test_csv_fields_match_pythons_csv_module_on_single_line_records():
    import csv
    import random

    from pipeline.readers import csv_fields

    rng = random.Random(1)
    for _ in range(5000):
        line = "".join(rng.choice('ab ,"') for _ in range(rng.randint(0, 10)))
        fields, open_quote, _ = csv_fields(line)
        if not open_quote:
            assert fields == (next(csv.reader([line]), None) or [""]), line


def test_reader_csv_unclosed_quote_is_one_error_row_and_later_rows_are_read(tmp_path):
    path = _write(tmp_path / "a.csv", 'label,text\npos,ok\nneg,"the 5 screen is tiny\npos,great\nneg,"quoted"\n')
    c = read_corpus(path, {"format": "csv", "on_error": "skip"})
    assert c.texts == ["ok", "great", "quoted"]
    (_, line, reason), = c.skipped
    assert line == 3 and "a quoted field starts on this line but" in reason


def test_reader_csv_record_over_lines_needs_the_header_column_count(tmp_path):
    # The quote closes properly on line 4, but the joined record has 1 column, not 2; the
    # quote opened on line 4 then never closes.
    path = _write(tmp_path / "a.csv", 'text,label\n"bad,neg\nfine,pos\nlast,"\nok,pos\n')
    c = read_corpus(path, {"format": "csv", "on_error": "skip"})
    assert c.texts == ["fine", "ok"] and [line for _, line, _ in c.skipped] == [2, 4]


def test_reader_csv_record_over_lines_is_limited(tmp_path):
    from pipeline import readers

    lines = ['text,label', '"long'] + ["more"] * 5 + ['end",pos']
    path = _write(tmp_path / "a.csv", "\n".join(lines) + "\n")
    rows = list(readers.CsvRecords(path, enumerate(lines, 1), width=2, max_lines=4))
    assert isinstance(rows[1][1], readers._BadLine) and "is not closed within 4 lines" in str(rows[1][1].error)
    assert len(rows) == len(lines)  # the error, then every later line on its own


def test_reader_truncated_gzip_names_the_line_where_it_stops(tmp_path):
    data = gzip.compress("".join(f"text {i}\n" for i in range(20000)).encode())
    path = tmp_path / "a.txt.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"a\.txt\.gz:\d+: the file cannot be read past line \d+: the compressed file is truncated"):
        read_corpus(str(path), {"format": "text"}, need_labels=False)


@pytest.mark.parametrize("kind", ["folder", "loop", "fifo"])
def test_reader_unreadable_paths_are_data_errors(tmp_path, kind):
    path = tmp_path / "x.tsv"
    if kind == "folder":
        path.mkdir()
    elif kind == "loop":
        path.symlink_to(path)
    else:
        os.mkfifo(path)  # must not block waiting for a writer
    reason = {"folder": "it is a folder", "loop": "symlink loop", "fifo": "not a regular file"}[kind]
    with pytest.raises(DataError, match=f"x.tsv: cannot read the file: .*{reason}"):
        read_corpus(str(path), {"format": "tsv"})


def test_reader_json_line_nested_too_deeply_is_an_error_row(tmp_path):
    path = _write(tmp_path / "a.jsonl", '{"text": "a", "label": "x"}\n' + "[" * 100_000 + "]" * 100_000 + "\n")
    c = read_corpus(path, {"format": "jsonl", "on_error": "skip"})
    assert c.texts == ["a"] and "nests too deeply" in c.skipped[0][2]


def test_reader_csv_record_with_an_undecodable_line_is_one_error_row(tmp_path):
    path = _write(tmp_path / "a.csv", b'text,label\nok,pos\n"two\nlines \xff",neg\nfine,pos\n')
    c = read_corpus(path, {"format": "csv", "on_error": "skip"})
    assert c.texts == ["ok", "fine"]
    (_, line, reason), = c.skipped
    assert line == 3 and "a.csv:4: not valid utf-8" in reason and "record that starts on line 3" in reason
