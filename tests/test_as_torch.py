"""`python -m minigrad.as_torch SCRIPT`: PyTorch scripts run unchanged on minigrad, never on PyTorch.

Each test writes a small PyTorch-style script into tmp_path and runs it through the launcher in a
fresh interpreter, as a user would.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from minigrad.as_torch import minigrad_name

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
       "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
MISSING = "minigrad does not have this PyTorch name (running under python -m minigrad.as_torch)"


def launch(tmp_path: Path, script: str, *args: str, name: str = "script.py") -> subprocess.CompletedProcess:
    (tmp_path / name).write_text(textwrap.dedent(script))
    return subprocess.run([sys.executable, "-m", "minigrad.as_torch", name, *args], cwd=tmp_path, env=ENV,
                          capture_output=True, text=True, timeout=120, check=False)


def test_a_pytorch_training_script_runs_on_minigrad(tmp_path: Path) -> None:
    (tmp_path / "helper.py").write_text("import torch\nONES = torch.ones(3)\n")
    r = launch(tmp_path, """
        import sys
        from helper import ONES  # the script's folder comes first on sys.path, as with `python script.py`
        import torch
        import torch.cuda
        import torch.nn as nn
        from torch.nn import functional as F
        from torch.utils.data import DataLoader

        import minigrad

        # every torch module is minigrad's, and the real PyTorch was never imported
        assert torch.Tensor is minigrad.Tensor and torch.nn.Linear is minigrad.nn.Linear
        assert F.cross_entropy is minigrad.functional.cross_entropy
        assert DataLoader is minigrad.utils.data.DataLoader
        assert torch.cuda.is_available is minigrad.cuda.is_available  # a namespace in minigrad, a module here
        assert torch.__file__ == minigrad.__file__, torch.__file__
        assert "torch._C" not in sys.modules
        assert all(type(m).__name__ == "TorchProxy" for k, m in sys.modules.items() if k.split(".")[0] == "torch")

        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))
        opt = torch.optim.AdamW(model.parameters(), lr=0.05)
        x = torch.randn(32, 2)
        y = (x[:, 0] > 0).long()
        losses = []
        for step in range(30):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        print(__name__, sys.argv, losses[0] > 1.5 * losses[-1], ONES.sum().item())
        """, "--lr", "3", "data.txt")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["__main__", "['script.py',", "'--lr',", "'3',", "'data.txt']", "True", "3.0"]


def test_a_name_minigrad_lacks_says_so(tmp_path: Path) -> None:
    r = launch(tmp_path, """
        import torch
        for attempt in ["torch.no_such_op", "torch.nn.functional.no_such_op"]:
            try:
                eval(attempt)
            except AttributeError as e:
                print(e)
        for attempt in ["import torch.no_such_module", "from torch import no_such_name", "import torch.nn.no_such"]:
            try:
                exec(attempt)
            except ImportError as e:
                print(e)
        torch.no_such_op
        """)
    lines = r.stdout.splitlines()
    assert lines == [f"torch.{n}: {MISSING}" for n in ("no_such_op", "nn.functional.no_such_op", "no_such_module",
                                                          "no_such_name", "nn.no_such")]
    assert r.returncode == 1
    assert r.stderr.splitlines()[-1] == f"AttributeError: torch.no_such_op: {MISSING}"


def test_a_failing_script_exits_nonzero_with_its_traceback(tmp_path: Path) -> None:
    r = launch(tmp_path, """
        import torch

        def step():
            raise ValueError("bad batch")

        step()
        """)
    assert r.returncode == 1
    tb = r.stderr.splitlines()
    assert tb[0] == "Traceback (most recent call last):"
    assert 'script.py", line 7, in <module>' in tb[1]  # the script's frames first, not the launcher's
    assert tb[-1] == "ValueError: bad batch"
    r = launch(tmp_path, "import sys\nsys.exit(3)\n")
    assert r.returncode == 3 and r.stderr == ""


def test_dash_m_runs_a_module(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "train.py").write_text("import sys, torch\nprint(__name__, sys.argv[1:], torch.zeros(2).sum())\n")
    r = subprocess.run([sys.executable, "-m", "minigrad.as_torch", "-m", "pkg.train", "--x", "1"], cwd=tmp_path,
                       env=ENV, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:3] == ["__main__", "['--x',", "'1']"]


def test_install_replaces_a_torch_imported_before(tmp_path: Path) -> None:
    code = ("import sys, types; sys.modules['torch'] = types.ModuleType('torch'); "
            "import minigrad, minigrad.as_torch; minigrad.as_torch.install(); "
            "import torch; print(torch.tensor is minigrad.tensor)")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=ENV, capture_output=True, text=True,
                       timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "True"


def test_usage() -> None:
    r = subprocess.run([sys.executable, "-m", "minigrad.as_torch"], cwd=ROOT, env=ENV, capture_output=True, text=True,
                       timeout=120, check=False)
    assert r.returncode == 2 and r.stdout.startswith("usage: python -m minigrad.as_torch SCRIPT")


def test_minigrad_name() -> None:
    assert minigrad_name("torch") == "minigrad"
    assert minigrad_name("torch.nn") == "minigrad.nn"
    assert minigrad_name("torch.nn.functional") == "minigrad.functional"
    assert minigrad_name("torch.utils.data") == "minigrad.utils.data"
