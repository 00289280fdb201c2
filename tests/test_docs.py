"""The commands and snippets of README.md and docs/*.md run as written, on a fresh clone.

Every fenced block says what it holds: ```bash, ```console (``$ `` lines are commands) and
```python blocks are run; ```text (output, diagrams, command synopses), ```yaml, ```json and
```toml are left alone. A block may carry a directive on the line before its fence:

- ``<!-- docs-test: skip: REASON -->``: never run (it changes the git repository, needs a GPU
  machine, or is the test suite itself);
- ``<!-- docs-test: benchmark: REASON -->``: it reproduces a measurement on the real corpora
  (``../shared/data``), minutes to hours on two cores: run only with ``-m slow`` and
  ``KTP_DOCS_BENCHMARKS=1`` (and the corpora present); its commands are still checked here.

The default run checks every block statically (fast): Python blocks compile and use no name
they do not define; ``ktp`` commands parse with the real argument parser; ``pip install``
names only extras the project declares, as ``pip install -e ".[extra]"``; every file a command
reads exists in the repository or is written by an earlier step of the same page. It also
runs one short page section for real (the README's language model). ``-m slow`` runs every
page from top to bottom, each in a fresh copy of the repository, with tiny settings: the
copy's configs train one epoch (``epochs: 1``), ``--epochs N`` / ``epochs=N`` become 1, and
the install steps (virtual environment, ``pip install``) are checked, not run, since this
environment has every extra installed.
"""

from __future__ import annotations

import builtins
import dataclasses
import glob
import os
import re
import shlex
import shutil
import subprocess
import symtable
import sys

import pytest
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["README.md", *sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))]
RUN = {"bash", "console", "python"}
LEAVE = {"text", "yaml", "json", "toml"}
DIRECTIVE = re.compile(r"^<!--\s*docs-test:\s*(skip|benchmark)\s*:?\s*(.*?)\s*-->\s*$")
#: Paths of the repository a fresh clone has (and a copy needs); build products are left out.
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", ".pytest_cache", "runs", ".whl", "build", "dist")


@dataclasses.dataclass
class Block:
    page: str
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    directive: str | None = None  # skip | benchmark
    reason: str = ""

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def blocks(page: str) -> list[Block]:
    """The fenced blocks of a page, with the directive of the line before each."""
    with open(os.path.join(ROOT, page), encoding="utf-8") as f:
        lines = f.read().splitlines()
    found, i = [], 0
    while i < len(lines):
        m = re.match(r"^```\s*([\w+-]*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        start, body = i, []
        i += 1
        while i < len(lines) and not re.match(r"^```\s*$", lines[i]):
            body.append(lines[i])
            i += 1
        block = Block(page, start + 1, m.group(1).lower(), "\n".join(body) + "\n")
        before = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        d = DIRECTIVE.match(before.strip())
        if d:
            block.directive, block.reason = d.group(1), d.group(2) or "(no reason given)"
        found.append(block)
        i += 1
    return found


def every_block() -> list[Block]:
    return [b for page in PAGES for b in blocks(page)]


# -- shell commands ----------------------------------------------------------------------------------
def split_commands(line: str) -> list[str]:
    """The commands of one shell line, as written: split at ``&&``, ``||`` and ``;`` outside
    quotes, with a trailing ``# comment`` dropped."""
    parts, current, quote, i = [], [], None, 0
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == quote:
                quote = None
            elif ch == "\\" and quote == '"' and i + 1 < len(line):
                current.append(ch)
                i += 1
                ch = line[i]
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            break
        elif line.startswith(("&&", "||"), i) or ch == ";":
            parts.append("".join(current))
            current = []
            i += 1 if ch == ";" else 2
            continue
        current.append(ch)
        i += 1
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def shell_commands(block: Block) -> list[str]:
    """The commands of a bash / console block, as written: continuation lines joined, comments
    and (for console blocks) output lines dropped, ``a && b`` and ``a; b`` split."""
    text = block.text
    if block.lang == "console":
        text = "\n".join(line[2:] for line in text.splitlines() if line.startswith("$ "))
    text = re.sub(r"\\\n\s*", " ", text)
    commands = []
    for line in text.splitlines():
        for command in split_commands(line):
            try:
                shlex.split(command)
            except ValueError as err:
                raise AssertionError(f"{block.where}: cannot split {command!r}: {err}") from None
            commands.append(command)
    return commands


def _extras() -> set[str]:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return set(tomllib.load(f)["project"]["optional-dependencies"])


def _pip_problem(words: list[str]) -> str | None:
    """Why a ``pip install`` line would not work on a fresh clone (the project is not on a
    package index), or None."""
    targets = [w for w in words[2:] if not w.startswith("-")]
    if "-e" not in words or targets != [t for t in targets if t == "." or t.startswith(".[")] or not targets:
        return f"`{shlex.join(words)}`: install the project from the clone, as pip install -e \".[extra]\""
    for target in targets:
        wanted = set(filter(None, re.sub(r"^\.\[?|\]$", "", target).split(",")))
        unknown = wanted - _extras()
        if unknown:
            return f"`{shlex.join(words)}`: pyproject.toml declares no extra {', '.join(sorted(unknown))}"
    return None


def _parser():
    from pipeline.cli import build_parser

    return build_parser()


def ktp_io(words: list[str]) -> tuple[list[str], list[str]]:
    """The paths a ``ktp`` command reads and those it writes. Raises AssertionError when the
    command does not parse."""
    try:
        args = _parser().parse_args(words[1:])
    except SystemExit as exit_:
        raise AssertionError(f"`{shlex.join(words)}` does not parse (exit {exit_.code})") from None
    cmd, reads, writes = args.command, [], []
    if cmd == "train":
        reads += [args.config, *(p for p in (args.train, args.dev) if p)]
        out = args.output or os.path.join("saved_models", os.path.splitext(os.path.basename(args.config))[0])
        writes += [out] + ([os.path.join(out, "saved_model")] if args.export else [])
        if not args.train:
            reads += _config_data(args.config)
    elif cmd in ("evaluate", "coverage"):
        reads += [args.model_dir, args.data]
    elif cmd == "predict":
        reads += [args.model_dir, *args.inputs]
        writes.append(args.output)
    elif cmd == "export":
        reads.append(args.model_dir)
        writes.append(args.output or os.path.join(args.model_dir, "saved_model"))
    elif cmd == "ensemble":
        reads += args.model_dirs
        writes.append(args.output)
    elif cmd in ("inspect", "translate", "generate"):
        reads.append(args.model_dir)
        if getattr(args, "plot_attention", None):
            writes.append(args.plot_attention)
    elif cmd == "validate":
        reads.append(args.config)
    return reads, writes


def _config_data(config: str) -> list[str]:
    import yaml

    path = os.path.join(ROOT, config)
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        data = (yaml.safe_load(f) or {}).get("data") or {}
    return [data[k] for k in ("train", "dev") if isinstance(data.get(k), str)]


def shell_io(words: list[str]) -> tuple[list[str], list[str]]:
    """Reads and writes of one shell command (the few kinds the pages use)."""
    reads, writes = [], []
    if ">" in words[:-1]:
        writes.append(words[words.index(">") + 1])
        words = words[: words.index(">")]
    name = os.path.basename(words[0])
    if name == "ktp" or words[:3] == ["python", "-m", "pipeline"]:
        r, w = ktp_io(["ktp", *words[3:]] if name != "ktp" else words)
        reads, writes = reads + r, writes + w
    elif name in ("mkdir", "touch"):
        writes += [w for w in words[1:] if not w.startswith("-")]
    elif name in ("cp", "gzip", "cat"):
        paths = [w for w in words[1:] if not w.startswith("-")]
        reads += paths[:-1] if name == "cp" else paths
        writes += paths[-1:] if name == "cp" else [p + ".gz" for p in paths] if name == "gzip" else []
    elif name == "saved_model_cli":
        if "--dir" in words:
            reads.append(words[words.index("--dir") + 1])
    elif name in ("python", "python3") and len(words) > 1 and words[1].endswith(".py"):
        reads.append(words[1])
    return reads, writes


# -- python blocks -----------------------------------------------------------------------------------
def undefined_names(code: str, defined=()) -> list[str]:
    """Global names a snippet reads but neither defines, imports nor gets from builtins (what
    would be a NameError)."""
    table = symtable.symtable(code, "<docs>", "exec")
    assigned = set(defined) | {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}
    missing = set()

    def walk(t):
        for s in t.get_symbols():
            if s.is_referenced() and (t is table or s.is_global()) and not (t is table and (s.is_assigned() or s.is_imported())):
                name = s.get_name()
                if name not in assigned and not hasattr(builtins, name):
                    missing.add(name)
        for child in t.get_children():
            walk(child)

    walk(table)
    return sorted(missing)


PY_READS = re.compile(r"""(?:Pipeline\.load|from_yaml|predict_files|run_beam|saved_model\.load|load_model)\(\s*["']([^"']+)["']""")
PY_WRITES = re.compile(r"""(?:output_dir=|\.save\(|\.export\(|plot_attention\([^,]+,\s*)["']([^"']+)["']""")


def python_io(code: str) -> list[tuple[str, str]]:
    """``("read" | "write", path)`` for the files a snippet loads and saves, in the order it does."""
    events = [(m.start(), "read", m.group(1)) for m in PY_READS.finditer(code)]
    events += [(m.start(), "write", m.group(1)) for m in PY_WRITES.finditer(code)]
    return [(kind, path) for _, kind, path in sorted(events)]


# -- static checks (default run) -------------------------------------------------------------------
def test_docs_every_fence_says_what_it_holds():
    unlabelled = [f"{b.where} (```{b.lang})" for b in every_block() if b.lang not in RUN | LEAVE]
    assert unlabelled == [], "label each block bash / console / python (run) or text / yaml / json (left alone)"


def test_docs_directives_give_a_reason():
    assert [b.where for b in every_block() if b.directive and b.reason == "(no reason given)"] == []


@pytest.mark.parametrize("page", PAGES)
def test_docs_python_blocks_compile_and_define_every_name(page):
    problems = []
    for b in blocks(page):
        if b.lang != "python" or b.directive == "skip":
            continue
        try:
            compile(b.text, b.where, "exec")
        except SyntaxError as err:
            problems.append(f"{b.where}: {err}")
            continue
        missing = undefined_names(b.text)
        if missing:
            problems.append(f"{b.where}: uses {', '.join(missing)} without defining it")
    assert problems == []


def _exists(path: str, created: set[str]) -> bool:
    if path.startswith(("/tmp/", "$")):
        return True  # scratch paths of the benchmarks, made by the steps that use them
    norm = os.path.normpath(path)
    parents = {norm, *(os.path.normpath(os.path.join(*norm.split(os.sep)[:i])) for i in range(1, len(norm.split(os.sep))))}
    if parents & created:
        return True
    if norm.split(os.sep)[0] in ("saved_models", "runs"):
        return False  # build products: a fresh clone has none, whatever this checkout holds
    full = os.path.join(ROOT, path)
    if glob.has_magic(path):
        return bool(glob.glob(full, recursive=True))
    # A parallel corpus in two aligned files is named by its prefix (PREFIX.de, PREFIX.en).
    return os.path.exists(full) or bool(glob.glob(glob.escape(full) + ".*"))


@pytest.mark.parametrize("page", PAGES)
def test_docs_commands_parse_and_use_files_only_after_a_step_makes_them(page):
    created, problems = set(), []
    for b in blocks(page):
        if b.lang not in RUN or b.directive == "skip":
            continue
        if b.lang == "python":
            for kind, path in python_io(b.text):
                if kind == "write":
                    created.add(os.path.normpath(path))
                elif b.directive != "benchmark" and not _exists(path, created):
                    problems.append(f"{b.where}: reads {path}, which no earlier step makes")
        else:
            for command in shell_commands(b):
                words = shlex.split(command)
                if words[:2] == ["pip", "install"] or words[:4] == ["python", "-m", "pip", "install"]:
                    problem = _pip_problem(words if words[0] == "pip" else words[2:])
                    if problem:
                        problems.append(f"{b.where}: {problem}")
                    continue
                try:
                    r, w = shell_io(words)
                except AssertionError as err:
                    problems.append(f"{b.where}: {err}")
                    continue
                for path in r:
                    if b.directive != "benchmark" and not _exists(path, created):
                        problems.append(f"{b.where}: `{command}` reads {path}, which no earlier step makes")
                created |= {os.path.normpath(p) for p in w}
    assert problems == []


def test_docs_never_install_the_project_from_a_package_index():
    """``pip install 'keras-text-pipeline[beam]'`` fails: the project is installed from the clone."""
    found = []
    for page in PAGES:
        with open(os.path.join(ROOT, page), encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if re.search(r"pip install\s+[^`\n]*keras-text-pipeline", line):
                    found.append(f"{page}:{lineno}: {line.strip()}")
    assert found == []


def test_docs_pip_check_knows_a_clone_from_a_package_index():
    assert _pip_problem(["pip", "install", "keras-text-pipeline[beam]"])
    assert _pip_problem(["pip", "install", "-e", ".[nosuchextra]"])
    assert _pip_problem(["pip", "install", "-e", ".[cpu,beam]"]) is None


def test_docs_shell_splitting_keeps_quotes_and_redirections():
    line = """printf 'a && b; c\\n' > f.txt && ktp predict m -i f.txt -o o.jsonl   # a comment; with && in it"""
    assert split_commands(line) == ["printf 'a && b; c\\n' > f.txt", "ktp predict m -i f.txt -o o.jsonl"]


def test_docs_name_check_finds_what_would_be_a_name_error():
    assert undefined_names("p = 1\np.evaluate(dev_sources, [x for x in p])\n") == ["dev_sources"]
    assert undefined_names("import os\nf = lambda y: os.path.join(y, z)\n") == ["z"]


# -- running the pages -----------------------------------------------------------------------------
def fresh_copy(dest) -> str:
    """A copy of the repository as a fresh clone has it, with configs that train one epoch."""
    root = os.path.join(str(dest), "repo")
    shutil.copytree(ROOT, root, ignore=COPY_IGNORE, symlinks=True)
    models = os.path.join(root, "saved_models")
    for name in os.listdir(models) if os.path.isdir(models) else []:
        if name != "README.md":
            path = os.path.join(models, name)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    for config in glob.glob(os.path.join(root, "data", "configs", "*.yaml")):
        with open(config, encoding="utf-8") as f:
            text = f.read()
        with open(config, "w", encoding="utf-8") as f:
            f.write(re.sub(r"\bepochs:\s*\d+", "epochs: 1", text))
    return root


def tiny(command: str) -> str:
    return re.sub(r"--epochs[ =]\d+", "--epochs 1", command)


def _env(root: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("KTP_VERBOSE", "PYTHONPATH")}
    env.update(PYTHONPATH=root, MPLBACKEND="Agg", TF_CPP_MIN_LOG_LEVEL="2",
               PATH=os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""))
    return env


def _skip_reason(words: list[str]) -> str | None:
    """Install steps and the suite itself are checked (above), not run here."""
    if words[:3] in (["python3", "-m", "venv"], ["python", "-m", "venv"]) or words[:1] in (["."], ["source"]):
        return "creates / enters a virtual environment (this one has every extra installed)"
    if words[:2] == ["pip", "install"] or words[:4] == ["python", "-m", "pip", "install"]:
        return "installs packages (checked statically: the extras exist)"
    if "pytest" in words[:3]:
        return "runs the test suite, which this test is part of"
    return None


def run_block(block: Block, root: str, log: list[str], timeout: int = 900) -> None:
    """Run one block in the copy at ``root``; raise AssertionError naming the block on failure."""
    env = _env(root)
    if block.lang == "python":
        code = re.sub(r"\bepochs=\d+", "epochs=1", block.text)
        script = os.path.join(root, f"_docs_block_{block.line}.py")
        with open(script, "w", encoding="utf-8") as f:
            f.write(code)
        argv, shown = [sys.executable, script], block.text
    else:
        kept = []
        for command in shell_commands(block):
            reason = _skip_reason(shlex.split(command))
            if reason:
                log.append(f"{block.where}: not run: `{command}`: {reason}")
            else:
                kept.append(tiny(command))
        if not kept:
            return
        shown = "\n".join(kept)
        argv = ["bash", "-e", "-o", "pipefail", "-c", "\n".join(kept)]
    done = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    log.append(f"{block.where}: ran ({block.lang})")
    if done.returncode != 0:
        raise AssertionError(f"{block.where} failed (exit {done.returncode}):\n{shown}\n--- stderr (end) ---\n{done.stderr[-3000:]}"
                             f"\n--- stdout (end) ---\n{done.stdout[-1000:]}")


def run_page(page: str, tmp_path, select=lambda block: True) -> list[str]:
    root = fresh_copy(tmp_path)
    log = []
    for b in blocks(page):
        if b.lang not in RUN or not select(b):
            continue
        if b.directive == "skip":
            log.append(f"{b.where}: skipped: {b.reason}")
            continue
        if b.directive == "benchmark":
            if os.environ.get("KTP_DOCS_BENCHMARKS") != "1":
                log.append(f"{b.where}: skipped (benchmark; set KTP_DOCS_BENCHMARKS=1): {b.reason}")
                continue
            if not os.path.isdir(os.path.join(ROOT, "..", "shared", "data")):
                log.append(f"{b.where}: skipped (benchmark): ../shared/data is not there")
                continue
            # The benchmarks read ../shared/data relative to the repository root.
            link = os.path.join(os.path.dirname(root), "shared")
            if not os.path.exists(link):
                os.symlink(os.path.join(ROOT, "..", "shared"), link)
        run_block(b, root, log)
    return log


def test_docs_readme_language_model_section_runs(tmp_path):
    log = run_page("README.md", tmp_path, select=lambda b: "lm_en" in b.text and "ktp generate" in b.text)
    assert [line for line in log if "ran" in line] != [], log


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_docs_page_runs_from_top_to_bottom(page, tmp_path):
    log = run_page(page, tmp_path)
    print("\n".join(log))


def test_docs_keras_load_model_needs_import_stages_first(tmp_path):
    """README (Python API): ``keras.saving.load_model`` on ``model/model.keras`` works once
    ``import stages`` has registered the custom layers, and fails without it."""
    from pipeline import Pipeline
    from tests.conftest import tiny_config

    texts, labels = ["好看", "难看", "很好", "很差"], ["pos", "neg", "pos", "neg"]
    config = tiny_config(pooling="attention")
    Pipeline.from_config(config).fit(texts, labels).save(str(tmp_path / "run"))
    path = str(tmp_path / "run" / "model" / "model.keras")
    script = (
        "import sys, keras\n"
        "try:\n"
        "    keras.saving.load_model(sys.argv[1])\n"
        "    print('loaded without stages')\n"
        "except Exception as err:\n"
        "    print('refused:', type(err).__name__)\n"
        "import stages\n"
        "model = keras.saving.load_model(sys.argv[1])\n"
        "print('loaded after import stages', model.count_params() > 0)\n"
    )
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", script, path], capture_output=True, text=True, env=env, cwd=str(tmp_path),
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("refused:") and lines[-1] == "loaded after import stages True"
