"""A base GPT to fine-tune: loaded from a checkpoint, or pretrained once on a text and kept in a folder.

Fine-tuning starts from a model that has read text. `pretrained_base(text, out_dir, **settings)`
runs `train()` on `text` with the TrainConfig `settings` and keeps the run in out_dir (the
text beside its checkpoint); called again with the same text and settings it loads that run
instead of training again, so a script that fine-tunes several ways, or is run again, pretrains
once. examples/finetune_classify.py and examples/finetune_instructions.py start here. Leaves out:
resuming a pretraining run cut short (it trains again from the start; `python -m gpt train
--resume` resumes), and any tokenizer but the one TrainConfig builds.

Read next: sample.py.
"""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from gpt.model import GPT, GPTConfig
from gpt.tokenizer import Tokenizer
from gpt.train import TrainConfig, load_model, train


def pretrained_base(text: str, out_dir: str | Path, ckpt: str | Path | None = None,
                    **settings: Any) -> tuple[GPT, Tokenizer, dict[str, Any]]:
    """(model, tokenizer, info) from `ckpt` when given (text and settings unused), else from
    out_dir/ckpt.npz when it was trained on this text for settings["max_iters"] steps with this
    model config, else from a run of `train()` on `text` with TrainConfig(**settings), kept in
    out_dir. info: "ckpt" (its path), "pretrain_iters", "pretrain_seconds" (0.0 unless it trained
    now), and "pretrain_val_loss" when it trained now (it then prints one line: steps, seconds, val loss)."""
    if ckpt:
        model, tok, meta = load_model(ckpt)
        return model, tok, {"ckpt": str(ckpt), "pretrain_iters": meta.get("iter"), "pretrain_seconds": 0.0}
    out = Path(out_dir)
    data, path = out / "pretrain.txt", out / "ckpt.npz"  # the text is kept beside the checkpoint
    cfg = TrainConfig(data=str(data), out_dir=str(out), progress=False, eval_interval=settings["max_iters"],
                      **settings)
    if path.is_file() and data.is_file() and data.read_text(encoding="utf-8") == text:
        model, tok, meta = load_model(path)
        saved = {**asdict(GPTConfig()), **meta["model_config"]}  # a field added since it was saved: its default
        same = all(saved.get(k) == v for k, v in asdict(cfg.model).items() if k != "vocab_size")
        if meta.get("iter") == cfg.max_iters and same:
            return model, tok, {"ckpt": str(path), "pretrain_iters": cfg.max_iters, "pretrain_seconds": 0.0}
    out.mkdir(parents=True, exist_ok=True)
    data.write_text(text, encoding="utf-8")
    t0 = time.perf_counter()
    result = train(cfg)
    seconds = time.perf_counter() - t0
    print(f"pretrained {cfg.max_iters} steps in {seconds:.0f} s: val loss {result['losses']['val']:.3f}")
    return result["model"], result["tokenizer"], {"ckpt": str(path), "pretrain_iters": cfg.max_iters,
                                                  "pretrain_seconds": round(seconds, 1),
                                                  "pretrain_val_loss": round(result["losses"]["val"], 4)}
