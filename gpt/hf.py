"""GPT-2 checkpoints in Hugging Face's layout: read a directory into our GPT, write our GPT as one.

A Hugging Face GPT-2 directory holds `config.json` (the architecture) and
`model.safetensors` (the weights: a JSON header of names, dtypes and shapes,
then raw little-endian arrays; unlike PyTorch's pickles it cannot run code).
The names are ours with a `transformer.` prefix (OpenAI's own upload leaves it
out), with two differences of layout:

    HF Conv1D weight (in, out)  <->  our Linear weight (out, in): transposed
    lm_head.weight              tied to transformer.wte.weight, usually not stored

`load_pretrained` checks everything (config fields, every tensor's name and
shape) before it builds the model, so a bad directory raises one PretrainedError
naming what was wrong and nothing is half-loaded. Leaves out: downloading
from the Hub (nothing is fetched), PyTorch's `pytorch_model.bin` pickles,
sharded checkpoints, GPT-2 variants with untied heads or other attention
scalings, and grouped-query models (save_pretrained refuses them: GPT-2 has no
such layout). Tokenizer files (vocab.json, merges.txt) are gpt/tokenizer.py's.

Read next: minigrad/nn/lora.py (fine-tuning the weights loaded here); the tokenizer files are
tokenizer.py's (BPETokenizer.from_pretrained).
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from gpt.model import GPT, GPTConfig
from minigrad.extras import require

CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")  # stored (in, out)
# HF's activation_function -> our GPTConfig.gelu: the tanh approximation (GPT-2's) or the exact erf form
GELU_FORMS = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu": "none"}


class PretrainedError(ValueError):
    """A pretrained directory that cannot be loaded as GPT-2 (missing files, other model, bad tensors)."""


def read_config(path: str | Path) -> GPTConfig:
    """GPTConfig from a Hugging Face GPT-2 `config.json`; raises PretrainedError for anything we would compute differently."""
    path = Path(path)
    if not path.is_dir():
        raise PretrainedError(f"pretrained directory {str(path)!r} does not exist")
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise PretrainedError(f"{str(path)!r} has no config.json: not a Hugging Face model directory")
    try:
        hf = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PretrainedError(f"{str(cfg_file)!r} is not valid JSON ({e})") from None
    if hf.get("model_type") != "gpt2":
        raise PretrainedError(f"{str(cfg_file)!r}: model_type is {hf.get('model_type')!r}, only 'gpt2' can be loaded")
    missing = [k for k in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head") if k not in hf]
    if missing:
        raise PretrainedError(f"{str(cfg_file)!r} lacks {missing}")
    unsupported = {
        "activation_function": (hf.get("activation_function", "gelu_new"), tuple(GELU_FORMS)),
        "n_inner": (hf.get("n_inner"), (None, 4 * hf["n_embd"])),
        "scale_attn_weights": (hf.get("scale_attn_weights", True), (True,)),
        "scale_attn_by_inverse_layer_idx": (hf.get("scale_attn_by_inverse_layer_idx", False), (False,)),
        "add_cross_attention": (hf.get("add_cross_attention", False), (False,)),
        "tie_word_embeddings": (hf.get("tie_word_embeddings", True), (True,)),
    }
    bad = [f"{k}={v!r} (supported: {ok})" for k, (v, ok) in unsupported.items() if v not in ok]
    if bad:
        raise PretrainedError(f"{str(cfg_file)!r}: this GPT-2 variant is not supported: " + "; ".join(bad))
    try:
        return GPTConfig(
            vocab_size=hf["vocab_size"], block_size=hf["n_positions"], n_layer=hf["n_layer"], n_head=hf["n_head"],
            n_embd=hf["n_embd"], dropout=0.0, bias=True, layer_norm_epsilon=float(hf.get("layer_norm_epsilon", 1e-5)),
            gelu=GELU_FORMS[hf.get("activation_function", "gelu_new")],
        )
    except (ValueError, TypeError) as e:
        raise PretrainedError(f"{str(cfg_file)!r}: {e}") from None


def read_weights(path: str | Path, config: GPTConfig) -> dict[str, np.ndarray]:
    """Our state dict (names, layouts) from `model.safetensors`, every name and shape checked first."""
    path = Path(path)
    file = path / "model.safetensors"
    if not file.is_file():
        hint = " (pytorch_model.bin is a pickle, which is not read here: save it again with safe_serialization)" if (
            path / "pytorch_model.bin").is_file() else ""
        raise PretrainedError(f"{str(path)!r} has no model.safetensors{hint}")
    SafetensorError = require("safetensors", "reading model.safetensors").SafetensorError
    load_file = require("safetensors.numpy", "reading model.safetensors").load_file
    try:
        raw = load_file(str(file))
    except (SafetensorError, OSError, ValueError) as e:
        raise PretrainedError(f"{str(file)!r} cannot be read as safetensors ({e})") from None
    # our name -> HF name; OpenAI's upload has no "transformer." prefix, save_pretrained's has
    prefix = "transformer." if any(k.startswith("transformer.") for k in raw) else ""
    expected = {name: shape for name, shape in _our_shapes(config).items() if name != "lm_head.weight"}
    hf_of = {name: prefix + name.removeprefix("transformer.") for name in expected}
    ignored = {k for k in raw if k.endswith((".attn.bias", ".attn.masked_bias"))}  # causal-mask buffers
    unexpected = sorted(set(raw) - set(hf_of.values()) - ignored - {"lm_head.weight"})
    missing = sorted(h for h in hf_of.values() if h not in raw)
    problems = []
    if missing:
        problems.append(f"missing tensors {missing}")
    if unexpected:
        problems.append(f"unexpected tensors {unexpected}")
    out: dict[str, np.ndarray] = {}
    for name, shape in expected.items():
        arr = raw.get(hf_of[name])
        if arr is None:
            continue
        if name.endswith(CONV1D):
            arr = arr.T  # Conv1D (in, out) -> Linear (out, in)
        if arr.shape != shape:
            problems.append(f"{hf_of[name]} has shape {_hf_shape(name, arr.shape)}, expected {_hf_shape(name, shape)}")
        out[name] = np.ascontiguousarray(arr)
    if "lm_head.weight" in raw and not problems and not np.array_equal(raw["lm_head.weight"], out["transformer.wte.weight"]):
        problems.append("lm_head.weight differs from transformer.wte.weight: untied heads are not supported")
    if problems:
        raise PretrainedError(f"{str(file)!r}: " + "; ".join(problems))
    out["lm_head.weight"] = out["transformer.wte.weight"]
    return out


def _our_shapes(config: GPTConfig) -> dict[str, tuple[int, ...]]:
    C, V, T = config.n_embd, config.vocab_size, config.block_size
    shapes = {"transformer.wte.weight": (V, C), "transformer.wpe.weight": (T, C)}
    for i in range(config.n_layer):
        h = f"transformer.h.{i}."
        shapes.update({
            h + "ln_1.weight": (C,), h + "ln_1.bias": (C,),
            h + "attn.c_attn.weight": (3 * C, C), h + "attn.c_attn.bias": (3 * C,),
            h + "attn.c_proj.weight": (C, C), h + "attn.c_proj.bias": (C,),
            h + "ln_2.weight": (C,), h + "ln_2.bias": (C,),
            h + "mlp.c_fc.weight": (4 * C, C), h + "mlp.c_fc.bias": (4 * C,),
            h + "mlp.c_proj.weight": (C, 4 * C), h + "mlp.c_proj.bias": (C,),
        })
    shapes.update({"transformer.ln_f.weight": (C,), "transformer.ln_f.bias": (C,), "lm_head.weight": (V, C)})
    return shapes


def _hf_shape(name: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A shape as the file stores it (Conv1D weights transposed), for error messages."""
    return tuple(reversed(shape)) if name.endswith(CONV1D) else tuple(shape)


def load_pretrained(path: str | Path, device: str = "cpu", dropout: float = 0.0) -> GPT:
    """Our GPT with the weights of a Hugging Face GPT-2 directory (config.json + model.safetensors)."""
    config = replace(read_config(path), dropout=dropout)
    state = read_weights(path, config)  # everything checked before the model exists
    model = GPT(config)
    dtype = model.lm_head.weight.dtype
    model.load_state_dict({k: v.astype(dtype, copy=False) for k, v in state.items()})
    return model.to(device)


def save_pretrained(model: GPT, path: str | Path, tokenizer: Any = None) -> None:
    """Write `model` as a Hugging Face GPT-2 directory (config.json, model.safetensors, and the
    tokenizer's files if given) that transformers.GPT2LMHeadModel.from_pretrained and load_pretrained
    load. Models GPT-2 cannot hold (sinusoidal positions, no biases, grouped-query attention,
    experts, a sliding window) are refused before anything is written."""
    save_file = require("safetensors.numpy", "writing model.safetensors").save_file
    cfg = model.config
    if cfg.n_kv_head not in (None, cfg.n_head):  # c_attn would hold C + 2 Hkv D rows where GPT-2 reads 3C
        raise PretrainedError(
            f"grouped-query attention (n_kv_head={cfg.n_kv_head}, n_head={cfg.n_head}) cannot be exported: GPT-2's "
            "layout, which transformers and load_pretrained read, has one key/value head per query head "
            "(the model's own checkpoint, ckpt.npz, keeps it)"
        )
    if cfg.attn_window is not None:  # GPT-2 attends to every earlier token: the export would be another model
        raise PretrainedError(
            f"a sliding-window model (attn_window={cfg.attn_window}) cannot be exported: GPT-2 attends to every "
            "earlier position (the model's own checkpoint, ckpt.npz, keeps it)"
        )
    if cfg.n_expert:  # GPT-2 has one MLP per block, where this model has a router and n_expert MLPs
        raise PretrainedError(
            f"a mixture of experts (n_expert={cfg.n_expert}) cannot be exported: GPT-2's layout has one MLP "
            "per block (the model's own checkpoint, ckpt.npz, keeps it)"
        )
    if cfg.pos_encoding != "learned" or not cfg.bias:
        raise PretrainedError(
            f"only GPT-2's layout can be exported (learned positions, biases): this model has "
            f"pos_encoding={cfg.pos_encoding!r}, bias={cfg.bias}"
        )
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, p in model.state_dict().items():
        if name == "lm_head.weight":
            continue  # tied to wte, as save_pretrained leaves it out
        arr = p.numpy().astype(np.float32)
        tensors[name] = np.ascontiguousarray(arr.T if name.endswith(CONV1D) else arr)
    save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})
    hf = {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": cfg.vocab_size,
        "n_positions": cfg.block_size, "n_ctx": cfg.block_size, "n_embd": cfg.n_embd, "n_layer": cfg.n_layer,
        "n_head": cfg.n_head, "n_inner": None,
        "activation_function": "gelu_new" if cfg.gelu == "tanh" else "gelu",
        "resid_pdrop": cfg.dropout, "embd_pdrop": cfg.dropout, "attn_pdrop": cfg.dropout,
        "layer_norm_epsilon": cfg.layer_norm_epsilon, "initializer_range": 0.02, "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False, "tie_word_embeddings": True,
        "use_cache": True, "bos_token_id": None, "eos_token_id": None, "dtype": "float32",
    }
    (path / "config.json").write_text(json.dumps(hf, indent=2) + "\n", encoding="utf-8")
    if tokenizer is not None:
        tokenizer.save_pretrained(path)


def load_pretrained_with_tokenizer(path: str | Path, device: str = "cpu") -> tuple[GPT, Any]:
    """The model and the tokenizer of a pretrained directory; the tokenizer must fit the model's vocabulary."""
    from gpt.tokenizer import load_tokenizer

    tok = load_tokenizer(path)  # first: a directory without tokenizer files fails before any weights are read
    model = load_pretrained(path, device)
    if tok.vocab_size > model.config.vocab_size:
        raise PretrainedError(
            f"{str(path)!r}: the tokenizer has {tok.vocab_size} tokens, more than the model's vocab_size {model.config.vocab_size}"
        )
    return model, tok
