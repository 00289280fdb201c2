"""benchmarks/gpu.sh: parallel jobs, per-job exit codes, three combined files in $OUT."""

import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "gpu.sh")

pytestmark = pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("timeout") is None, reason="benchmarks/gpu.sh is a bash script that runs each job under coreutils `timeout` (absent on e.g. stock macOS)"
)

FAKE_BENCHMARK = """
import argparse, json
p = argparse.ArgumentParser()
p.add_argument("accuracy", type=float)
p.add_argument("--json-out")
a = p.parse_args()
print("training", a.accuracy)
with open(a.json_out, "w") as f:
    json.dump({"dev_accuracy": a.accuracy, "dev_macro_f1": 0.5, "best_epoch": 2, "epochs_run": 3}, f)
"""


def _run(tmp_path, *args, timeout=120):
    env = {**os.environ, "OUT": str(tmp_path / "out"), "PY": sys.executable, "SKIP_INSTALL": "1"}
    return subprocess.run(["bash", SCRIPT, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_gpu_sh_runs_jobs_and_reports_each_exit_code(tmp_path):
    bench = tmp_path / "fake_bench.py"
    bench.write_text(FAKE_BENCHMARK)
    jobs = tmp_path / "jobs.txt"
    jobs.write_text(f"# a comment\n\ngood: {bench} 0.75\n{bench} not-a-number\n")
    proc = _run(tmp_path, "-t", "60", "-f", str(jobs), f"last: {bench} 0.5")

    assert proc.returncode == 1, proc.stdout + proc.stderr  # some job failed
    out = tmp_path / "out"
    assert sorted(os.listdir(out)) == ["logs.txt", "results.jsonl", "summary.txt"]
    rows = {row["name"]: row for row in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    assert list(rows) == ["good", "job2", "last"]
    assert rows["good"]["rc"] == 0 and rows["good"]["result"]["dev_accuracy"] == 0.75
    assert rows["job2"]["rc"] == 2 and rows["job2"]["result"] is None
    assert rows["last"]["rc"] == 0 and rows["last"]["result"]["dev_accuracy"] == 0.5
    summary = (out / "summary.txt").read_text()
    assert "good: exit 0" in summary and "dev accuracy 75.00 %" in summary
    logs = (out / "logs.txt").read_text()
    assert "===== good:" in logs and "training 0.75" in logs and "invalid float value" in logs


def test_gpu_sh_times_out_a_job(tmp_path):
    bench = tmp_path / "sleepy.py"
    bench.write_text("import time; time.sleep(30)\n")
    proc = _run(tmp_path, "-t", "2", f"sleepy: {bench}")
    assert proc.returncode == 1
    assert "sleepy: exit 124 (timed out)" in (tmp_path / "out" / "summary.txt").read_text()


def test_gpu_sh_without_jobs_says_how_to_give_them(tmp_path):
    proc = _run(tmp_path, timeout=30)
    assert proc.returncode == 2
    assert "no jobs given" in proc.stderr
