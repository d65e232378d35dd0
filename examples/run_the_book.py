"""Run the PyTorch code of *Build a Large Language Model (From Scratch)* on minigrad and on PyTorch.

The book's repository (rasbt/LLMs-from-scratch, Apache-2.0) is not part of this project: clone it
yourself and point --book at it. For each target this script makes a run folder, runs the book's
code unchanged once with PyTorch (`python`) and once with `python -m minigrad.as_torch`, the same
driver, seed and config for both, then prints a table and, as its last line, one JSON object.
It replaces trying the chapters by hand (issue 20) with a check anyone can rerun.

targets (paths in the book's repository):
  ch04            ch04/01_main-chapter-code/gpt.py: an untrained GPT-2 124M generates 10 tokens
  ch05            ch05/01_main-chapter-code/gpt_train.py: main() called with a shrunk config (emb 128,
                  2 layers, 4 heads, context 64) on ch02's the-verdict.txt, then its __main__ block's
                  plot, save and load
  ch05_same_init  ch05's model and loss on both engines from the same initial weights (PyTorch's,
                  torch.save'd, read by minigrad.load), no dropout, no shuffling: max |loss difference|
                  over the first --same_init_steps batches (needs both engines)
  ch06            ch06/01_main-chapter-code/gpt_class_finetune.py --test_mode
  ch07            ch07/01_main-chapter-code/gpt_instruction_finetuning.py --test_mode; its generated
                  answers must not be empty
  dpo             the DPO functions of ch07/04_preference-tuning-with-dpo/dpo-from-scratch.ipynb
                  (custom_collate_fn, compute_logprobs, compute_dpo_loss, compute_dpo_loss_batch),
                  their source taken from the notebook at run time, on small random float64 inputs:
                  losses and gradients compared between engines

Only downloads are replaced, by stand-ins written into each run folder (nothing is downloaded):
  tiktoken     GPT-2's BPE files are a download. The stand-in 'gpt2' encoding has GPT-2's n_vocab
               (50257) and <|endoftext|> (50256); ids 0-255 are UTF-8 bytes, then come the words
               (GPT-2's pre-tokenization) of the-verdict.txt, instruction-data.json and the SMS
               stand-in, most frequent first, and ids past those decode as "<id>". So texts take about
               as many tokens as with GPT-2 (ch07's prompts fit --test_mode's context of 120), and
               decode(encode(text)) == text.
  tensorflow   imported by the book's gpt_download.py to read OpenAI's GPT-2 weights, a download;
               --test_mode never loads them, and any use of the stand-in raises AttributeError.
  data         ch05: the-verdict.txt and ch07: instruction-data.json, copied from --book; ch06: the
               SMS spam zip is a download, replaced by 200 synthetic messages in its .tsv format.
  network      any other connection raises ConnectionRefusedError naming the host, so nothing hangs.
  torch        under minigrad, `importlib.metadata.version("torch")` (ch07 prints it) says 0+minigrad.

Needs: numpy, matplotlib, requests, tqdm (the book's scripts import them), pandas (ch06), and
PyTorch for --engine torch/both. Each engine's output stays in --run_dir (default: a temporary
folder) as TARGET/ENGINE/stdout.txt and stderr.txt.

times on a busy 2-core machine, one thread per engine:
    python examples/run_the_book.py --book ../LLMs-from-scratch --only ch04 dpo   about 15 s
    python examples/run_the_book.py --book ../LLMs-from-scratch                    about 4 minutes
"""
from __future__ import annotations

import argparse
import ast
import importlib.util
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]  # this checkout, so `python -m minigrad.as_torch` finds minigrad
ENGINES = ("torch", "minigrad")


@dataclass(frozen=True)
class Target:
    path: str  # the book's file that this target runs, relative to the book's repository
    args: tuple[str, ...] = ()  # for a script run as `python SCRIPT ARGS`; a driver function otherwise


TARGETS = {
    "ch04": Target("ch04/01_main-chapter-code/gpt.py"),
    "ch05": Target("ch05/01_main-chapter-code/gpt_train.py"),
    "ch05_same_init": Target("ch05/01_main-chapter-code/gpt_train.py"),
    "ch06": Target("ch06/01_main-chapter-code/gpt_class_finetune.py", ("--test_mode",)),
    "ch07": Target("ch07/01_main-chapter-code/gpt_instruction_finetuning.py", ("--test_mode",)),
    "dpo": Target("ch07/04_preference-tuning-with-dpo/dpo-from-scratch.ipynb"),
}
SCRIPTS = ("ch04", "ch06", "ch07")  # run as `python SCRIPT ARGS`; the others call the book's functions

# ch05, shrunk from GPT_CONFIG_124M (emb 768, 12 layers, 12 heads, context 256) to train in about a minute
CH05_CONFIG = {"vocab_size": 50257, "context_length": 64, "emb_dim": 128, "n_heads": 4, "n_layers": 2,
               "drop_rate": 0.1, "qkv_bias": False}
CH05_SETTINGS = {"learning_rate": 5e-4, "num_epochs": 4, "batch_size": 2, "weight_decay": 0.1}
VERDICT = "ch02/01_main-chapter-code/the-verdict.txt"
INSTRUCTIONS = "ch07/01_main-chapter-code/instruction-data.json"
DPO_FUNCTIONS = ("custom_collate_fn", "compute_logprobs", "compute_dpo_loss", "compute_dpo_loss_batch")

# ---- stand-ins for downloads, written into each run folder --------------------------------------

# GPT-2's pre-tokenization pattern, with \\p{L} and \\p{N} spelled for Python's re: words with their leading
# space, numbers, punctuation runs, spaces. Every character lands in exactly one piece.
PIECES = re.compile(r"""'(?:s|t|re|ve|m|ll|d)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+""")

TIKTOKEN = '''"""Stand-in for tiktoken, written by minigrad's examples/run_the_book.py (GPT-2's BPE files are a
download): a 'gpt2' encoding with GPT-2's n_vocab and <|endoftext|>; ids 0-255 are UTF-8 bytes, and
the words in vocab.json (GPT-2's pre-tokenization, counted in the book's data) come after them;
the ids after those decode as "<id>"."""
import json
import re
from pathlib import Path

PIECES = re.compile(r"""{PIECES}""")  # GPT-2's pre-tokenization
EOT = "<|endoftext|>"


class Encoding:
    name, n_vocab, eot_token = "gpt2", 50257, 50256

    def __init__(self):
        words = json.loads((Path(__file__).parent / "vocab.json").read_text(encoding="utf-8"))
        self.ids = {w: 256 + i for i, w in enumerate(words)}
        self.words = {i: w.encode("utf-8") for w, i in self.ids.items()}

    def encode(self, text, *, allowed_special=(), disallowed_special="all"):
        specials = allowed_special == "all" or EOT in allowed_special
        if not specials and EOT in text and (disallowed_special == "all" or EOT in disallowed_special):
            raise ValueError(f"Encountered text corresponding to disallowed special token {EOT!r}")
        ids = []
        for i, part in enumerate(text.split(EOT) if specials else [text]):
            if i:
                ids.append(self.eot_token)
            for piece in PIECES.findall(part):
                ids.extend([self.ids[piece]] if piece in self.ids else piece.encode("utf-8"))
        return ids

    def decode(self, tokens, errors="replace"):
        out = bytearray()
        for t in tokens:
            if t < 256:
                out.append(t)
            else:
                out += EOT.encode() if t == self.eot_token else self.words.get(t, f"<{t}>".encode())
        return out.decode("utf-8", errors=errors)


def get_encoding(name):
    if name != "gpt2":
        raise ValueError(f"the tiktoken stand-in of run_the_book.py has only 'gpt2', not {name!r}")
    return Encoding()
'''.replace("{PIECES}", PIECES.pattern)

TENSORFLOW = '''"""Stand-in for tensorflow, written by minigrad's examples/run_the_book.py: the book's
gpt_download.py imports it to read OpenAI's GPT-2 weights, a download that --test_mode never needs."""


def __getattr__(name):
    # AttributeError, as for any missing name: matplotlib probes tensorflow.is_tensor when tensorflow is imported
    raise AttributeError(f"tensorflow.{name}: tensorflow is a stand-in in run_the_book.py (GPT-2's weights are "
                         "a download it replaces; run the book's scripts with --test_mode)", name=name)
'''



def sms_messages() -> list[tuple[str, str]]:
    """200 synthetic SMS in the spam collection's shape (label, text): 100 spam, 100 ham, all short
    enough for --test_mode's context of 120 tokens."""
    import random
    rng = random.Random(123)
    spam = ["WINNER! You have won a {p} prize. Call {n} now to claim", "FREE entry to win a {p}! Text WIN to {n}",
            "URGENT: your mobile number won {p}. Claim at {n} before midnight", "Claim your free {p} now, call {n}"]
    ham = ["Are we still meeting at {t} for {m}?", "ok see you at {t}, I'll bring the {m}",
           "Sorry, running late. Be there by {t}", "Can you pick up {m} on the way home?", "Thanks for {m} last night!"]
    prizes, meals = ["cash", "holiday", "phone", "voucher", "ringtone"], ["lunch", "dinner", "coffee", "pizza"]
    rows = [("spam", rng.choice(spam).format(p=rng.choice(prizes), n=rng.randrange(80000, 89999)))
            for _ in range(100)]
    rows += [("ham", rng.choice(ham).format(t=f"{rng.randrange(1, 12)}pm", m=rng.choice(meals))) for _ in range(100)]
    rng.shuffle(rows)
    return rows


def stand_in_vocabulary(book: Path) -> list[str]:
    """The tiktoken stand-in's words: multi-byte pieces of the book's texts, most frequent first."""
    texts = [(book / VERDICT).read_text(encoding="utf-8")]
    for entry in json.loads((book / INSTRUCTIONS).read_text(encoding="utf-8")):
        texts += [entry["instruction"], entry["input"], entry["output"]]
    texts += [text for _, text in sms_messages()]
    texts.append("Below is an instruction that describes a task. Write a response that appropriately completes "
                 "the request.\n\n### Instruction:\n\n\n### Input:\n\n\n### Response:\n")  # ch07's prompt template
    counts = Counter(p for text in texts for p in PIECES.findall(text) if len(p.encode("utf-8")) > 1)
    return sorted(counts, key=lambda p: (-counts[p], p))[:50256 - 256]


def write_stand_ins(folder: Path, book: Path, engine: str) -> None:
    """Modules and package metadata that come first on PYTHONPATH for this run."""
    (folder / "tiktoken").mkdir(parents=True)
    (folder / "tiktoken" / "__init__.py").write_text(TIKTOKEN, encoding="utf-8")
    (folder / "tiktoken" / "vocab.json").write_text(json.dumps(stand_in_vocabulary(book)), encoding="utf-8")
    (folder / "tensorflow").mkdir()
    (folder / "tensorflow" / "__init__.py").write_text(TENSORFLOW, encoding="utf-8")
    versions = {"tiktoken": "0+runthebook", "tensorflow": "0+runthebook"}
    if engine == "minigrad":
        versions["torch"] = "0+minigrad"  # ch07 prints version("torch"): say what computed
    for name, version in versions.items():
        info = folder / f"{name}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def write_data(target: str, book: Path, run: Path) -> None:
    """The files the book's code would download, where it looks for them (its current folder)."""
    if target == "ch05":
        shutil.copy(book / VERDICT, run / "the-verdict.txt")
    if target == "ch06":
        (run / "sms_spam_collection").mkdir()
        tsv = "".join(f"{label}\t{text}\n" for label, text in sms_messages())
        (run / "sms_spam_collection" / "SMSSpamCollection.tsv").write_text(tsv, encoding="utf-8")
    if target == "ch07":
        shutil.copy(book / INSTRUCTIONS, run / "instruction-data.json")


# ---- the driver: what runs inside each engine's process -----------------------------------------
# `python run_the_book.py --drive TARGET` (PyTorch) or `python -m minigrad.as_torch run_the_book.py
# --drive TARGET` (minigrad): the same code below, where `import torch` gives one engine or the other.


def block_network() -> None:
    """Every internet connection raises at once, naming the host: a download nobody replaced fails
    clearly instead of hanging."""
    import socket

    def refuse(host: Any) -> None:
        raise ConnectionRefusedError(f"run_the_book.py blocks network access ({host}): the book's downloads "
                                     "are replaced by files in the run folder, and this one is not")

    connect = socket.socket.connect

    def guarded_connect(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            refuse(address)
        connect(sock, address)

    socket.getaddrinfo = lambda host, *args, **kwargs: refuse(host)  # type: ignore[assignment]
    socket.socket.connect = guarded_connect  # type: ignore[method-assign]


def run_book_script(script: Path, args: tuple[str, ...]) -> None:
    """As `python SCRIPT ARGS` would: its folder first on sys.path, run as __main__."""
    import runpy
    sys.argv = [str(script), *args]
    sys.path[0] = str(script.parent)
    runpy.run_path(str(script), run_name="__main__")


def drive_ch05(book: Path, epochs: int) -> dict[str, Any]:
    """gpt_train.main with the shrunk config, then the lines of its __main__ block (plot, save, load)."""
    sys.path[0] = str((book / TARGETS["ch05"].path).parent)
    import gpt_train  # the book's script, imported as a module: its own __main__ block does not run
    import torch

    settings = {**CH05_SETTINGS, "num_epochs": epochs}
    train_losses, val_losses, tokens_seen, model = gpt_train.main(CH05_CONFIG, settings)
    epochs_tensor = torch.linspace(0, settings["num_epochs"], len(train_losses))
    gpt_train.plot_losses(epochs_tensor, tokens_seen, train_losses, val_losses)
    gpt_train.plt.savefig("loss.pdf")
    torch.save(model.state_dict(), "model.pth")
    model = gpt_train.GPTModel(CH05_CONFIG)
    model.load_state_dict(torch.load("model.pth", weights_only=True))
    return {"train_losses": train_losses, "val_losses": val_losses}


def drive_ch05_same_init(book: Path, engine: str, steps: int) -> dict[str, Any]:
    """ch05's GPTModel, data loader and calc_loss_batch from one set of initial weights: PyTorch's run
    saves them, minigrad's loads that file. No dropout and no shuffling, so the two runs see the same
    numbers and differ only by floating-point rounding."""
    sys.path[0] = str((book / TARGETS["ch05"].path).parent)
    import gpt_train
    import torch

    config = {**CH05_CONFIG, "drop_rate": 0.0}
    torch.manual_seed(123)
    model = gpt_train.GPTModel(config)
    init = Path("..", "torch", "initial.pth")  # written by the PyTorch run, which goes first
    if engine == "torch":
        torch.save(model.state_dict(), init)
    else:
        model.load_state_dict(torch.load(init, weights_only=True))
    text = (book / VERDICT).read_text(encoding="utf-8")
    loader = gpt_train.create_dataloader_v1(text, batch_size=2, max_length=config["context_length"],
                                            stride=config["context_length"], shuffle=False, drop_last=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.1)
    losses = []
    for inputs, targets in itertools.islice(loader, steps):  # the first `steps` batches, in order
        optimizer.zero_grad()
        loss = gpt_train.calc_loss_batch(inputs, targets, model, "cpu")
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return {"losses": losses}


def notebook_functions(notebook: Path, names: tuple[str, ...]) -> str:
    """The source of the notebook's functions `names`, as a module: torch and F imported first."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    found: dict[str, str] = {}
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        try:
            tree = ast.parse(source)
        except SyntaxError:  # a cell with notebook magics (!pip, %time)
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name in names:
                found[node.name] = ast.get_source_segment(source, node)
    lost = [n for n in names if n not in found]
    if lost:
        raise LookupError(f"{notebook} no longer defines {', '.join(lost)}")
    return "import torch\nimport torch.nn.functional as F\n\n\n" + "\n\n\n".join(found[n] for n in names) + "\n"


def drive_dpo(book: Path) -> dict[str, Any]:
    """The notebook's DPO functions on random float64 inputs: what a DPO step computes, and its gradients."""
    import numpy as np
    import torch

    Path("dpo_functions.py").write_text(notebook_functions(book / TARGETS["dpo"].path, DPO_FUNCTIONS))
    sys.path[0] = os.getcwd()
    import dpo_functions as dpo

    rng = np.random.default_rng(0)
    B, T, V = 3, 9, 11  # batch, tokens, vocabulary
    out: dict[str, Any] = {}

    # compute_logprobs and compute_dpo_loss on random logits: loss, rewards, d loss / d logits
    logits = {k: torch.tensor(rng.standard_normal((B, T, V)), requires_grad=True)
              for k in ("policy_chosen", "policy_rejected", "ref_chosen", "ref_rejected")}
    labels = torch.tensor(rng.integers(0, V, (B, T)))
    mask = torch.tensor(rng.random((B, T)) < 0.7)
    logprobs = {k: dpo.compute_logprobs(v, labels, selection_mask=mask) for k, v in logits.items()}
    loss, chosen_rewards, rejected_rewards = dpo.compute_dpo_loss(
        logprobs["policy_chosen"], logprobs["policy_rejected"], logprobs["ref_chosen"], logprobs["ref_rejected"],
        beta=0.1)
    loss.backward()
    out["loss"], out["chosen_rewards"], out["rejected_rewards"] = loss.item(), chosen_rewards.item(), \
        rejected_rewards.item()
    out["grad_logits"] = {k: v.grad.tolist() for k, v in logits.items()}
    out["logprobs_unmasked"] = dpo.compute_logprobs(logits["policy_chosen"], labels).tolist()

    # custom_collate_fn on token lists, then compute_dpo_loss_batch with two tiny "models": logits = W[ids]
    class Lookup(torch.nn.Module):
        def __init__(self, w: Any) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.tensor(w))

        def forward(self, ids: Any) -> Any:
            return self.w[ids]  # (B, T, V)

    def tokens(n: int) -> list[int]:
        return rng.integers(0, V - 1, n).tolist()

    items = [{"prompt": tokens(p), "chosen": None, "rejected": None} for p in (3, 4)]
    for item in items:
        item["chosen"] = item["prompt"] + tokens(int(rng.integers(2, 6)))
        item["rejected"] = item["prompt"] + tokens(int(rng.integers(2, 6)))
    batch = dpo.custom_collate_fn(items, pad_token_id=V - 1, allowed_max_length=12)
    out["batch"] = {k: v.tolist() for k, v in batch.items() if k != "prompt"}
    policy, reference = Lookup(rng.standard_normal((V, V))), Lookup(rng.standard_normal((V, V)))
    loss, chosen_rewards, rejected_rewards = dpo.compute_dpo_loss_batch(batch, policy, reference, beta=0.1)
    loss.backward()
    out["batch_loss"] = loss.item()
    out["grad_policy"] = policy.w.grad.tolist()
    out["reference_has_no_grad"] = reference.w.grad is None
    return out


def drive(target: str, engine: str, book: Path, epochs: int, steps: int) -> None:
    block_network()
    if target in SCRIPTS:
        run_book_script(book / TARGETS[target].path, TARGETS[target].args)
        return
    result = {"ch05": lambda: drive_ch05(book, epochs), "dpo": lambda: drive_dpo(book),
              "ch05_same_init": lambda: drive_ch05_same_init(book, engine, steps)}[target]()
    Path("result.json").write_text(json.dumps(result))


# ---- the harness: run each target on each engine, read what came out ----------------------------


def run_target(target: str, engine: str, args: argparse.Namespace, run: Path) -> dict[str, Any]:
    """One engine's run of one target, in its own folder: whether it ran to the end, its first error,
    its seconds (the whole process: imports included) and what its output says."""
    run.mkdir(parents=True)
    write_stand_ins(run / "stand_ins", args.book, engine)
    write_data(target, args.book, run)
    launcher = ["-m", "minigrad.as_torch"] if engine == "minigrad" else []
    command = [sys.executable, *launcher, str(Path(__file__).resolve()), "--drive", target, "--engine", engine,
               "--book", str(args.book), "--ch05_epochs", str(args.ch05_epochs),
               "--same_init_steps", str(args.same_init_steps)]
    threads = str(args.threads)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(run / "stand_ins"), str(ROOT), os.environ.get(
        "PYTHONPATH", "")]), "MPLBACKEND": "Agg", "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads}
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=run, env=env, capture_output=True, text=True, timeout=args.timeout,
                              check=False)
        returncode, stdout, stderr = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as e:
        returncode, stdout, stderr = None, _text(e.stdout), _text(e.stderr) + f"\nTimeout: over {args.timeout} s"
    seconds = time.perf_counter() - start
    (run / "stdout.txt").write_text(stdout)
    (run / "stderr.txt").write_text(stderr)
    outcome = {"ran_to_end": returncode == 0, "first_error": None if returncode == 0 else first_error(stderr, args.book),
               "seconds": round(seconds, 1)}
    outcome.update(read_output(target, run, stdout) if returncode == 0 else {})
    return outcome


def _text(output: str | bytes | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


def first_error(stderr: str, book: Path) -> str:
    """The error that stopped a run, and the innermost line of the book's code it came through."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    message = next((line for line in reversed(lines) if re.match(r"[A-Za-z_][\w.]*(: |$)", line)),
                   lines[-1] if lines else "no output")
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', stderr)
    in_book = [f for f in frames if f[0].startswith(str(book))]
    where = f"{Path(in_book[-1][0]).name}:{in_book[-1][1]} ({in_book[-1][2]}): " if in_book else ""
    return where + message


def read_output(target: str, run: Path, stdout: str) -> dict[str, Any]:
    """Losses and checks from a run that ended: its result.json, or what the book's script printed."""
    result = json.loads((run / "result.json").read_text()) if (run / "result.json").exists() else {}
    # the book's training loops print "Ep 1 (Step 000005): Train loss 9.123, Val loss 9.456"
    evals = [(float(t), float(v)) for t, v in re.findall(r"Train loss ([\d.naif]+), Val loss ([\d.naif]+)", stdout)]
    if target == "ch04":
        length, text = re.search(r"Output length: (\d+)", stdout), re.search(r"Output text: (.*)", stdout)
        return {"output_length": int(length.group(1)) if length else None, "output_text": text and text.group(1)}
    if target == "ch05":
        return {"train_loss": result["train_losses"][-1], "val_loss": result["val_losses"][-1],
                "val_curve": [round(v, 3) for v in result["val_losses"]]}
    if target == "ch05_same_init":
        return {"train_loss": result["losses"][-1], "losses": result["losses"]}
    if target == "ch06":
        accuracy = re.findall(r"Validation accuracy: ([\d.]+)%", stdout)
        return {"train_loss": evals[-1][0], "val_loss": evals[-1][1],
                "val_accuracy": float(accuracy[-1]) / 100 if accuracy else None}
    if target == "ch07":
        answers = [e["model_response"] for e in json.loads(
            (run / "instruction-data-with-response-standalone.json").read_text(encoding="utf-8"))]
        return {"train_loss": evals[-1][0], "val_loss": evals[-1][1], "answers": answers[:2],
                "empty_answers": sum(not a for a in answers), "n_answers": len(answers)}
    return {"train_loss": result["loss"], "result": result}  # dpo


def max_difference(a: Any, b: Any) -> float:
    """Largest |a - b| over two nested lists of numbers of the same shape."""
    import numpy as np
    return float(np.max(np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)), initial=0.0))


def compare(target: str, runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What the two engines' runs of one target have in common, and the checks that need both."""
    checks: dict[str, Any] = {}
    if target == "ch07":
        checks["answers_not_empty"] = all(r.get("empty_answers") == 0 for r in runs.values() if r["ran_to_end"])
    if len(runs) < 2 or not all(r["ran_to_end"] for r in runs.values()):
        return checks
    torch_run, minigrad_run = runs["torch"], runs["minigrad"]
    if target == "ch04":
        checks["same_output_length"] = torch_run["output_length"] == minigrad_run["output_length"] is not None
    if target == "ch05_same_init":
        checks["max_abs_loss_difference"] = max_difference(torch_run["losses"], minigrad_run["losses"])
        checks["steps"] = len(torch_run["losses"])
    if target == "dpo":
        a, b = torch_run.pop("result"), minigrad_run.pop("result")
        checks["same_batch"] = a["batch"] == b["batch"]
        checks["max_abs_loss_difference"] = max(max_difference(a[k], b[k]) for k in (
            "loss", "chosen_rewards", "rejected_rewards", "batch_loss", "logprobs_unmasked"))
        checks["max_abs_grad_difference"] = max(
            max_difference(a["grad_policy"], b["grad_policy"]),
            *(max_difference(a["grad_logits"][k], b["grad_logits"][k]) for k in a["grad_logits"]))
        checks["reference_has_no_grad"] = a["reference_has_no_grad"] and b["reference_has_no_grad"]
        checks["agree_to_1e-9"] = max(checks["max_abs_loss_difference"], checks["max_abs_grad_difference"]) < 1e-9
    return checks


def table(report: dict[str, dict[str, Any]]) -> str:
    def number(v: Any) -> str:
        return "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)

    rows = [("target", "engine", "ran", "train loss", "val loss", "seconds", "notes")]
    for target, entry in report.items():
        for engine in entry["seconds"]:
            error = entry["first_error"][engine]
            notes = error or ("; ".join(f"{k} {number(v)}" for k, v in entry["checks"].items())
                              if engine == list(entry["seconds"])[-1] else "")
            rows.append((target, engine, "yes" if entry["ran_to_end"][engine] else "NO",
                         number(entry["train_loss"][engine]), number(entry["val_loss"][engine]),
                         number(entry["seconds"][engine]), notes))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[6] for r in rows)


def passed(entry: dict[str, Any]) -> bool:
    """Every engine ran to the end and every check held (a difference is judged by the reader)."""
    return all(entry["ran_to_end"].values()) and all(v for k, v in entry["checks"].items()
                                                     if isinstance(v, bool))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--book", type=Path, default=os.environ.get("LLMS_FROM_SCRATCH"),
                    help="a checkout of rasbt/LLMs-from-scratch (default: $LLMS_FROM_SCRATCH)")
    ap.add_argument("--only", nargs="+", choices=list(TARGETS), default=list(TARGETS), metavar="NAME",
                    help=f"targets to run (default: all of {', '.join(TARGETS)})")
    ap.add_argument("--engine", choices=["minigrad", "torch", "both"], default="both")
    ap.add_argument("--run_dir", type=Path, default=None, help="where the run folders go (default: a new temporary "
                    "folder); it must not hold the targets' folders already")
    ap.add_argument("--ch05_epochs", type=int, default=CH05_SETTINGS["num_epochs"])
    ap.add_argument("--same_init_steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads of each engine (default 1)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds one engine's run of one target may take")
    ap.add_argument("--drive", choices=list(TARGETS), help=argparse.SUPPRESS)  # inside an engine's process
    args = ap.parse_args()
    if args.book is None:
        ap.error("--book PATH is needed: a checkout of https://github.com/rasbt/LLMs-from-scratch")
    args.book = args.book.resolve()
    if args.drive:
        drive(args.drive, args.engine, args.book, args.ch05_epochs, args.same_init_steps)
        return
    missing = [t.path for t in TARGETS.values() if not (args.book / t.path).exists()]
    if missing:
        ap.error(f"--book {args.book} is not a checkout of rasbt/LLMs-from-scratch: no {missing[0]}")
    engines = ENGINES if args.engine == "both" else (args.engine,)
    if "torch" in engines and importlib.util.find_spec("torch") is None:
        from minigrad.extras import install_hint
        ap.error(f"--engine {args.engine} needs {install_hint('torch')} (or use --engine minigrad)")
    targets = [t for t in args.only if t != "ch05_same_init" or engines == ENGINES]
    if len(targets) < len(args.only):
        print("ch05_same_init left out: it needs both engines (PyTorch's initial weights)")
    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="run_the_book-"))
    print(f"book: {args.book}\nrun folders: {run_dir}", flush=True)

    report: dict[str, dict[str, Any]] = {}
    for target in targets:
        runs = {}
        for engine in engines:  # PyTorch first: ch05_same_init's minigrad run reads its initial weights
            runs[engine] = run_target(target, engine, args, run_dir / target / engine)
            print(f"{target} {engine}: {'ran to the end' if runs[engine]['ran_to_end'] else 'FAILED'} in "
                  f"{runs[engine]['seconds']} s", flush=True)
        checks = compare(target, runs)
        keys = ["ran_to_end", "first_error", "train_loss", "val_loss", "seconds"]
        keys += sorted({k for r in runs.values() for k in r} - set(keys))  # the target's own: answers, curves
        report[target] = {key: {e: r.get(key) for e, r in runs.items()} for key in keys}
        report[target]["checks"] = checks
    print(table(report))
    print(json.dumps({"book": str(args.book), "engines": list(engines), "targets": report,
                      "passed": all(passed(entry) for entry in report.values())}))
    sys.exit(0 if all(passed(entry) for entry in report.values()) else 1)


if __name__ == "__main__":
    main()
