"""pretrained_base (gpt/pretrained.py): trains once in a folder, reuses the run only when the text and
settings are the same, and loads a checkpoint given by path."""
from __future__ import annotations

import numpy as np

from gpt.model import GPTConfig
from gpt.pretrained import pretrained_base

TEXT = "Tomorrow, and tomorrow, and tomorrow, creeps in this petty pace from day to day.\n" * 6
TINY = dict(model=GPTConfig(block_size=8, n_layer=1, n_head=1, n_embd=8, dropout=0.0), max_iters=2, batch_size=2,
            eval_iters=1, warmup_iters=1)


def weights(model) -> dict[str, np.ndarray]:
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def test_trains_once_then_reuses_the_run(tmp_path, capsys):
    model, tok, info = pretrained_base(TEXT, tmp_path, **TINY)
    assert capsys.readouterr().out.splitlines()[-1].startswith("pretrained 2 steps in ")  # after train()'s log
    assert info["ckpt"] == str(tmp_path / "ckpt.npz") and info["pretrain_iters"] == 2
    assert info["pretrain_seconds"] >= 0 and np.isfinite(info["pretrain_val_loss"])  # 2 steps may round to 0.0 s
    assert (tmp_path / "pretrain.txt").read_text(encoding="utf-8") == TEXT and tok.decode(tok.encode("day")) == "day"

    again, _, info2 = pretrained_base(TEXT, tmp_path, **TINY)  # the same text and settings: loaded
    assert capsys.readouterr().out == ""
    assert info2 == {"ckpt": info["ckpt"], "pretrain_iters": 2, "pretrain_seconds": 0.0}
    for k, w in weights(model).items():
        np.testing.assert_array_equal(weights(again)[k], w)

    loaded, _, info3 = pretrained_base("unused", tmp_path / "elsewhere", ckpt=tmp_path / "ckpt.npz")
    assert info3["pretrain_iters"] == 2 and not (tmp_path / "elsewhere").exists()
    np.testing.assert_array_equal(weights(loaded)["lm_head.weight"], weights(model)["lm_head.weight"])


def test_another_text_or_other_settings_train_again(tmp_path, capsys):
    pretrained_base(TEXT, tmp_path, **TINY)
    capsys.readouterr()
    for text, settings in [(TEXT.upper(), TINY), (TEXT, {**TINY, "max_iters": 3}),
                           (TEXT, {**TINY, "model": GPTConfig(block_size=8, n_layer=2, n_head=1, n_embd=8)})]:
        _, _, info = pretrained_base(text, tmp_path, **settings)
        assert "pretrain_val_loss" in info and "\npretrained " in capsys.readouterr().out, settings
    assert (tmp_path / "pretrain.txt").read_text(encoding="utf-8") == TEXT  # the last run's text


def test_a_run_saved_before_a_config_field_existed_is_reused(tmp_path, capsys, monkeypatch):
    """A checkpoint written before GPTConfig gained a field (n_expert, attn_window, ...) lacks it in
    its meta; the field's default stands in, so the run is reused, not trained again."""
    import gpt.pretrained as pretrained

    pretrained_base(TEXT, tmp_path, **TINY)
    capsys.readouterr()
    real = pretrained.load_model

    def old_meta(path):
        model, tok, meta = real(path)
        config = {k: v for k, v in meta["model_config"].items() if k not in ("n_expert", "attn_window")}
        return model, tok, {**meta, "model_config": config}

    monkeypatch.setattr(pretrained, "load_model", old_meta)
    _, _, info = pretrained_base(TEXT, tmp_path, **TINY)
    assert capsys.readouterr().out == "" and info["pretrain_seconds"] == 0.0
