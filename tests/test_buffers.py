"""Module.register_buffer, as PyTorch's: moved by .to(), saved by state_dict() when persistent, loaded back."""
import numpy as np
import pytest
from helpers import need

import minigrad
from minigrad import nn


class WithBuffers(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.register_buffer("table", minigrad.tensor(np.arange(6.0).reshape(3, 2)))
        self.register_buffer("scratch", minigrad.zeros(4), persistent=False)
        self.register_buffer("empty", None)


def test_persistent_buffers_are_in_the_state_dict_and_load_back():
    outer = nn.ModuleDict(inner=WithBuffers())
    state = outer.state_dict()
    assert set(state) == {"inner.lin.weight", "inner.lin.bias", "inner.table"}  # not scratch, not None
    assert [n for n, _ in outer.named_buffers()] == ["inner.table", "inner.scratch"]
    other = nn.ModuleDict(inner=WithBuffers())
    other.inner.table = minigrad.zeros(3, 2)  # assigning a Tensor replaces the buffer
    assert "table" in other.inner._buffers and not any(p is other.inner.table for p in other.parameters())
    other.load_state_dict(state)
    np.testing.assert_array_equal(other.inner.table.numpy(), np.arange(6.0).reshape(3, 2))
    with pytest.raises(KeyError, match=r"missing keys \['inner.table'\]"):
        other.load_state_dict({k: v for k, v in state.items() if k != "inner.table"})


def test_to_moves_buffers(device):
    m = WithBuffers().to(device)
    assert m.table.device == device and m.scratch.device == device and m._buffers["table"] is m.table
    assert not m.table.requires_grad and m.empty is None


def test_register_buffer_bad_input():
    m = WithBuffers()
    with pytest.raises(KeyError, match="attribute 'lin' already exists"):
        m.register_buffer("lin", minigrad.zeros(1))
    with pytest.raises(KeyError, match="without '.'"):
        m.register_buffer("a.b", minigrad.zeros(1))
    with pytest.raises(TypeError, match="must be a Tensor"):
        m.register_buffer("x", np.zeros(1))
    with pytest.raises(TypeError, match="cannot assign ndarray to buffer 'table'"):
        m.table = np.zeros(1)


def test_matches_torch_state_dict_keys():
    torch = need("torch")

    class Theirs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 2)
            self.register_buffer("table", torch.zeros(3, 2))
            self.register_buffer("scratch", torch.zeros(4), persistent=False)
            self.register_buffer("empty", None)

    assert list(WithBuffers().state_dict()) == list(Theirs().state_dict())
    assert [n for n, _ in WithBuffers().named_buffers()] == [n for n, _ in Theirs().named_buffers()]


def test_gpt_sinusoidal_table_is_a_non_persistent_buffer(device):
    from gpt.model import GPT, GPTConfig

    model = GPT(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=4, pos_encoding="sinusoidal"))
    assert "pos_table" not in model.state_dict() and [n for n, _ in model.named_buffers()] == ["pos_table"]
    model.to(device)
    assert model.pos_table.device == device
    logits, _ = model(minigrad.tensor(np.array([[1, 2, 3]]), device=device))
    assert logits.shape == (1, 1, 5)
