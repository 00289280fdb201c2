"""``ktp translate`` and ``ktp generate``: the translation and language-model commands.

``pipeline.cli`` calls ``add_commands(subparsers)`` to add them to ``ktp``.
"""

from __future__ import annotations

import json
import sys


def add_commands(subparsers) -> None:
    """Add ``translate`` and ``generate`` to an argparse sub-parser set."""
    from .cli import add_command

    p = add_command(
        subparsers, "translate", cmd_translate, help="translate sentences with a trained translation pipeline",
        description="Translate sentences with a trained translation pipeline; optionally save the attention picture.",
        model_dir="a saved translation pipeline",
    )
    p.add_argument("texts", nargs="+", help="source sentences")
    p.add_argument("--beam", type=int, help="beam width (default: the decoder's beam_width; 1 is greedy)")
    p.add_argument("--n-best", type=int, help="list this many hypotheses per sentence (JSON output)")
    p.add_argument("--plot-attention", metavar="PNG", help="save the attention matrix of the (single) sentence as a PNG")
    p.add_argument("--json", action="store_true", help="print one JSON object per sentence")

    p = add_command(
        subparsers, "generate", cmd_generate, help="generate text with a trained language model",
        description="Continue a prompt with a trained language-model pipeline.", model_dir="a saved language_model pipeline",
    )
    p.add_argument("prompt", nargs="?", default="", help="text to continue (empty: start a new text)")
    p.add_argument("--max-tokens", type=int, help="tokens to generate (default: the sampler's max_tokens)")
    p.add_argument("--temperature", type=float, help="sampling temperature (0: greedy)")
    p.add_argument("--top-k", type=int, help="sample among the k most likely tokens (0: all)")
    p.add_argument("--seed", type=int, help="random seed, for repeatable samples")
    p.add_argument("--json", action="store_true", help="print a JSON object")


def _load(model_dir, task, command):
    from . import Pipeline
    from .errors import ConfigError

    pipeline = Pipeline.load(model_dir)
    if pipeline.task != task:
        raise ConfigError("task", f"of {model_dir} is {pipeline.task}; `ktp {command}` needs a {task} pipeline")
    return pipeline


def cmd_translate(args) -> int:
    from .errors import ConfigError, DataError

    pipeline = _load(args.model_dir, "translation", "translate")
    try:
        answers = _translate(pipeline, args)
    except (ConfigError, DataError):
        raise
    except ValueError as err:
        raise SystemExit(f"ktp translate: {err}") from None
    for answer in answers:
        if args.json:
            print(json.dumps(answer, ensure_ascii=False))
        else:
            print(answer["translation"])
    return 0


def _translate(pipeline, args):
    if args.plot_attention:
        if len(args.texts) != 1:
            raise SystemExit("ktp translate: --plot-attention draws one sentence; pass exactly one text")
        answer = pipeline.plot_attention(args.texts[0], args.plot_attention, beam=args.beam)
        answers = [answer]
        print(f"attention picture saved to {args.plot_attention}", file=sys.stderr)
    else:
        answers = pipeline.predict(args.texts, beam=args.beam, n_best=args.n_best)
    return answers


def cmd_generate(args) -> int:
    pipeline = _load(args.model_dir, "language_model", "generate")
    from .errors import ConfigError, DataError

    try:
        text = pipeline.generate(
            args.prompt, max_tokens=args.max_tokens, temperature=args.temperature, top_k=args.top_k, seed=args.seed
        )
    except (ConfigError, DataError):
        raise
    except ValueError as err:
        raise SystemExit(f"ktp generate: {err}") from None
    if args.json:
        print(json.dumps({"prompt": args.prompt, "generated": text}, ensure_ascii=False))
    else:
        print(text)
    return 0
