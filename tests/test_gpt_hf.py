"""GPT-2 in Hugging Face's layout: load a transformers GPT2LMHeadModel's directory (same logits),
export ours to one (transformers loads it, same logits), the CLI's export and sample --pretrained,
GPT-2's tokenizer files (same ids as transformers.GPT2Tokenizer), and every bad-input error."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from helpers import need

import minigrad
from gpt.hf import CONV1D, PretrainedError, load_pretrained, save_pretrained
from gpt.model import GPT, GPTConfig
from gpt.tokenizer import BPETokenizer, CharTokenizer, load_tokenizer, tokenizer_from_dict

IDX = np.array([[3, 1, 4, 1, 5, 9, 2, 6, 5, 3], [5, 8, 9, 7, 9, 3, 2, 3, 8, 4]])  # (B, T) = (2, 10)


def hf_dir(tmp_path, layer_norm_epsilon=1e-5, activation_function="gelu_new"):
    """A randomly initialised transformers GPT-2 (LayerNorms randomised too) saved with save_pretrained."""
    torch = need("torch")
    transformers = need("transformers")
    need("safetensors")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=50, n_positions=16, n_embd=24, n_layer=2, n_head=3,
                                  layer_norm_epsilon=layer_norm_epsilon, activation_function=activation_function, bos_token_id=0, eos_token_id=0)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ln_" in name:  # off the default 1 and 0, so a swapped gain and bias would show
                p.copy_(torch.randn_like(p) * 0.3 + (1.0 if name.endswith("weight") else 0.0))
            if "c_fc" in name:  # GELU's inputs of order 1, where its tanh and erf forms differ
                p.copy_(torch.randn_like(p) * 0.3)
    d = tmp_path / "hf"
    model.save_pretrained(d)
    return d, model


def hf_logits(model, idx):
    import torch

    with torch.no_grad():
        return model(torch.tensor(idx)).logits.numpy()


def our_logits(model, idx):
    with minigrad.no_grad():
        logits, _ = model.eval()(idx, idx)  # with targets: logits for every position (B, T, V)
    return logits.numpy()


@pytest.mark.parametrize("eps, act, gelu", [(1e-5, "gelu_new", "tanh"), (1e-2, "gelu", "none")])
def test_load_pretrained_gives_transformers_logits(tmp_path, eps, act, gelu):
    d, ref = hf_dir(tmp_path, eps, act)
    model = load_pretrained(d)
    assert model.config.block_size == 16 and model.config.layer_norm_epsilon == eps and model.config.gelu == gelu
    assert model.lm_head.weight is model.transformer.wte.weight  # tied
    expected = hf_logits(ref, IDX)
    np.testing.assert_allclose(our_logits(model, IDX), expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("gelu", ["tanh", "none"])
def test_export_loads_in_transformers_with_the_same_logits(tmp_path, gelu):
    need("torch")
    transformers = need("transformers")
    need("safetensors")
    minigrad.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=40, block_size=12, n_layer=2, n_head=2, n_embd=16, layer_norm_epsilon=1e-3, gelu=gelu))
    for name, p in model.named_parameters():  # LayerNorms off 1 and 0 too, GELU's inputs of order 1
        std = 0.4 if "c_fc" in name else 0.1
        p.data[...] += np.random.default_rng(1).normal(0, std, p.shape).astype(p.dtype)
    save_pretrained(model, tmp_path / "out")
    ref = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "out").eval()
    idx = IDX % 40
    expected = our_logits(model, idx)
    np.testing.assert_allclose(hf_logits(ref, idx), expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    again = load_pretrained(tmp_path / "out")  # and back: bit for bit
    for (n, p), (_, q) in zip(model.named_parameters(), again.named_parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=n)


def test_cli_export_and_sample_pretrained(tmp_path, capsys):
    need("safetensors")
    from gpt.cli import main

    text = "to be or not to be, that is the question.\n" * 40
    (tmp_path / "t.txt").write_text(text)
    argv = ["train", "--data", str(tmp_path / "t.txt"), "--out_dir", str(tmp_path / "run"), "--max_iters", "3",
            "--eval_interval", "3", "--eval_iters", "1", "--batch_size", "2", "--block_size", "16", "--n_layer", "1",
            "--n_head", "2", "--n_embd", "16", "--sample_tokens", "0", "--no-progress", "--warmup_iters", "1"]
    assert main(argv) == 0
    assert main(["export", "--ckpt", str(tmp_path / "run" / "ckpt.npz"), "--to", str(tmp_path / "exp")]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["exported"] == str(tmp_path / "exp")
    tok = load_tokenizer(tmp_path / "exp")
    assert isinstance(tok, CharTokenizer) and tok.vocab_size == len(set(text))
    args = ["--prompt", "to be", "--max_new_tokens", "20", "--seed", "3", "--temperature", "0.5"]
    assert main(["sample", "--pretrained", str(tmp_path / "exp"), *args]) == 0
    from_dir = capsys.readouterr().out
    assert main(["sample", "--ckpt", str(tmp_path / "run" / "ckpt.npz"), *args]) == 0
    assert capsys.readouterr().out == from_dir  # the exported model samples exactly as the checkpoint
    assert from_dir.startswith("to be") and len(from_dir) >= 25


# ---- bad input: one clear error each, nothing half-loaded --------------------------------------
def test_missing_directory_config_and_weights(tmp_path):
    with pytest.raises(PretrainedError, match="does not exist"):
        load_pretrained(tmp_path / "nope")
    with pytest.raises(PretrainedError, match="no config.json"):
        load_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "vocab_size": 5, "n_positions": 4,
                                                      "n_embd": 4, "n_layer": 1, "n_head": 1}))
    with pytest.raises(PretrainedError, match="no model.safetensors"):
        load_pretrained(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(PretrainedError, match="pytorch_model.bin is a pickle"):
        load_pretrained(tmp_path)
    need("safetensors")  # the checks above come before reading the file
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(PretrainedError, match="cannot be read as safetensors"):
        load_pretrained(tmp_path)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"model_type": "llama"}, "model_type is 'llama', only 'gpt2'"),
        ({"activation_function": "relu"}, "activation_function='relu'"),
        ({"n_inner": 7}, "n_inner=7"),
        ({"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx=True"),
        ({"n_head": 5}, "divisible by n_head"),
    ],
)
def test_configs_we_would_compute_differently_are_refused(tmp_path, change, match):
    d, _ = hf_dir(tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, **change}))
    with pytest.raises(PretrainedError, match=match):
        load_pretrained(d)


def test_missing_and_misshaped_tensors_are_named(tmp_path):
    d, _ = hf_dir(tmp_path)
    from safetensors.numpy import load_file, save_file  # hf_dir skipped without it
    tensors = load_file(str(d / "model.safetensors"))
    good = dict(tensors)
    del tensors["transformer.h.1.mlp.c_fc.bias"]
    tensors["transformer.h.0.attn.c_attn.weight"] = np.zeros((24, 70), np.float32)
    tensors["transformer.h.0.extra"] = np.zeros(3, np.float32)
    save_file(tensors, str(d / "model.safetensors"))
    with pytest.raises(PretrainedError) as e:
        load_pretrained(d)
    msg = str(e.value)
    assert "missing tensors ['transformer.h.1.mlp.c_fc.bias']" in msg
    assert "unexpected tensors ['transformer.h.0.extra']" in msg
    assert "transformer.h.0.attn.c_attn.weight has shape (24, 70), expected (24, 72)" in msg
    good["lm_head.weight"] = good["transformer.wte.weight"] + 1
    save_file(good, str(d / "model.safetensors"))
    with pytest.raises(PretrainedError, match="untied heads"):
        load_pretrained(d)


def test_openai_names_without_the_transformer_prefix_load(tmp_path):
    d, ref = hf_dir(tmp_path)
    from safetensors.numpy import load_file, save_file  # hf_dir skipped without it
    tensors = {k.removeprefix("transformer."): v for k, v in load_file(str(d / "model.safetensors")).items()}
    tensors["h.0.attn.bias"] = np.ones((1, 1, 16, 16), np.float32)  # the causal-mask buffer old files carry
    save_file(tensors, str(d / "model.safetensors"))
    expected = hf_logits(ref, IDX)
    np.testing.assert_allclose(our_logits(load_pretrained(d), IDX), expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_export_refuses_models_gpt2_cannot_hold(tmp_path):
    need("safetensors")
    model = GPT(GPTConfig(vocab_size=10, block_size=4, n_layer=1, n_head=1, n_embd=4, pos_encoding="sinusoidal"))
    with pytest.raises(PretrainedError, match="pos_encoding='sinusoidal'"):
        save_pretrained(model, tmp_path / "x")


def test_grouped_query_models_are_refused_at_export_and_multi_head_ones_load_back(tmp_path):
    """GPT-2 has one key/value head per query head: a grouped-query model is refused before anything is
    written (load_pretrained could not read it back), while n_kv_head == n_head is GPT-2's own layout."""
    need("safetensors")
    cfg = dict(vocab_size=10, block_size=4, n_layer=1, n_head=4, n_embd=8)
    for n_kv_head in (1, 2):
        with pytest.raises(PretrainedError, match=rf"grouped-query attention \(n_kv_head={n_kv_head}, n_head=4\)"):
            save_pretrained(GPT(GPTConfig(**cfg, n_kv_head=n_kv_head)), tmp_path / "gqa")
        assert not (tmp_path / "gqa").exists()
    minigrad.manual_seed(0)
    model = GPT(GPTConfig(**cfg, n_kv_head=4))
    save_pretrained(model, tmp_path / "mha")
    again = load_pretrained(tmp_path / "mha")
    assert again.config.n_head == 4 and (again.config.n_kv_head or 4) == 4
    idx = IDX[:, :4] % 10
    np.testing.assert_array_equal(our_logits(again, idx), our_logits(model, idx))


def test_a_grouped_query_directory_fails_to_load_naming_the_attention_weights(tmp_path):
    """The other direction: a GPT-2 directory whose c_attn holds grouped-query rows (what save_pretrained
    wrote before it refused such models) is refused whole, naming the tensor and both shapes."""
    need("safetensors")
    from safetensors.numpy import save_file

    cfg = dict(vocab_size=10, block_size=4, n_layer=1, n_head=4, n_embd=8)
    save_pretrained(GPT(GPTConfig(**cfg)), tmp_path)  # config.json as it was written for both
    gqa = GPT(GPTConfig(**cfg, n_kv_head=1)).state_dict()
    save_file({n: np.ascontiguousarray(p.numpy().T if n.endswith(CONV1D) else p.numpy())
               for n, p in gqa.items() if n != "lm_head.weight"}, str(tmp_path / "model.safetensors"))
    with pytest.raises(PretrainedError, match=r"c_attn.weight has shape \(8, 12\), expected \(8, 24\)"):
        load_pretrained(tmp_path)


def test_tokenizer_bigger_than_the_model_is_refused(tmp_path):
    from gpt.hf import load_pretrained_with_tokenizer

    d, _ = hf_dir(tmp_path)  # vocab_size 50
    CharTokenizer([chr(65 + i) for i in range(51)]).save_pretrained(d)
    with pytest.raises(PretrainedError, match="51 tokens, more than the model's vocab_size 50"):
        load_pretrained_with_tokenizer(d)
    (d / "tokenizer_minigrad.json").unlink()
    with pytest.raises(ValueError, match="no tokenizer files"):
        load_pretrained_with_tokenizer(d)


# ---- GPT-2's tokenizer files ------------------------------------------------------------
CORPUS = [
    "Hello world! It's a test, isn't it? We'll see.  Spaces   and\ttabs\n\nnewlines.",
    "Café naïve résumé — 東京タワー 😀👍🏽 emoji!!! 12345 3.14 ½ ²",
    "I've they're you'd I'm HE'LL it'S",
] * 20
SAMPLES = [
    "Hello world! It's   ok?\n\n  yes",
    "Café 東京 😀👍🏽 never-seen wörds  \t x\u00a0y\u3000z",
    "<|endoftext|>Hi<|endoftext|> there",
    "don't  I'LL they've\r\n\r\n",
    "   leading and trailing   ",
    "",
    "Ω≈ç√∫ 𝕳𝖊𝖑𝖑𝖔 ٣٤ ⅷ",
]


def trained_files(tmp_path, special=True):
    tokenizers = need("tokenizers")
    t = tokenizers.ByteLevelBPETokenizer()
    t.train_from_iterator(CORPUS, vocab_size=400, min_frequency=1, special_tokens=["<|endoftext|>"] if special else [])
    d = tmp_path / "tok"
    d.mkdir()
    t.save_model(str(d))
    return d


@pytest.mark.parametrize("special", [True, False], ids=["eot-in-vocab", "eot-added"])
def test_bpe_from_pretrained_gives_gpt2tokenizer_ids(tmp_path, special):
    transformers = need("transformers")
    d = trained_files(tmp_path, special)
    ref = transformers.GPT2Tokenizer.from_pretrained(str(d))
    ours = BPETokenizer.from_pretrained(d)
    assert ours.vocab_size == len(ref)
    for s in SAMPLES + CORPUS[:3]:
        assert ours.encode(s) == ref.encode(s), s
        assert ours.decode(ours.encode(s)) == s
    back = tokenizer_from_dict(json.loads(json.dumps(ours.to_dict())))  # as a checkpoint carries it
    assert all(back.encode(s) == ours.encode(s) for s in SAMPLES)


def test_our_trained_bpe_saves_in_gpt2s_format(tmp_path):
    transformers = need("transformers")
    ours = BPETokenizer.train(" ".join(CORPUS), vocab_size=320)
    ours.save_pretrained(tmp_path / "t")
    ref = transformers.GPT2Tokenizer.from_pretrained(str(tmp_path / "t"))
    again = BPETokenizer.from_pretrained(tmp_path / "t")
    for s in SAMPLES[:2] + SAMPLES[3:] + CORPUS[:3]:
        assert ref.encode(s) == ours.encode(s) == again.encode(s), s


def test_merges_txt_keeps_the_rank_order(tmp_path):
    """merges.txt lists merges earliest first, the order encoding applies them: in " aaab" (by then
    ' ', 'aa', 'ab'), ' '+'aa' (rank 2) beats 'aa'+'ab' (rank 5), so it ends as one token; reversed, two."""
    ours = BPETokenizer.train("aaab aaab aaab abab aaaa", vocab_size=262)
    assert ours.vocab[259] == b" aaab" and ours.encode(" aaab") == [259]
    ours.save_pretrained(tmp_path / "t")
    again = BPETokenizer.from_pretrained(tmp_path / "t")
    for s in [" aaab", " abab aaaa", "aaab"]:
        assert again.encode(s) == ours.encode(s), s
    assert again.encode(" aaab") == [259] and again.merges == ours.merges


def test_bad_tokenizer_files(tmp_path):
    with pytest.raises(ValueError, match="has no vocab.json"):
        BPETokenizer.from_pretrained(tmp_path)
    d = trained_files(tmp_path)
    shutil.copy(d / "merges.txt", tmp_path / "m.txt")
    with open(d / "merges.txt", "a", encoding="utf-8") as f:
        f.write("zzz qqq\n")
    with pytest.raises(ValueError, match="expected two tokens of vocab.json, got 'zzz qqq'"):
        BPETokenizer.from_pretrained(d)
    shutil.copy(tmp_path / "m.txt", d / "merges.txt")
    vocab = json.loads((d / "vocab.json").read_text())
    vocab["extra"] = 10_000
    (d / "vocab.json").write_text(json.dumps(vocab))
    with pytest.raises(ValueError, match="ids must be 0..n-1"):
        BPETokenizer.from_pretrained(d)


def test_a_sliding_window_or_experts_cannot_be_exported(tmp_path):
    """GPT-2 attends to every earlier token and has one MLP per block: neither kind is written."""
    need("safetensors")
    cfg = dict(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8)
    with pytest.raises(PretrainedError, match=r"sliding-window model \(attn_window=4\)"):
        save_pretrained(GPT(GPTConfig(**cfg, attn_window=4)), tmp_path / "window")
    with pytest.raises(PretrainedError, match=r"mixture of experts \(n_expert=2\)"):
        save_pretrained(GPT(GPTConfig(**cfg, n_expert=2)), tmp_path / "moe")
    assert not (tmp_path / "window").exists() and not (tmp_path / "moe").exists()
