"""Write the saved pipelines that ``tests/test_saved_compat.py`` loads: one tiny pipeline per task
family (the conformance suite's configs, seed 42, 2 epochs; the tagger 12), saved by the code of the day it
ran, with its answers to a few texts in ``expected.json``.

Run it again only to add a family (its folder is new) or when an incompatible format change is
intended and documented: the point of these folders is that later code must load them and
answer exactly as the code that wrote them did.

    python tests/saved/make_saved.py [TASK ...]
"""

import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from pipeline import Pipeline  # noqa: E402
from test_conformance import CASES  # noqa: E402
from test_saved_compat import answers_json  # noqa: E402

#: epochs per task (default 2): the tagger needs more before it finds any entity.
EPOCHS = {"tagging": 12}


def main(tasks):
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE).stdout.strip()
    for task in tasks or sorted(CASES):
        config, texts, targets, queries = CASES[task]
        config = {**config, "training": {**config["training"], "seed": 42, "csv_log": False, "checkpoint": False, "plots": False}}
        folder = os.path.join(HERE, task)
        shutil.rmtree(folder, ignore_errors=True)
        p = Pipeline.from_config(config).fit(texts, targets, epochs=EPOCHS.get(task, 2), verbose=0)
        p.save(folder)
        with open(os.path.join(folder, "expected.json"), "w", encoding="utf-8") as f:
            json.dump({"written_at_commit": commit, "queries": queries, "answers": answers_json(p.predict(queries))},
                      f, ensure_ascii=False, indent=1)
        print(f"{task}: saved to {folder}")


if __name__ == "__main__":
    main(sys.argv[1:])
