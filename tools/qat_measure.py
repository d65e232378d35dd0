"""Post-training quantization vs quantization-aware fine-tuning on a trained tiny-Shakespeare GPT:
val loss of each, the same steps and data for the float control and for QAT."""
import argparse, copy, json, time

import numpy as np

import minigrad
from gpt.data import Batches, read_text
from gpt.quantize import qat_finetune, quantize, weight_bytes
from gpt.tokenizer import encode_array
from gpt.train import load_model
from minigrad.nn.utils import clip_grad_norm_

ap = argparse.ArgumentParser()
ap.add_argument("--ckpt", required=True)
ap.add_argument("--data", default="../shared/data/tinyshakespeare.txt")
ap.add_argument("--steps", type=int, default=200)
ap.add_argument("--lr", type=float, default=1e-4)
ap.add_argument("--eval_batches", type=int, default=40)
args = ap.parse_args()

base, tok, meta = load_model(args.ckpt)
T = base.config.block_size
batches = Batches(encode_array(tok, read_text(args.data)), T, 12, seed=1)  # the train run's 90/10 split


def val_loss(model):
    model.eval()
    rng = np.random.default_rng(123)  # the same val batches for every model
    with minigrad.no_grad():
        losses = [model(*batches.sample("val", "cpu", rng))[1].item() for _ in range(args.eval_batches)]
    model.train()
    return float(np.mean(losses))


def float_finetune(model, steps):  # the control: the same steps, data and optimizer as qat_finetune, no fake quant
    params = [p for p in model.parameters() if p.requires_grad]
    opt = minigrad.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    for _ in range(steps):
        _, loss = model(*batches.sample("train", "cpu"))
        opt.zero_grad(); loss.backward(); clip_grad_norm_(params, 1.0); opt.step()
    return model


rows = {"float32": (val_loss(base), weight_bytes(base))}
for kind in ("int8", "nf4"):
    m = quantize(copy.deepcopy(base), kind)
    rows[f"ptq_{kind}"] = (val_loss(m), weight_bytes(m))
for kind in ("int8", "nf4"):
    batches.rng = np.random.default_rng(7)
    t0 = time.perf_counter()
    ctl = float_finetune(copy.deepcopy(base), args.steps)
    rows[f"float_ft{args.steps}"] = (val_loss(ctl), weight_bytes(ctl))
    q = quantize(ctl, kind)
    rows[f"float_ft{args.steps}_then_{kind}"] = (val_loss(q), weight_bytes(q))
    batches.rng = np.random.default_rng(7)
    qat = qat_finetune(copy.deepcopy(base), batches, args.steps, kind, lr=args.lr)
    rows[f"qat{args.steps}_{kind}"] = (val_loss(qat), weight_bytes(qat))
    print(kind, "done in", round(time.perf_counter() - t0), "s", flush=True)
for k, (loss, nbytes) in rows.items():
    print(f"{k:>24} {loss:.4f} {nbytes:>10,}")
print(json.dumps({k: {"val_loss": round(v[0], 4), "weight_bytes": v[1]} for k, v in rows.items()}))
