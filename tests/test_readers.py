import gzip

import pytest

from pipeline import DataError
from pipeline.readers import read_corpus


def _write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return str(path)


def test_reader_tsv_with_header_names(tmp_path):
    path = _write(tmp_path / "a.tsv", "label\ttext_a\n1\t很好\n0\t\"差\"劲\n")
    c = read_corpus(path, {"format": "tsv", "text_column": "text_a", "label_column": "label"})
    assert c.texts == ["很好", '"差"劲'] and c.labels == ["1", "0"]


def test_reader_tsv_by_column_number_without_header(tmp_path):
    path = _write(tmp_path / "a.tsv", "good\tpos\nbad\tneg\n")
    c = read_corpus(path, {"format": "tsv", "header": False, "text_column": 0, "label_column": 1})
    assert c.texts == ["good", "bad"] and c.labels == ["pos", "neg"]


def test_reader_csv_handles_quotes_and_multiline_fields(tmp_path):
    path = _write(tmp_path / "a.csv", 'text,label\n"hello, ""world""",pos\n"two\nlines",neg\n')
    c = read_corpus(path, {"format": "csv"})
    assert c.texts == ['hello, "world"', "two\nlines"] and c.labels == ["pos", "neg"]


def test_reader_jsonl_fields(tmp_path):
    path = _write(tmp_path / "a.jsonl", '{"review": "好", "y": "pos"}\n\n{"review": "差", "y": "neg"}\n')
    c = read_corpus(path, {"format": "jsonl", "text_column": "review", "label_column": "y"})
    assert c.texts == ["好", "差"] and c.labels == ["pos", "neg"]


def test_reader_fasttext_sst_style_lines(tmp_path):
    path = _write(tmp_path / "a.txt", "1 a fine film\n0 a dull film\n")
    c = read_corpus(path, {"format": "fasttext"})
    assert c.texts == ["a fine film", "a dull film"] and c.labels == ["1", "0"]


def test_reader_fasttext_label_prefix_and_multiple_labels(tmp_path):
    path = _write(tmp_path / "a.txt", "__label__a __label__b some text\n__label__c other\n")
    c = read_corpus(path, {"format": "fasttext", "label_prefix": "__label__"})
    assert c.labels == [["a", "b"], "c"] and c.texts == ["some text", "other"]


def test_reader_plain_text_keeps_empty_lines(tmp_path):
    path = _write(tmp_path / "a.txt", "one\n\nthree\n")
    c = read_corpus(path, {"format": "text"}, need_labels=False)
    assert c.texts == ["one", "", "three"] and c.labels is None


def test_reader_label_separator_gives_label_lists(tmp_path):
    path = _write(tmp_path / "a.tsv", "text\tlabel\nx\ta|b\n")
    assert read_corpus(path, {"format": "tsv", "label_separator": "|"}).labels == [["a", "b"]]


def test_reader_reads_gzip(tmp_path):
    path = tmp_path / "a.tsv.gz"
    path.write_bytes(gzip.compress("text\tlabel\nhi\tpos\n".encode()))
    assert read_corpus(str(path), {"format": "tsv"}).texts == ["hi"]


def test_reader_non_utf8_line_names_file_and_line(tmp_path):
    path = _write(tmp_path / "bad.tsv", b"text\tlabel\nok\tpos\n\xff\xfe\tneg\n")
    with pytest.raises(DataError, match=r"bad\.tsv:3: not valid utf-8 \(byte 0xff at column 1\)"):
        read_corpus(path, {"format": "tsv"})


def test_reader_wrong_column_count_names_file_and_line(tmp_path):
    path = _write(tmp_path / "bad.tsv", "text\tlabel\nok\tpos\nextra\tpos\tcolumn\n")
    with pytest.raises(DataError, match=r"bad\.tsv:3: expected 2 TSV columns, found 3"):
        read_corpus(path, {"format": "tsv"})


def test_reader_missing_label_names_file_and_line(tmp_path):
    path = _write(tmp_path / "bad.tsv", "text\tlabel\nok\t\n")
    with pytest.raises(DataError, match=r"bad\.tsv:2: the label is missing"):
        read_corpus(path, {"format": "tsv"})


def test_reader_skip_mode_reports_every_skipped_row(tmp_path):
    path = _write(tmp_path / "bad.tsv", b"text\tlabel\nok\tpos\n\xff\tneg\nno label\t\nfine\tneg\n")
    c = read_corpus(path, {"format": "tsv", "on_error": "skip"})
    assert c.texts == ["ok", "fine"]
    assert [line for _, line, _ in c.skipped] == [3, 4]


def test_reader_unknown_column_name_lists_the_header(tmp_path):
    path = _write(tmp_path / "a.tsv", "label\ttext_a\n1\tx\n")
    with pytest.raises(DataError, match=r"data.text_column 'text' is not in the header columns \['label', 'text_a'\]"):
        read_corpus(path, {"format": "tsv"})


def test_reader_bad_json_names_the_line(tmp_path):
    path = _write(tmp_path / "a.jsonl", '{"text": "a", "label": "x"}\n{oops\n')
    with pytest.raises(DataError, match=r"a\.jsonl:2: not valid JSON"):
        read_corpus(path, {"format": "jsonl"})


def test_reader_missing_file_is_reported(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_corpus(str(tmp_path / "none.tsv"), {"format": "tsv"})


def test_reader_utf8_bom_is_dropped(tmp_path):
    path = _write(tmp_path / "a.tsv", "\ufefftext\tlabel\nx\tpos\n")
    assert read_corpus(path, {"format": "tsv"}).texts == ["x"]
