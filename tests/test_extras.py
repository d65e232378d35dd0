"""Optional packages (minigrad/extras.py): a missing one is named with the command that installs it;
a broken one is not disguised as missing."""
from __future__ import annotations

import sys

import pytest

from minigrad.extras import INSTALL, MissingExtra, install_hint, require


def test_a_missing_package_names_the_feature_and_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # as if never imported (test order)
    with pytest.raises(MissingExtra, match=r"^examples/vit_digits.py needs scikit-learn: pip install -e '\.\[vit\]'$"):
        require("sklearn.datasets", "examples/vit_digits.py")
    assert isinstance(MissingExtra("x"), ImportError)  # code that catches ImportError still does


def test_an_installed_package_with_a_broken_import_shows_the_real_error(tmp_path, monkeypatch):
    (tmp_path / "matplotlib").mkdir()
    (tmp_path / "matplotlib" / "__init__.py").write_text("import a_module_nobody_has\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "matplotlib", raising=False)
    with pytest.raises(ModuleNotFoundError, match="a_module_nobody_has") as e:
        require("matplotlib", "plotting")
    assert not isinstance(e.value, MissingExtra)


def test_every_install_hint_is_a_pip_command():
    for module in INSTALL:
        assert "pip install" in install_hint(module)


def test_the_torch_hint_installs_the_cpu_build():
    """PyPI's torch wheel for Linux is the CUDA build (several GB): the hint names PyTorch's CPU index."""
    assert "--index-url https://download.pytorch.org/whl/cpu" in install_hint("torch")
