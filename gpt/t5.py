"""T5, small (Raffel et al. 2020, "Exploring the Limits of Transfer Learning with a Unified
Text-to-Text Transformer"): one encoder-decoder for every task, each task named by a text prefix
("Zahl: 324 →" answers "dreihundertvierundzwanzig"), pretrained by span corruption.

What makes it T5 rather than the original Transformer (minigrad/nn/transformer.py):
  * positions: no position vectors at all. Each attention adds a learned bias per head to its
    scores, looked up by the bucket of the distance key - query (relative_position_bucket: exact
    for small distances, log-spaced up to max_distance, one bucket beyond). The encoder's buckets
    tell left from right, the decoder's are causal; each stack computes its bias once, in the first
    layer, and every layer reuses it. The bias is a float attn_mask with a gradient, which
    minigrad's attention op adds to the scores and differentiates.
  * RMSNorm (minigrad/ops/rmsnorm.py) before each sublayer (pre-norm), and no bias anywhere.
  * no 1/sqrt(D) on the scores: T5 folds it into the initialisation instead, q's weights start
    at std (C D)^-1/2 where k's and v's start at C^-1/2, so q k^T starts at the scale a scaled
    attention would have.
  * a ReLU feed-forward (T5 v1.0, Hugging Face's feed_forward_proj="relu"; v1.1's gated GELU
    is left out).
  * one embedding shared by encoder, decoder and the output layer, the decoder's output scaled by
    C^-1/2 before that tied head (the embedding starts at std 1, so its logits would be C^1/2 too big).
  * sentinel tokens: the vocabulary's top ids, <extra_id_0> = V - 1 counting down, stand for the
    spans that span corruption took out.

Standalone rather than options on nn.Transformer: T5 differs from it in every sublayer (norm, no
biases, separate q/k/v/o projections, unscaled scores plus a shared bias), so options would thread
through every layer of both and hide each model's shape; here it reads top to bottom, and its
parameter names follow Hugging Face's T5 closely enough that from_hf_state_dict is a list of renames
(tests/test_t5.py builds transformers' T5 from a config, loads its weights here, and gets the same outputs).

Shapes: B batch, S source length, T target length, C d_model, H heads, D d_kv (head size),
F d_ff, V vocabulary, K buckets. Leaves out: a KV cache when generating (the answers here are
short), v1.1's gated GELU, SentencePiece (the tokenizer here is characters).

Read next: cli.py.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

import minigrad
import minigrad.functional as F
from minigrad import nn
from minigrad.tensor import Tensor

PAD, EOS, UNK = 0, 1, 2  # T5's ids; PAD is also the decoder's start token
IGNORE = -100  # label id that the loss skips (padding after EOS)


@dataclass
class T5Config:
    """Hugging Face's field names, so that a transformers.T5Config reads across one to one."""

    vocab_size: int = 128  # PAD, EOS, UNK, the characters, then the sentinels at the top
    d_model: int = 64  # C
    d_kv: int = 16  # D, the head size (H D need not equal C in T5)
    d_ff: int = 256  # F, the feed-forward's hidden size
    num_heads: int = 4  # H
    num_layers: int = 2  # encoder blocks
    num_decoder_layers: int = 2  # decoder blocks
    relative_attention_num_buckets: int = 32  # K
    relative_attention_max_distance: int = 128  # distances from here on share the last bucket
    layer_norm_epsilon: float = 1e-6
    dropout_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "d_kv", "d_ff", "num_heads", "num_layers", "num_decoder_layers",
                     "relative_attention_num_buckets", "relative_attention_max_distance"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"T5Config: {name} must be a positive integer, got {value!r}")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ValueError(f"T5Config: dropout_rate must be in [0, 1), got {self.dropout_rate}")


# ---- relative positions -----------------------------------------------------------------------


def relative_position_bucket(relative_position: np.ndarray, bidirectional: bool = True, num_buckets: int = 32,
                             max_distance: int = 128) -> np.ndarray:
    """Distances key - query (any integer array) -> bucket ids in [0, num_buckets), as Mesh
    TensorFlow's and Hugging Face's T5Attention._relative_position_bucket.

    Bidirectional (the encoder): half the buckets for keys before the query, half for keys after.
    Causal (the decoder): keys after the query are masked anyway and share bucket 0. Of each half,
    the first max_exact = half/2 buckets are exact distances 0, 1, ..., max_exact - 1; the rest cover
    max_exact .. max_distance in log-spaced bins, and every distance beyond falls in the last.
    The log is taken in float32, as theirs, so that the bins' edges fall where theirs do."""
    rel = np.asarray(relative_position, dtype=np.int64)
    buckets = np.zeros(rel.shape, dtype=np.int64)
    if bidirectional:
        num_buckets //= 2
        buckets += (rel > 0) * num_buckets  # keys after the query: the upper half
        n = np.abs(rel)
    else:
        n = np.maximum(-rel, 0)  # how far back the key is; keys ahead count as 0
    max_exact = num_buckets // 2
    ratio = np.maximum(n, 1).astype(np.float32) / np.float32(max_exact)  # (n >= 1: no log(0) in the unused lanes)
    log_part = np.log(ratio) / np.float32(math.log(max_distance / max_exact)) * np.float32(num_buckets - max_exact)
    large = np.minimum(max_exact + log_part.astype(np.int64), num_buckets - 1)
    return buckets + np.where(n < max_exact, n, large)


class RelativePositionBias(nn.Module):
    """The learned bias of every (query, key) pair: a (K, H) table looked up by bucket,
    (1, H, Tq, Tk). One per stack, computed once per forward and shared by its layers."""

    def __init__(self, config: T5Config, bidirectional: bool) -> None:
        super().__init__()
        self.bidirectional = bidirectional
        self.num_buckets = config.relative_attention_num_buckets
        self.max_distance = config.relative_attention_max_distance
        self.relative_attention_bias = nn.Embedding(self.num_buckets, config.num_heads)  # (K, H), HF's name
        _normal_(self.relative_attention_bias.weight, config.d_model**-0.5)

    def forward(self, tq: int, tk: int) -> Tensor:
        rel = np.arange(tk)[None, :] - np.arange(tq)[:, None]  # (Tq, Tk) key position - query position
        ids = relative_position_bucket(rel, self.bidirectional, self.num_buckets, self.max_distance)  # (Tq, Tk)
        table = self.relative_attention_bias.weight
        values = F.embedding(Tensor(ids, device=table.device), table)  # (Tq, Tk, H)
        return values.permute(2, 0, 1).reshape(1, -1, tq, tk)  # (1, H, Tq, Tk)


# ---- the blocks -------------------------------------------------------------------------------


def _normal_(p: nn.Parameter, std: float) -> None:
    p.data[...] = minigrad.randn(*p.shape, device=p.device, dtype=p.dtype).data * std


class T5Attention(nn.Module):
    """Multi-head attention with q, k, v, o projections and no biases; the scores unscaled."""

    def __init__(self, config: T5Config) -> None:
        super().__init__()
        C, H, D = config.d_model, config.num_heads, config.d_kv
        self.num_heads, self.d_kv, self.dropout = H, D, config.dropout_rate
        self.q, self.k = nn.Linear(C, H * D, bias=False), nn.Linear(C, H * D, bias=False)
        self.v, self.o = nn.Linear(C, H * D, bias=False), nn.Linear(H * D, C, bias=False)
        _normal_(self.q.weight, (C * D) ** -0.5)  # T5's init: the 1/sqrt(D) a scaled attention would apply, in q
        _normal_(self.k.weight, C**-0.5)
        _normal_(self.v.weight, C**-0.5)
        _normal_(self.o.weight, (H * D) ** -0.5)

    def forward(self, x: Tensor, kv: Tensor, bias: Tensor | None) -> Tensor:
        """x (B, Tq, C) asks, kv (B, Tk, C) answers (x itself in self-attention); bias (1 or B, H, Tq, Tk)
        is added to the scores: positions, and -inf where a key is hidden."""
        B, Tq, _ = x.shape
        Tk, H, D = kv.shape[1], self.num_heads, self.d_kv
        q = self.q(x).reshape(B, Tq, H, D).transpose(1, 2)  # (B, H, Tq, D)
        k = self.k(kv).reshape(B, Tk, H, D).transpose(1, 2)  # (B, H, Tk, D)
        v = self.v(kv).reshape(B, Tk, H, D).transpose(1, 2)  # (B, H, Tk, D)
        drop = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=drop, scale=1.0)  # (B, H, Tq, D)
        return self.o(y.transpose(1, 2).reshape(B, Tq, H * D))  # (B, Tq, C)


class T5Block(nn.Module):
    """Pre-norm residual sublayers: self-attention, cross-attention (decoder only), feed-forward."""

    def __init__(self, config: T5Config, is_decoder: bool) -> None:
        super().__init__()
        C, eps = config.d_model, config.layer_norm_epsilon
        self.self_attn_norm, self.self_attn = nn.RMSNorm(C, eps=eps), T5Attention(config)
        if is_decoder:
            self.cross_attn_norm, self.cross_attn = nn.RMSNorm(C, eps=eps), T5Attention(config)
        self.ff_norm = nn.RMSNorm(C, eps=eps)
        self.wi, self.wo = nn.Linear(C, config.d_ff, bias=False), nn.Linear(config.d_ff, C, bias=False)
        _normal_(self.wi.weight, C**-0.5)
        _normal_(self.wo.weight, config.d_ff**-0.5)
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(self, x: Tensor, bias: Tensor | None, memory: Tensor | None = None,
                memory_bias: Tensor | None = None) -> Tensor:
        h = self.self_attn_norm(x)  # (B, T, C)
        x = x + self.dropout(self.self_attn(h, h, bias))
        if memory is not None:  # queries from the target, keys and values from the encoder's output
            x = x + self.dropout(self.cross_attn(self.cross_attn_norm(x), memory, memory_bias))
        h = F.relu(self.wi(self.ff_norm(x)))  # (B, T, F)
        return x + self.dropout(self.wo(self.dropout(h)))  # (B, T, C)


class T5Stack(nn.Module):
    """The encoder's or the decoder's blocks, their position bias and a final RMSNorm."""

    def __init__(self, config: T5Config, is_decoder: bool) -> None:
        super().__init__()
        self.is_decoder = is_decoder
        n = config.num_decoder_layers if is_decoder else config.num_layers
        self.relative_attention_bias = RelativePositionBias(config, bidirectional=not is_decoder)
        self.block = nn.ModuleList(T5Block(config, is_decoder) for _ in range(n))
        self.final_layer_norm = nn.RMSNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(self, x: Tensor, key_mask: Tensor | None, memory: Tensor | None = None,
                memory_mask: Tensor | None = None) -> Tensor:
        """x (B, T, C) embedded tokens; key_mask (B, 1, 1, T) 0 or -inf per key (padding), or None;
        memory (B, S, C) and memory_mask (B, 1, 1, S) the encoder's, for the decoder."""
        T = x.shape[1]
        bias = self.relative_attention_bias(T, T)  # (1, H, T, T) once, for every layer
        if self.is_decoder:  # query i sees keys j <= i
            bias = bias + Tensor(np.triu(np.full((T, T), -np.inf), 1), dtype=x.dtype, device=x.device)
        if key_mask is not None:
            bias = bias + key_mask  # (B, H, T, T)
        x = self.dropout(x)
        for block in self.block:
            x = block(x, bias, memory, memory_mask)
        return self.dropout(self.final_layer_norm(x))  # (B, T, C)


# ---- the model --------------------------------------------------------------------------------


class T5(nn.Module):
    def __init__(self, config: T5Config) -> None:
        super().__init__()
        self.config = config
        self.shared = nn.Embedding(config.vocab_size, config.d_model)  # (V, C) N(0, 1): in, in, and out
        self.encoder = T5Stack(config, is_decoder=False)
        self.decoder = T5Stack(config, is_decoder=True)

    def encode(self, input_ids: Any, attention_mask: Any = None) -> tuple[Tensor, Tensor | None]:
        """input_ids (B, S) -> (the encoder's output (B, S, C), the additive key mask (B, 1, 1, S) or
        None). attention_mask (B, S) is Hugging Face's: 1 (True) for a real token, 0 for padding."""
        ids = self._ids(input_ids, "input_ids")
        mask = None
        if attention_mask is not None:
            keep = np.asarray(attention_mask.numpy() if isinstance(attention_mask, Tensor) else attention_mask)
            if keep.shape != ids.shape:
                raise ValueError(f"T5: attention_mask must have the shape of input_ids {ids.shape}, got {keep.shape}")
            w = self.shared.weight
            mask = Tensor(np.where(keep.astype(bool), 0.0, -np.inf)[:, None, None, :], dtype=w.dtype, device=w.device)
        return self.encoder(self.shared(ids), mask), mask

    def decode(self, decoder_input_ids: Any, memory: Tensor, memory_mask: Tensor | None) -> Tensor:
        """decoder_input_ids (B, T), starting with PAD -> logits (B, T, V)."""
        ids = self._ids(decoder_input_ids, "decoder_input_ids")
        h = self.decoder(self.shared(ids), None, memory, memory_mask)  # (B, T, C)
        return F.linear(h * self.config.d_model**-0.5, self.shared.weight)  # (B, T, V) tied head, rescaled

    def forward(self, input_ids: Any, decoder_input_ids: Any, labels: Any = None,
                attention_mask: Any = None) -> tuple[Tensor, Tensor | None]:
        """-> (logits (B, T, V), the mean cross-entropy against labels (B, T), IGNORE skipped, or None)."""
        memory, mask = self.encode(input_ids, attention_mask)
        logits = self.decode(decoder_input_ids, memory, mask)
        if labels is None:
            return logits, None
        y = labels if isinstance(labels, Tensor) else Tensor(np.asarray(labels), device=logits.device)
        B, T, V = logits.shape
        if y.shape != (B, T):
            raise ValueError(f"T5: labels must have the shape of decoder_input_ids {(B, T)}, got {y.shape}")
        return logits, F.cross_entropy(logits.reshape(B * T, V), y.reshape(B * T), ignore_index=IGNORE)

    def _ids(self, ids: Any, name: str) -> Tensor:
        if isinstance(ids, Tensor):
            return ids
        a = np.asarray(ids)
        if a.ndim != 2 or a.dtype.kind not in "iu":
            raise ValueError(f"T5: {name} must be (B, T) integer ids, got shape {a.shape} dtype {a.dtype}")
        bad = a[(a < 0) | (a >= self.config.vocab_size)]
        if bad.size:
            raise ValueError(f"T5: {name} holds id {int(bad[0])}, outside the vocabulary "
                             f"0..{self.config.vocab_size - 1}")
        return Tensor(a.astype(np.int64), device=self.shared.weight.device)

    def generate(self, input_ids: np.ndarray, attention_mask: np.ndarray | None = None,
                 max_new_tokens: int = 32) -> np.ndarray:
        """Greedy decoding: (B, S) ids -> (B, <= max_new_tokens) ids, each row up to and with its EOS, PAD
        after. The encoder runs once; the decoder reruns on the growing prefix (no cache)."""
        was_training = self.training
        self.eval()
        with minigrad.no_grad():
            memory, mask = self.encode(input_ids, attention_mask)
            out = np.full((len(memory), 1), PAD, dtype=np.int64)  # (B, 1) the start token
            done = np.zeros(len(memory), dtype=bool)
            for _ in range(max_new_tokens):
                logits = self.decode(out, memory, mask)[:, -1, :]  # (B, V) the next token's
                nxt = np.where(done, PAD, logits.numpy().argmax(-1))  # (B,)
                out = np.concatenate([out, nxt[:, None]], axis=1)
                done |= nxt == EOS
                if done.all():
                    break
        self.train(was_training)
        return out[:, 1:]


def shift_right(labels: np.ndarray) -> np.ndarray:
    """Teacher forcing: the decoder reads PAD then the labels up to the last (IGNORE read as PAD)."""
    ids = np.where(labels == IGNORE, PAD, labels)
    return np.concatenate([np.full((len(ids), 1), PAD, dtype=ids.dtype), ids[:, :-1]], axis=1)


# ---- Hugging Face's names ---------------------------------------------------------------------

_RENAMES = [  # (Hugging Face's name, ours), as a pattern and its replacement
    (r"(\w+)\.block\.0\.layer\.0\.SelfAttention\.relative_attention_bias\.weight",
     r"\1.relative_attention_bias.relative_attention_bias.weight"),
    (r"(\w+)\.block\.(\d+)\.layer\.0\.SelfAttention\.([qkvo])\.weight", r"\1.block.\2.self_attn.\3.weight"),
    (r"(\w+)\.block\.(\d+)\.layer\.0\.layer_norm\.weight", r"\1.block.\2.self_attn_norm.weight"),
    (r"decoder\.block\.(\d+)\.layer\.1\.EncDecAttention\.([qkvo])\.weight", r"decoder.block.\1.cross_attn.\2.weight"),
    (r"decoder\.block\.(\d+)\.layer\.1\.layer_norm\.weight", r"decoder.block.\1.cross_attn_norm.weight"),
    (r"encoder\.block\.(\d+)\.layer\.1\.DenseReluDense\.(wi|wo)\.weight", r"encoder.block.\1.\2.weight"),
    (r"encoder\.block\.(\d+)\.layer\.1\.layer_norm\.weight", r"encoder.block.\1.ff_norm.weight"),
    (r"decoder\.block\.(\d+)\.layer\.2\.DenseReluDense\.(wi|wo)\.weight", r"decoder.block.\1.\2.weight"),
    (r"decoder\.block\.(\d+)\.layer\.2\.layer_norm\.weight", r"decoder.block.\1.ff_norm.weight"),
    (r"(encoder|decoder)\.final_layer_norm\.weight", r"\1.final_layer_norm.weight"),
    (r"shared\.weight", r"shared.weight"),
]
_TIED = {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"}  # copies of shared


def from_hf_state_dict(state: dict[str, Any]) -> dict[str, np.ndarray]:
    """A Hugging Face T5Model / T5ForConditionalGeneration state dict (ReLU feed-forward, tied
    embeddings) -> ours, as NumPy arrays for T5.load_state_dict. Same layouts: only names change."""
    out = {}
    for name, value in state.items():
        if name in _TIED:
            continue
        for pattern, ours in _RENAMES:
            if re.fullmatch(pattern, name):
                out[re.sub(pattern, ours, name)] = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach")
                                                              else value)
                break
        else:
            raise KeyError(f"from_hf_state_dict: no T5 parameter here is named like {name!r} "
                           "(a gated-GELU T5 v1.1 has wi_0/wi_1, which this T5 leaves out)")
    return out


# ---- text to text -----------------------------------------------------------------------------


class CharTokenizer:
    """Characters -> ids: PAD 0, EOS 1, UNK 2, then the characters, then n_sentinels sentinels at the
    top of the vocabulary (<extra_id_0> = vocab_size - 1, as T5)."""

    def __init__(self, chars: str, n_sentinels: int = 32, vocab_size: int | None = None) -> None:
        chars = "".join(sorted(set(chars)))
        self.chars, self.n_sentinels = chars, n_sentinels
        self.vocab_size = vocab_size if vocab_size is not None else 3 + len(chars) + n_sentinels
        first = self.vocab_size - n_sentinels  # the lowest sentinel id
        if first < 3 + len(chars):
            raise ValueError(f"CharTokenizer: sentinel id {first} is inside the vocabulary: "
                             f"ids 0..{3 + len(chars) - 1} "
                             f"are PAD, EOS, UNK and {len(chars)} characters (vocab_size {self.vocab_size} holds "
                             f"{self.vocab_size - 3 - len(chars)} sentinels, not {n_sentinels})")
        self.stoi = {c: i + 3 for i, c in enumerate(chars)}

    def sentinel(self, k: int) -> int:
        if not 0 <= k < self.n_sentinels:
            raise ValueError(f"CharTokenizer: sentinel {k} is outside 0..{self.n_sentinels - 1}")
        return self.vocab_size - 1 - k

    def encode(self, text: str) -> list[int]:
        return [self.stoi.get(c, UNK) for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        """Text up to the first EOS; sentinels written <extra_id_k>, unknown characters as '?'."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i >= self.vocab_size - self.n_sentinels:
                out.append(f"<extra_id_{self.vocab_size - 1 - i}>")
            elif i >= 3:
                out.append(self.chars[i - 3])
            elif i == UNK:
                out.append("?")
        return "".join(out)


def random_spans_noise_mask(length: int, noise_density: float, mean_span_length: float,
                            rng: np.random.Generator) -> np.ndarray:
    """(length,) booleans, True for the tokens to corrupt, as T5's random_spans_noise_mask:
    round(length * noise_density) noisy tokens (at least 1, at most length - 1) in
    round(noisy / mean_span_length) spans (at least 1); the spans' lengths and the gaps between
    them are random segmentations, the sequence starts with a gap and ends with a span."""
    n_noise = min(max(int(round(length * noise_density)), 1), length - 1)
    n_spans = max(int(round(n_noise / mean_span_length)), 1)
    n_keep = length - n_noise

    def segment(n_items: int) -> np.ndarray:
        """n_items split into n_spans non-empty runs at random: (n_spans,) lengths."""
        first = np.zeros(n_items, dtype=bool)  # True where a new run starts
        first[1 + rng.permutation(n_items - 1)[: n_spans - 1]] = True
        return np.bincount(np.cumsum(first), minlength=n_spans)

    lengths = np.stack([segment(n_keep), segment(n_noise)], axis=1).reshape(-1)  # keep, noise, keep, noise, ...
    return np.repeat(np.tile([False, True], n_spans), lengths)  # (length,)


def span_corrupt(tokens: Sequence[int], noise_density: float = 0.15, mean_span_length: float = 3.0, *,
                 rng: np.random.Generator, first_sentinel: int) -> tuple[np.ndarray, np.ndarray]:
    """T5's pretraining pair from a run of tokens: (encoder input, decoder target).

        tokens:  Thou art more lovely and more temperate
        input:   Thou art <X>ely and more <Y>perate
        target:  <X> more lov <Y> tem

    Each noisy span is replaced in the input by one sentinel, first_sentinel, first_sentinel - 1, ...
    in order (T5: <extra_id_0>, <extra_id_1>, ...), and the target lists each sentinel followed by the
    span it hides. No EOS is added. The sentinels must lie above every id of the tokens."""
    ids = np.asarray(tokens, dtype=np.int64)
    if ids.ndim != 1 or len(ids) < 2:
        raise ValueError(f"span_corrupt: tokens must be a 1-D run of at least 2 ids, got shape {ids.shape}")
    if not 0 < noise_density < 1:
        raise ValueError(f"span_corrupt: noise_density must be in (0, 1), got {noise_density}")
    if mean_span_length < 1:
        raise ValueError(f"span_corrupt: mean_span_length must be >= 1, got {mean_span_length}")
    noise = random_spans_noise_mask(len(ids), noise_density, mean_span_length, rng)  # (L,)
    starts = noise & ~np.concatenate([[False], noise[:-1]])  # (L,) the first token of each noisy span
    n_spans = int(starts.sum())
    last = first_sentinel - n_spans + 1  # the lowest sentinel used
    if last <= int(ids.max()):
        raise ValueError(f"span_corrupt: sentinel id {last} is inside the vocabulary: the tokens use ids up to "
                         f"{int(ids.max())} ({n_spans} spans need sentinels {first_sentinel} down to {last})")
    sentinel = first_sentinel - np.cumsum(starts) + 1  # (L,) the sentinel of the span each token is in
    source = np.where(starts, sentinel, ids)[~noise | starts]  # kept tokens, one sentinel per span
    target = np.insert(ids[noise], np.flatnonzero(starts[noise]), sentinel[starts])  # each span after its sentinel
    return source, target


def generate_text(model: T5, tokenizer: CharTokenizer, texts: Sequence[str], prefixes: Sequence[str],
                  max_new_tokens: int = 32) -> list[str]:
    """Greedy answers to texts that each start with one of the task prefixes the model was
    fine-tuned on ("Zahl: 324 →"); a text with another prefix is an error, not a guess."""
    for text in texts:
        if not any(text.startswith(p) for p in prefixes):
            head = text.split(":")[0] + ":" if ":" in text else text[:20]
            raise ValueError(f"generate_text: unknown task prefix {head!r} in {text[:40]!r}; "
                             f"this model knows {list(prefixes)}")
    rows = [tokenizer.encode(t) + [EOS] for t in texts]
    ids = np.full((len(rows), max(map(len, rows))), PAD, dtype=np.int64)
    for b, r in enumerate(rows):
        ids[b, : len(r)] = r
    out = model.generate(ids, ids != PAD, max_new_tokens)
    return [tokenizer.decode(r) for r in out]
