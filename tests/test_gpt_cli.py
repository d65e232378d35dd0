"""The train and bench flags come from the config dataclasses: each field's meaning, kept in its
metadata by `gpt.model.setting(default, help)`, is its flag's help, followed by the default unless it names it."""
from __future__ import annotations

import argparse
from dataclasses import fields

import pytest

from gpt.cli import build_parser
from gpt.model import GPTConfig
from gpt.train import TrainConfig


def flags(command: str) -> dict[str, argparse.Action]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: a for a in sub.choices[command]._actions}


@pytest.mark.parametrize("command, cls", [("train", TrainConfig), ("train", GPTConfig), ("bench", GPTConfig)])
def test_every_config_field_is_a_flag_whose_help_is_its_meaning(command, cls):
    actions = flags(command)
    for f in fields(cls):
        if f.name == "model" or (command == "train" and f.name == "vocab_size"):  # vocab_size: the tokenizer's
            continue
        meaning = f.metadata.get("help")
        assert meaning, f"{cls.__name__}.{f.name} has no help: declare it with setting(default, help)"
        said = meaning if "default" in meaning else f"{meaning} (default: {f.default})"  # the default once
        assert actions[f.name].help == said, f.name


def test_help_texts_read_as_before():
    actions = flags("train")
    assert actions["n_layer"].help == "transformer blocks (default: 4)"
    assert actions["lr_decay_iters"].help == "end of the cosine decay, >= warmup_iters (default: max_iters)"
    assert actions["gelu"].help == ("GELU's form: \"tanh\" (GPT-2's, faster here) or \"none\" (exact, nanoGPT's "
                                    "nn.GELU()) (default: tanh)")
    assert actions["resume"].help == ("continue from out_dir/ckpt.npz (the CLI takes the run's settings from it) "
                                      "(default: False)")
