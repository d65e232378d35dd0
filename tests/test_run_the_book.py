"""examples/run_the_book.py: the book's PyTorch code, run on minigrad and on PyTorch (issue 20).

Without the book: the tiktoken stand-in gives every text back, the notebook reader finds the DPO
functions, network access fails at once, errors are read from a traceback, --help is cheap.
With LLMS_FROM_SCRATCH pointing at a checkout of rasbt/LLMs-from-scratch: ch04 and the DPO
functions run to the end on both engines (minigrad alone without PyTorch). Nothing is downloaded.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "run_the_book.py"
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


def load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


book = load("run_the_book", EXAMPLE)


def stand_in_tokenizer(folder: Path, words: list[str]) -> ModuleType:
    (folder / "tiktoken").mkdir(exist_ok=True)
    (folder / "tiktoken" / "__init__.py").write_text(book.TIKTOKEN, encoding="utf-8")
    (folder / "tiktoken" / "vocab.json").write_text(json.dumps(words), encoding="utf-8")
    return load("tiktoken_stand_in", folder / "tiktoken" / "__init__.py")


def test_the_tiktoken_stand_in_speaks_in_words_and_gives_the_text_back(tmp_path):
    text = "Every effort moves you.\n\n### Response:\nIt's 42_000 km, naïve café 🙂<|endoftext|>done  \n"
    words = sorted({p for p in book.PIECES.findall(text) if len(p.encode()) > 1})
    enc = stand_in_tokenizer(tmp_path, words).get_encoding("gpt2")
    ids = enc.encode(text, allowed_special={"<|endoftext|>"})
    assert enc.decode(ids) == text
    assert (enc.n_vocab, enc.eot_token, ids.count(50256)) == (50257, 50256, 1)
    assert enc.encode(" moves") == [256 + words.index(" moves")]  # a word is one token, as in GPT-2
    assert len(ids) < len(text.encode()) / 2
    assert enc.decode([256 + len(words)]) == f"<{256 + len(words)}>"  # an id an untrained model may pick
    with pytest.raises(ValueError, match="disallowed special token"):  # as tiktoken's default
        enc.encode(text)


@settings(max_examples=60, deadline=None)
@given(st.text(), st.booleans())
def test_the_tiktoken_stand_in_gives_any_text_back(tmp_path_factory, text, with_words):
    words = sorted({p for p in book.PIECES.findall(text) if len(p.encode()) > 1}) if with_words else []
    enc = stand_in_tokenizer(tmp_path_factory.mktemp("tok"), words).get_encoding("gpt2")
    ids = enc.encode(text, allowed_special="all")
    assert enc.decode(ids) == text and all(0 <= i < 50257 for i in ids)


def test_the_dpo_functions_come_from_the_notebook_code_cells(tmp_path):
    cells = [{"cell_type": "markdown", "source": ["def compute_dpo_loss(): pass"]},
             {"cell_type": "code", "source": ["!pip install thing\n", "def f(): pass"]},
             {"cell_type": "code", "source": ["import torch\n", "def compute_dpo_loss(a, beta=0.1):\n",
                                              "    return -F.logsigmoid(beta * a)\n", "\n", "print(1)\n"]},
             {"cell_type": "code", "source": ["def helper():\n    return torch.ones(2)"]}]
    notebook = tmp_path / "dpo.ipynb"
    notebook.write_text(json.dumps({"cells": cells}))
    source = book.notebook_functions(notebook, ("helper", "compute_dpo_loss"))
    assert source == ("import torch\nimport torch.nn.functional as F\n\n\ndef helper():\n    return torch.ones(2)"
                      "\n\n\ndef compute_dpo_loss(a, beta=0.1):\n    return -F.logsigmoid(beta * a)\n")
    with pytest.raises(LookupError, match="no longer defines f, g"):
        book.notebook_functions(notebook, ("f", "g", "helper"))


def test_network_access_fails_at_once_naming_the_host():
    code = (f"import runpy, urllib.request; runpy.run_path({str(EXAMPLE)!r})['block_network']()\n"
            "try: urllib.request.urlopen('https://example.com/data.zip', timeout=30)\n"
            "except OSError as e: print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert "run_the_book.py blocks network access (example.com)" in out.stdout, out.stderr


def test_the_first_error_is_the_exception_and_the_book_line_it_came_through(tmp_path):
    stderr = (f'Traceback (most recent call last):\n  File "{tmp_path}/ch07/gpt.py", line 88, in custom_collate_fn\n'
              '    indices = torch.nonzero(mask)\n  File "/x/minigrad/tensor.py", line 5, in nonzero\n'
              "    raise TypeError('bad')\nTypeError: bad\n")
    assert book.first_error(stderr, tmp_path) == "gpt.py:88 (custom_collate_fn): TypeError: bad"
    assert book.first_error("Timeout: over 5 s\n", tmp_path) == "Timeout: over 5 s"


def test_help_is_cheap_and_says_what_it_replaces(tmp_path):
    code = (f"import runpy, sys; sys.argv = ['run_the_book.py', '--help']\ntry: runpy.run_path({str(EXAMPLE)!r}, "
            "run_name='__main__')\nexcept SystemExit: pass\nprint('numpy imported:', 'numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert "numpy imported: False" in out.stdout, out.stderr
    for phrase in ("rasbt/LLMs-from-scratch", "python -m minigrad.as_torch", "tiktoken", "tensorflow",
                   "SMS spam zip", "--engine", "--only"):
        assert phrase in out.stdout
    out = subprocess.run([sys.executable, str(EXAMPLE), "--book", str(tmp_path)], capture_output=True, text=True,
                         timeout=60, check=False, env={**ENV, "LLMS_FROM_SCRATCH": ""})
    assert out.returncode == 2 and "is not a checkout of rasbt/LLMs-from-scratch: no ch04/" in out.stderr


@pytest.mark.skipif(not os.environ.get("LLMS_FROM_SCRATCH"), reason=(
    "needs a checkout of the book's code: git clone https://github.com/rasbt/LLMs-from-scratch and set "
    "LLMS_FROM_SCRATCH=/path/to/LLMs-from-scratch"))
def test_the_books_ch04_and_dpo_functions_run_on_minigrad_as_on_pytorch(tmp_path):
    both = importlib.util.find_spec("torch") is not None
    out = subprocess.run([sys.executable, str(EXAMPLE), "--book", os.environ["LLMS_FROM_SCRATCH"], "--only", "ch04",
                          "dpo", "--engine", "both" if both else "minigrad", "--run_dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=300, env=ENV, check=False)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert out.returncode == 0 and report["passed"], out.stdout + out.stderr[-3000:]
    ch04, dpo = report["targets"]["ch04"], report["targets"]["dpo"]
    assert all(ch04["ran_to_end"].values()) and all(dpo["ran_to_end"].values())
    assert all(n > 10 for n in ch04["output_length"].values())  # the prompt and 10 new tokens
    if both:  # float64 DPO losses and gradients: the same numbers up to rounding
        assert dpo["checks"]["same_batch"] and dpo["checks"]["agree_to_1e-9"], dpo["checks"]
        assert ch04["checks"]["same_output_length"]
