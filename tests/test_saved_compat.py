"""Pipelines saved by earlier code load and answer exactly as they did when they were saved.

``tests/saved/<task>/`` holds one tiny pipeline per task family, written by
``tests/saved/make_saved.py`` at the commit named in its ``expected.json`` (before the
restructuring of issue 15 that followed), with that code's answers to a few texts. A change that
breaks loading an old folder, or changes what an old model answers, fails here.
"""

import json
import math
import os

import pytest

from pipeline import TASKS, Pipeline

SAVED = os.path.join(os.path.dirname(__file__), "saved")
FOLDERS = sorted(d for d in os.listdir(SAVED) if os.path.isdir(os.path.join(SAVED, d)))


def answers_json(answers) -> list:
    """Answers as plain JSON values (NumPy numbers and arrays become Python ones), as
    ``expected.json`` holds them."""
    return json.loads(json.dumps(answers, default=lambda v: v.item() if hasattr(v, "item") else v.tolist()))


def _assert_same(got, want, where="answer"):
    """Equal structures, floats within 1e-5 (they pass through JSON and another process)."""
    if isinstance(want, float):
        assert isinstance(got, (int, float)) and math.isclose(got, want, rel_tol=1e-5, abs_tol=1e-6), f"{where}: {got} != {want}"
    elif isinstance(want, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(want), f"{where}: keys {sorted(got)} != {sorted(want)}"
        for key in want:
            _assert_same(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        got = list(got)
        assert len(got) == len(want), f"{where}: {len(got)} items != {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            _assert_same(g, w, f"{where}[{i}]")
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


def test_saved_folders_cover_every_registered_task():
    assert set(FOLDERS) == set(TASKS)


@pytest.mark.parametrize("task", FOLDERS)
def test_pipeline_saved_by_earlier_code_loads_and_answers_the_same(task):
    folder = os.path.join(SAVED, task)
    with open(os.path.join(folder, "expected.json"), encoding="utf-8") as f:
        expected = json.load(f)
    p = Pipeline.load(folder)
    assert p.task == task
    _assert_same(answers_json(p.predict(expected["queries"])), expected["answers"])


def test_a_saved_folder_without_its_empty_stage_folders_loads_and_one_without_files_it_needs_does_not(tmp_path):
    # Git (and some archive tools) keep no empty folders: the tokenizer and vectorizer of a
    # plain classifier save none of their own files, so a checked-in pipeline lacks them.
    import shutil

    folder = str(tmp_path / "classification")
    shutil.copytree(os.path.join(SAVED, "classification"), folder)
    for name in ("tokenizer", "vectorizer"):
        if os.path.isdir(os.path.join(folder, name)):
            os.rmdir(os.path.join(folder, name))  # fails if the stage did write files
    with open(os.path.join(folder, "expected.json"), encoding="utf-8") as f:
        expected = json.load(f)
    answers = Pipeline.load(folder).predict(expected["queries"])
    _assert_same(answers_json(answers), expected["answers"])
    shutil.rmtree(os.path.join(folder, "vocabulary"))
    with pytest.raises(FileNotFoundError, match=r"vocabulary is missing: the assets of stage 'vocabulary'"):
        Pipeline.load(folder)
