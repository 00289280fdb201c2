#!/usr/bin/env bash
# Run accuracy benchmarks in parallel on a GPU machine that has JAX but no TensorFlow / Keras
# and no network (the lent H100 / H200). Run from the repository root:
#
#   OUT=/some/dir bash benchmarks/gpu.sh [-t SECONDS] [-f JOBFILE] ['NAME: COMMAND' ...]
#
# Each job is `NAME: COMMAND` (NAME of letters, digits, '.', '_', '-'; without `NAME:` the job is
# called jobN), given as an argument or as one line of JOBFILE (blank lines and `#` lines are
# skipped). A COMMAND whose first word ends in `.py` is run with $PY; `--json-out FILE` is appended
# to every COMMAND, so it must be a benchmark that takes that option. Example:
#
#   OUT=/tmp/o bash benchmarks/gpu.sh -t 480 \
#     'sst2: benchmarks/classification_accuracy.py sst2 --data-dir .devdata' \
#     'resume: benchmarks/tagging_accuracy.py resume_ner --data-dir .devdata --max-minutes 7'
#
# Before the jobs it installs the wheels of .whl/ (keras, namex, optree, nltk, defusedxml, jieba)
# into /tmp/site with `pip --target`, puts /tmp/site and the repository on PYTHONPATH, sets
# KERAS_BACKEND=jax, XLA_PYTHON_CLIENT_PREALLOCATE=false (the jobs share the GPU) and
# PYTHONUNBUFFERED=1, prints `nvidia-smi -L` and the JAX devices and imports the project once.
# Every job runs in the background under `timeout SECONDS` (-t, default $JOB_TIMEOUT or 540;
# exit code 124 = timed out). $OUT gets three files only (the device returns at most 8):
#   logs.txt       every job's output, one section per job (rewritten every 30 s while jobs run)
#   results.jsonl  one line per job: {"name", "rc", "seconds", "command", "result": <its JSON>}
#   summary.txt    per job: exit code, wall time and the key figure (dev accuracy / entity F1)
# results.jsonl and summary.txt are also rewritten every 30 s, so a run cut off at the device's
# limit still brings back what finished. The script exits 0 when every job exited 0, else 1
# (2: bad arguments, 3: the wheels or the environment check failed).
#
# Jobs share the machine's CPU cores, and JAX compiles every batch shape on them during a job's
# first epoch: Resume NER's first epoch took 101 s with 10 jobs side by side and 160-175 s with
# 12 (then 1.6 s an epoch), so run at most about 8 jobs at once and leave -t room for the compile.
# Compiled programs go to a persistent JAX cache (JAX_COMPILATION_CACHE_DIR, default /tmp/jaxcache),
# so a later call on the same warm machine, or a later job of the same config, skips most of the
# compile: a second call of Resume NER jobs all finished within 2.5 min where the first call's
# jobs had spent 2 min compiling.
#
# Environment: OUT (required), PY (python, default python3), SKIP_INSTALL=1 (use the packages
# PY already has), WHEELS (wheel files to install, default .whl/*.whl), SITE (default /tmp/site),
# JOB_TIMEOUT (default -t), JAX_COMPILATION_CACHE_DIR (default /tmp/jaxcache; set it empty to
# turn the cache off).

set -u
PY=${PY:-python3}
SITE=${SITE:-/tmp/site}
TIMEOUT=${JOB_TIMEOUT:-540}
JOBFILE=
while getopts "t:f:" opt; do
  case $opt in
    t) TIMEOUT=$OPTARG ;;
    f) JOBFILE=$OPTARG ;;
    *) echo "usage: OUT=DIR bash benchmarks/gpu.sh [-t SECONDS] [-f JOBFILE] ['NAME: COMMAND' ...]" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
if [ -z "${OUT:-}" ]; then echo "gpu.sh: set OUT to the folder for logs.txt, results.jsonl, summary.txt" >&2; exit 2; fi
mkdir -p "$OUT"

# --- jobs -------------------------------------------------------------------------------------
names=(); cmds=()
add_job() {
  local line=$1 name cmd
  [[ $line =~ ^[[:space:]]*(#|$) ]] && return 0
  if [[ $line =~ ^[[:space:]]*([A-Za-z0-9._-]+):[[:space:]]+(.*)$ ]]; then
    name=${BASH_REMATCH[1]}; cmd=${BASH_REMATCH[2]}
  else
    name=job$(( ${#names[@]} + 1 )); cmd=$line
  fi
  for n in "${names[@]}"; do
    if [ "$n" = "$name" ]; then echo "gpu.sh: two jobs are named $name" >&2; exit 2; fi
  done
  names+=("$name"); cmds+=("$cmd")
}
if [ -n "$JOBFILE" ]; then
  while IFS= read -r line || [ -n "$line" ]; do add_job "$line"; done < "$JOBFILE"
fi
for arg in "$@"; do add_job "$arg"; done
if [ ${#names[@]} -eq 0 ]; then echo "gpu.sh: no jobs given (arguments 'NAME: COMMAND' or -f JOBFILE)" >&2; exit 2; fi

# --- environment ------------------------------------------------------------------------------
if [ "${SKIP_INSTALL:-0}" != 1 ]; then
  # shellcheck disable=SC2086  # WHEELS is a glob
  if ! "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$SITE" ${WHEELS:-.whl/*.whl}; then
    echo "gpu.sh: pip install of the wheels failed" >&2; exit 3
  fi
  export PYTHONPATH=$SITE:$PWD
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
export KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2 PY
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR-/tmp/jaxcache} JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0

command -v nvidia-smi >/dev/null && nvidia-smi -L
"$PY" - <<'EOF' || { echo "gpu.sh: the environment check failed (see above)" >&2; exit 3; }
import jax, keras, numpy as np
print("python", __import__("sys").version.split()[0], "| jax", jax.__version__, "| keras", keras.__version__,
      "backend", keras.backend.backend(), "| numpy", np.__version__)
print("jax devices:", jax.devices())
print("keras.ops check:", float(keras.ops.sum(keras.ops.ones((4, 4)))))
import jieba, nltk, yaml, matplotlib  # noqa: F401  the pipelines' optional dependencies
import pipeline, stages  # noqa: F401
print("imports ok: pipeline, stages, jieba", jieba.__version__, "nltk", nltk.__version__)
EOF

# results.jsonl and summary.txt from the jobs' .rc and .json files (also while they run)
write_results() {
"$PY" - "$OUT" "$1" <<'EOF'
import json, os, sys

out, work, final = sys.argv[1], os.environ["GPU_SH_WORK"], sys.argv[2] == "final"
rows = []
for name in open(os.path.join(work, "names.txt")).read().split():
    rc, seconds = None, None
    try:
        rc, seconds = map(int, open(os.path.join(work, name + ".rc")).read().split())
    except (OSError, ValueError):
        pass
    try:
        result = json.load(open(os.path.join(work, name + ".json"), encoding="utf-8"))
    except (OSError, ValueError):
        result = None
    command = open(os.path.join(work, name + ".cmd")).read().strip()
    rows.append({"name": name, "rc": rc, "seconds": seconds, "command": command, "result": result})
with open(os.path.join(out, "results.jsonl"), "w", encoding="utf-8") as f:
    for row in rows:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")

def figure(r):
    if not r:
        return "no JSON result"
    parts = []
    if "dev_accuracy" in r:
        parts.append(f"dev accuracy {100 * r['dev_accuracy']:.2f} %, macro-F1 {100 * r['dev_macro_f1']:.2f} %")
    if "dev_f1_percent" in r:
        parts.append(f"dev entity F1 {r['dev_f1_percent']:.2f} (target {r.get('target_f1_percent')})")
    if not parts:
        parts.append("keys: " + ", ".join(list(r)[:8]))
    if r.get("best_epoch") is not None:
        parts.append(f"best epoch {r['best_epoch']} of {r.get('epochs_run')}")
    devices = (r.get("machine") or {}).get("devices")
    if devices:
        parts.append(devices[0])
    return "; ".join(parts)

def state(row):
    if row["rc"] is None:
        return "still running"
    return f"exit {row['rc']}{' (timed out)' if row['rc'] in (124, 137) else ''}, {row['seconds']} s"

lines = [f"{row['name']}: {state(row)}; {figure(row['result'])}" for row in rows]
text = "\n".join(lines) + "\n"
open(os.path.join(out, "summary.txt"), "w", encoding="utf-8").write(text)
if final:
    print("\n===== summary\n" + text, end="")
    sys.exit(0 if all(row["rc"] == 0 for row in rows) else 1)
EOF
}

# --- run ----------------------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/gpu_jobs.XXXXXX)
export GPU_SH_WORK=$WORK
printf '%s\n' "${names[@]}" > "$WORK/names.txt"
for i in "${!names[@]}"; do printf '%s\n' "${cmds[$i]}" > "$WORK/${names[$i]}.cmd"; done
combine_logs() {
  local tmp="$WORK/logs.tmp" i
  : > "$tmp"
  for i in "${!names[@]}"; do
    printf '===== %s: %s\n' "${names[$i]}" "${cmds[$i]}" >> "$tmp"
    [ -f "$WORK/${names[$i]}.log" ] && tail -c 3000000 "$WORK/${names[$i]}.log" >> "$tmp"
    printf '\n' >> "$tmp"
  done
  mv -f "$tmp" "$OUT/logs.txt"
}

pids=()
for i in "${!names[@]}"; do
  name=${names[$i]}; cmd=${cmds[$i]}
  first=${cmd%% *}
  [[ $first == *.py ]] && cmd="\"\$PY\" $cmd"
  cmd="$cmd --json-out $WORK/$name.json"
  echo "[$(date +%T)] start $name: $cmd"
  ( start=$(date +%s)
    timeout -k 20 "$TIMEOUT" bash -c "$cmd" > "$WORK/$name.log" 2>&1
    rc=$?
    echo "$rc $(( $(date +%s) - start ))" > "$WORK/$name.rc"
    echo "[$(date +%T)] done  $name: exit $rc after $(( $(date +%s) - start )) s" ) &
  pids+=($!)
done

( trap 'kill $nap 2>/dev/null; exit 0' TERM
  while :; do sleep 30 & nap=$!; wait $nap; combine_logs; write_results running; done ) </dev/null >/dev/null 2>&1 &
flusher=$!
trap 'kill $flusher 2>/dev/null; combine_logs; write_results running; exit 130' INT TERM
for pid in "${pids[@]}"; do wait "$pid"; done
kill $flusher 2>/dev/null; wait $flusher 2>/dev/null
combine_logs

write_results final
status=$?
rm -rf "$WORK"
exit $status
