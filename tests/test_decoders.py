import numpy as np
import pytest

from pipeline import DataError
from stages.decoders import LabelDecoder


def test_label_decoder_sorts_labels_as_strings():
    assert LabelDecoder().fit([1, 0, 1]).labels_ == ["0", "1"]


def test_label_decoder_decodes_best_label_and_score():
    d = LabelDecoder().fit(["neg", "pos"])
    assert d.decode(np.array([[0.3, 0.7]])) == [{"label": "pos", "score": pytest.approx(0.7)}]


def test_label_decoder_lists_top_k():
    d = LabelDecoder(top_k=2).fit(["a", "b", "c"])
    answer = d.decode(np.array([[0.2, 0.5, 0.3]]))[0]
    assert [x["label"] for x in answer["top_k"]] == ["b", "c"]


def test_label_decoder_multi_label_threshold():
    d = LabelDecoder(multi_label=True, threshold=0.4).fit([["a", "b"], ["c"]])
    answer = d.decode(np.array([[0.9, 0.1, 0.5]]))[0]
    assert answer["labels"] == ["a", "c"] and answer["label"] == "a"
    assert d.encode([["a", "c"]]).tolist() == [[1.0, 0.0, 1.0]]


def test_label_decoder_unknown_label_is_named():
    d = LabelDecoder().fit(["neg", "pos"])
    with pytest.raises(DataError, match="Label 'meh' was not seen in training; known labels: neg, pos"):
        d.encode(["meh"])


def test_label_decoder_needs_two_labels():
    with pytest.raises(DataError, match="a classifier needs at least 2"):
        LabelDecoder().fit(["pos", "pos"])


def test_label_decoder_refuses_lists_without_multi_label():
    with pytest.raises(DataError, match="set decoder multi_label: true"):
        LabelDecoder().fit([["a", "b"], ["a"]])


def test_label_decoder_saves_labels_txt(tmp_path):
    d = LabelDecoder().fit(["负面", "正面"])
    d.save_assets(str(tmp_path))
    loaded = LabelDecoder()
    loaded.load_assets(str(tmp_path))
    assert loaded.labels_ == d.labels_


def test_label_decoder_load_refuses_a_repeated_label(tmp_path):
    (tmp_path / "labels.txt").write_text("neg\npos\nneg\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"labels\.txt:3: repeats 'neg' \(first on line 1\)"):
        LabelDecoder().load_assets(str(tmp_path))


def test_label_decoder_load_refuses_an_empty_label_list(tmp_path):
    (tmp_path / "labels.txt").write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="lists no labels"):
        LabelDecoder().load_assets(str(tmp_path))


def test_label_decoder_refuses_a_label_with_a_line_break():
    with pytest.raises(DataError, match="holds a line break"):
        LabelDecoder().fit(["pos", "neg\nx"])
