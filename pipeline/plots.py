"""PNG pictures of a run: learning curves, the confusion matrix and attention maps (matplotlib, Agg).

Every picture goes through one font lookup (``find_cjk_font``) before it is saved: when any of
its texts (labels, tick labels, titles, legends, cell annotations) holds Chinese, Japanese or
Korean characters, all of its texts are drawn with the CJK font found, so labels such as 正面 /
负面 do not come out as boxes. Without such a font a warning says how to install one.
"""

from __future__ import annotations

import os
import re
import warnings

#: Font families known to draw Chinese, in order of preference, for when fontconfig is missing.
CJK_FAMILIES = (
    "Noto Sans CJK SC", "Noto Sans SC", "Noto Serif CJK SC", "Source Han Sans SC", "Source Han Sans CN",
    "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei Sharp", "SimHei", "Microsoft YaHei",
    "PingFang SC", "Heiti SC", "STHeiti", "AR PL UMing CN", "AR PL UKai CN", "Droid Sans Fallback",
    "Noto Sans CJK JP", "Noto Sans CJK TC", "Arial Unicode MS",
)
_CJK_CHARS = re.compile(r"[\u2e80-\u2fdf\u3000-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\U00020000-\U0003134f]")
NO_CJK_FONT = (
    "No font with Chinese glyphs was found, so Chinese text in {what} will show as boxes. Install one "
    "(e.g. `apt-get install fonts-noto-cjk` or fonts-wqy-microhei) or set KTP_CJK_FONT=/path/to/font.ttf"
)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; works without a display
    import matplotlib.pyplot as plt

    return plt


def has_cjk(texts) -> bool:
    """Whether any of ``texts`` holds a CJK character (Han, kana, Hangul, full-width forms).

    Example:
        >>> has_cjk(["pos", "负面"]), has_cjk(["pos", "neg"])
        (True, False)
    """
    return any(_CJK_CHARS.search(str(t)) for t in texts)


def find_cjk_font() -> str | None:
    """A font file that draws Chinese characters, or None: the one lookup every picture uses.

    Looks at ``KTP_CJK_FONT`` (a font file path) first, then fontconfig (``fc-list :lang=zh``,
    which also knows fonts installed after matplotlib built its font cache), then matplotlib's
    font list for known CJK families, then any font whose name suggests CJK coverage and that
    really holds the glyph 中.
    """
    env = os.environ.get("KTP_CJK_FONT")
    if env and os.path.isfile(env):
        return env
    import shutil
    import subprocess

    if shutil.which("fc-list"):
        try:
            listed = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True, timeout=10, check=False).stdout
        except (OSError, subprocess.SubprocessError):
            listed = ""
        files = sorted(line.split(":")[0].strip() for line in listed.splitlines() if line.strip())
        files = [f for f in files if f.lower().endswith((".ttf", ".ttc", ".otf")) and os.path.isfile(f)]
        if files:
            return files[0]

    from matplotlib import font_manager

    fonts = font_manager.fontManager.ttflist
    by_name = {f.name: f.fname for f in fonts}
    for family in CJK_FAMILIES:
        if family in by_name:
            return by_name[family]
    hint = re.compile(r"CJK|Han|Hei|Song|Ming|Kai|Gothic|WenQuanYi|Fallback|Unicode|SC|TC|CN", re.IGNORECASE)
    try:
        from matplotlib.ft2font import FT2Font
    except ImportError:  # pragma: no cover
        return None
    for f in fonts:
        if hint.search(f.name):
            try:
                if FT2Font(f.fname).get_char_index(ord("中")):
                    return f.fname
            except (OSError, RuntimeError):
                continue
    return None


def font_family(path: str) -> str:
    """The family name of the font file ``path``, registered with matplotlib so texts can name it."""
    from matplotlib import font_manager

    font_manager.fontManager.addfont(path)
    return font_manager.FontProperties(fname=path).get_name()


def use_cjk_font(fig, what: str = "the picture") -> str | None:
    """When any text of ``fig`` holds CJK characters, draw every text of it with the CJK font of
    ``find_cjk_font`` (other glyphs fall back to matplotlib's default fonts).

    Returns:
        the font file used, or None (no CJK text, or no CJK font: then a warning says how to
        install one and the picture keeps the default font).
    """
    from matplotlib import rcParams
    from matplotlib.text import Text

    texts = [t for t in fig.findobj(Text) if t.get_text()]
    if not has_cjk(t.get_text() for t in texts):
        return None
    path = find_cjk_font()
    if path is None:
        warnings.warn(NO_CJK_FONT.format(what=what), stacklevel=3)
        return None
    from matplotlib import font_manager

    # Latin glyphs missing from the CJK font fall back to the usual fonts; only installed ones
    # are named, since matplotlib warns about every family it cannot find.
    installed = {f.name for f in font_manager.fontManager.ttflist}
    fallbacks = [f for f in rcParams["font.sans-serif"] if f in installed] or ["DejaVu Sans"]
    families = [font_family(path), *fallbacks]
    for text in texts:
        text.set_fontfamily(families)
    return path


def save_figure(fig, path: str, what: str = "the picture") -> str:
    """Apply the CJK font where needed, lay out, save ``fig`` as a PNG at ``path`` and close it."""
    plt = _pyplot()
    use_cjk_font(fig, what)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def curve_names(history: dict) -> list[str]:
    """The panels of a history plot: each training figure (with its ``val_`` twin beside it), then
    each figure logged for the dev set only (a tagger's ``val_entity_f1``, say), so the figure
    ``training.monitor`` watches is always drawn."""
    names = [k for k in history if not k.startswith("val_") and k != "learning_rate"]
    dev_only = [k for k in history if k.startswith("val_") and k[4:] not in history]
    return names + dev_only


def plot_history(history: dict, path: str, monitor: str | None = None) -> str:
    """Loss and each metric by epoch, training next to validation, and the figures logged for
    the dev set only; the panel of ``monitor`` (``training.monitor``, e.g. ``val_entity_f1``)
    says so in its title and marks the best epoch. Returns ``path``."""
    plt = _pyplot()
    names = curve_names(history)
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.8), squeeze=False)
    for ax, name in zip(axes[0], names):
        epochs = range(1, len(history[name]) + 1)
        base = name.removeprefix("val_")
        if name.startswith("val_"):
            ax.plot(epochs, history[name], marker="o", label=f"dev {base}", color="C1")
        else:
            ax.plot(epochs, history[name], marker="o", label=f"train {name}")
            if f"val_{name}" in history:
                ax.plot(epochs, history[f"val_{name}"], marker="o", label=f"dev {name}")
        title = base
        if monitor is not None and monitor in history and monitor in (name, f"val_{name}"):
            values = list(history[monitor])
            best = (min if monitor.endswith("loss") else max)(range(len(values)), key=values.__getitem__)
            ax.axvline(best + 1, color="grey", linestyle=":", label=f"best epoch ({best + 1})")
            title = f"{base} (monitored: {monitor})"
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    return save_figure(fig, path, "the training curves")


def plot_confusion_matrix(matrix, labels, path: str, title: str = "confusion matrix") -> str:
    """A labelled heat map of counts (rows: true label, columns: predicted). Returns ``path``."""
    import numpy as np

    plt = _pyplot()
    cm = np.asarray(matrix)
    size = max(4.0, 0.6 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    limit = cm.max() / 2 if cm.size else 0
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if cm[i, j] > limit else "black")
    return save_figure(fig, path, "the confusion matrix")


def plot_attention(weights, source_tokens, target_tokens, path: str, title: str | None = None) -> str:
    """Save an attention heat map: rows are target tokens, columns source tokens.

    Chinese (and other CJK) tokens are drawn with the font of ``find_cjk_font``; when there is
    none, a warning says so and how to install one, and the picture is drawn with the default
    font (CJK glyphs then show as boxes).

    Returns:
        ``path``.
    """
    import numpy as np

    plt = _pyplot()
    weights = np.asarray(weights, dtype=np.float32)
    width = max(4.0, 0.5 * len(source_tokens) + 2)
    height = max(3.0, 0.4 * len(target_tokens) + 2)
    fig, ax = plt.subplots(figsize=(width, height))
    ax.imshow(weights, cmap="viridis", aspect="auto", vmin=0.0, vmax=max(float(weights.max()) if weights.size else 0.0, 1e-6))
    ax.set_xticks(range(len(source_tokens)))
    ax.set_xticklabels(source_tokens, rotation=60, ha="right")
    ax.set_yticks(range(len(target_tokens)))
    ax.set_yticklabels(target_tokens)
    ax.set_xlabel("source")
    ax.set_ylabel("target")
    if title:
        ax.set_title(title)
    return save_figure(fig, path, "the attention picture")
