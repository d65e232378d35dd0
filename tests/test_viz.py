"""minigrad.viz: the boxes and arrows of a known graph, names and gradients in the picture, a layout
with no overlapping boxes and no edge through a box, ops grouped under the module that made them."""
from __future__ import annotations

import itertools
import re
import sys

import numpy as np
import pytest
from helpers import need

import minigrad
import minigrad.functional as F
from minigrad import nn
from minigrad.autograd import Function
from minigrad.extras import MissingExtra
from minigrad.viz import draw_graph, main, record_modules


def scalars():
    """Chapter 1's L = (w x + b)^2 at w = -3, x = 2, b = 1 (float64)."""
    w, x, b = (minigrad.tensor(v, dtype="float64", requires_grad=True) for v in (-3.0, 2.0, 1.0))
    return w, x, b, (w * x + b) ** 2


def mlp():
    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 3))
    x, y = minigrad.randn(4, 2), minigrad.tensor([0, 2, 1, 2])  # (N, 2), (N,)
    return model, F.cross_entropy(model(x), y)


def gpt_block():
    from gpt.model import Block, GPTConfig

    block = Block(GPTConfig(n_embd=16, n_head=2, block_size=4))
    x = minigrad.randn(2, 4, 16, requires_grad=True)  # (B, T, C)
    with record_modules(block):
        y = block(x)
    return block, y


def edges_by_name(g):
    return sorted((g.nodes[a].name, g.nodes[b].name) for a, b in g.edges)


# ---- a known graph ------------------------------------------------------------------------------


def test_scalar_graph_has_exactly_its_nodes_and_edges():
    w, x, b, loss = scalars()
    g = draw_graph(loss, params={"w": w, "x": x, "b": b})
    assert sorted((n.kind, n.name) for n in g.nodes) == sorted(
        [("param", "w"), ("param", "x"), ("param", "b"), ("op", "Mul"), ("op", "Add"), ("op", "Pow")])
    assert edges_by_name(g) == sorted([("w", "Mul"), ("x", "Mul"), ("Mul", "Add"), ("b", "Add"), ("Add", "Pow")])
    assert g.nodes[-1].name == "Pow"  # the output's box last

    dot = g.dot()
    assert len(re.findall(r"^\s*n\d+ \[label=", dot, re.MULTILINE)) == 6
    assert len(re.findall(r"^\s*n\d+ -> n\d+;$", dot, re.MULTILINE)) == 5
    assert dot.count("{") == dot.count("}")
    svg = g.svg()
    assert svg.count("<rect") == 1 + 6  # the background, then one box per node
    assert svg.count("<path") == svg.count("<polygon") == 5  # one line and one arrowhead per edge
    for text in (">w<", ">Mul<", ">() float64<", ">() float64, value -3<"):
        assert text in svg
    assert "grad" not in svg  # no backward yet


def test_mul_of_a_tensor_by_itself_is_one_edge():
    x = minigrad.tensor([1.0, 2.0], requires_grad=True)
    g = draw_graph(x * x)
    assert [(n.kind, n.name) for n in g.nodes] == [("input", "input"), ("op", "Mul")]
    assert g.edges == [(0, 1)]
    assert "input (2,)" in g.svg()  # an unnamed leaf is "input (shape)"


def test_leaves_named_from_named_parameters_and_inputs_without_grad_dashed():
    model, loss = mlp()
    g = draw_graph(loss, params=model.named_parameters())  # pairs work as well as a dict
    names = sorted(n.name for n in g.nodes if n.kind == "param")
    assert names == ["0.bias", "0.weight", "2.bias", "2.weight"]
    consts = [n for n in g.nodes if n.kind == "const"]
    assert [(n.shape, str(n.dtype)) for n in consts] == [((4, 2), "float32")]  # x: no grad flows to it
    assert [n.name for n in g.nodes if n.kind == "op"] == ["Linear", "Tanh", "Linear", "CrossEntropy"]
    first = next(i for i, n in enumerate(g.nodes) if n.name == "Linear")
    into_first = [g.nodes[a].name for a, b in g.edges if b == first]
    assert into_first == ["input", "0.weight", "0.bias"]  # argument order: x, weight, bias
    assert 'stroke-dasharray' in g.svg()


def test_grads_in_the_picture_after_backward_are_the_leaves_grads():
    model, loss = mlp()
    g = draw_graph(loss, params=dict(model.named_parameters()))
    assert ">grad " not in g.svg()
    loss.backward()  # frees the graph; the picture was copied and reads the grads now
    svg = g.svg()
    shown = {n.name: t[-1] for n, t in zip(g.nodes, g.texts()) if n.kind == "param"}
    for name, p in model.named_parameters():
        shape, norm = re.fullmatch(r"grad (\(.*\)) norm (\S+)", shown[name]).groups()
        assert shape == str(p.grad.shape)
        assert float(norm) == pytest.approx(np.linalg.norm(p.grad.numpy()), rel=1e-3)
        assert f">{shown[name]}</text>" in svg


def test_a_scalar_leaf_shows_its_value_and_grad():
    w, x, b, loss = scalars()
    g = draw_graph(loss, params={"w": w, "x": x, "b": b})
    loss.backward()  # L = (wx + b)^2 = 25: dL/dw = 2(wx + b) x = -20, dL/dx = 30, dL/db = -10
    texts = {n.name: " | ".join(t) for n, t in zip(g.nodes, g.texts())}
    assert texts["w"] == "w | () float64, value -3 | grad () = -20"
    assert texts["x"] == "x | () float64, value 2 | grad () = 30"
    assert texts["b"] == "b | () float64, value 1 | grad () = -10"


def test_draws_on_every_device(device):
    lin = nn.Linear(3, 2).to(device)
    w = minigrad.tensor(2.0, device=device, requires_grad=True)
    loss = (lin(minigrad.randn(4, 3, device=device)) * w).sum()
    g = draw_graph(loss, params={**dict(lin.named_parameters()), "w": w})
    loss.backward()
    texts = {n.name: t for n, t in zip(g.nodes, g.texts())}
    assert texts["w"][-1] == f"grad () = {w.grad.item():.4g}"
    assert texts["weight"][-1] == f"grad (2, 3) norm {np.linalg.norm(lin.weight.grad.numpy()):.4g}"


# ---- the layout ---------------------------------------------------------------------------------


def overlap(r, s, slack=0.5):
    return r[0] + slack < s[0] + s[2] and s[0] + slack < r[0] + r[2] and r[1] + slack < s[1] + s[3] and \
        s[1] + slack < r[1] + r[3]


def inside(r, frame):
    return frame[0] <= r[0] and frame[1] <= r[1] and r[0] + r[2] <= frame[0] + frame[2] and \
        r[1] + r[3] <= frame[1] + frame[3]


def check_geometry(g):
    lay, _ = g.layout()
    boxes = list(lay.boxes.values())
    assert len(boxes) == len(g.nodes)
    for i, r in enumerate(boxes):
        assert 0 <= r[0] and 0 <= r[1] and r[0] + r[2] <= lay.width and r[1] + r[3] <= lay.height
        for s in boxes[i + 1:]:
            assert not overlap(r, s), (r, s)
    for k, frame in lay.groups.items():  # each box in its frame and its frame's frames, no other
        for i, r in lay.boxes.items():
            chain = [c for c in [g.frames[i]] if c is not None]
            while chain and chain[-1].parent is not None:
                chain.append(chain[-1].parent)
            assert inside(r, frame) if k in chain else not overlap(r, frame), (g.nodes[i].name, k.title)
    for pts, _ in lay.edges:  # a straight part or a curve's bounding box never enters a box
        for (x0, y0), (x1, y1) in itertools.pairwise(pts):
            seg = (min(x0, x1), min(y0, y1), abs(x1 - x0), abs(y1 - y0))
            for r in boxes:
                assert not overlap((seg[0] - 0.1, seg[1], seg[2] + 0.2, seg[3]), r, slack=1.0), (seg, r)
    return lay


def test_no_boxes_overlap_and_no_edge_crosses_a_box():
    model, loss = mlp()
    check_geometry(draw_graph(loss, params=dict(model.named_parameters())))
    block, y = gpt_block()
    lay = check_geometry(draw_graph(y, params=dict(block.named_parameters())))
    assert len(lay.groups) == 3  # Block, attn, mlp: a module that made one op is named in its box instead
    check_geometry(draw_graph(y, params=dict(block.named_parameters()), depth=1))


def test_a_whole_gpt_lays_out_cleanly_at_every_depth():
    from gpt.model import GPT, GPTConfig

    model = GPT(GPTConfig(vocab_size=11, block_size=4, n_layer=2, n_head=2, n_embd=8))
    with record_modules(model):
        _, loss = model(minigrad.randint(0, 11, (2, 4)), minigrad.randint(0, 11, (2, 4)))
    for depth in (None, 0, 1, 2):
        g = draw_graph(loss, params=dict(model.named_parameters()), depth=depth)
        check_geometry(g)
    assert [n.name for n in draw_graph(loss, depth=0).nodes] == ["GPT"]


# ---- grouping by module -------------------------------------------------------------------------


def test_each_op_of_a_gpt_block_is_under_the_module_that_made_it():
    block, y = gpt_block()
    g = draw_graph(y, params=dict(block.named_parameters()))
    made_by = [(n.name, n.call.name) for n in g.nodes if n.kind == "op"]
    assert sorted(made_by) == sorted(
        [("LayerNorm", "ln_1"), ("Linear", "attn.c_attn")] + [("GetItem", "attn"), ("Reshape", "attn"),
                                                              ("Permute", "attn")] * 3
        + [("ScaledDotProductAttention", "attn"), ("Permute", "attn"), ("Reshape", "attn"),
           ("Linear", "attn.c_proj"), ("Add", "Block"), ("LayerNorm", "ln_2"), ("Linear", "mlp.c_fc"),
           ("GELU", "mlp.gelu"), ("Linear", "mlp.c_proj"), ("Add", "Block")])
    assert all(n.call.depth == n.call.name.count(".") + (n.call.name != "Block") for n in g.nodes if n.kind == "op")
    frames = {g.nodes[i].name: f.title for i, f in enumerate(g.frames) if g.nodes[i].kind == "param"}
    assert frames["attn.c_attn.weight"] == "attn · CausalSelfAttention"  # a leaf sits with its user
    assert frames["ln_1.weight"] == "Block"
    dot = g.dot()
    assert dot.count("subgraph cluster_") == 3 and dot.count("{") == dot.count("}")


def test_depth_collapses_each_module_into_one_box():
    block, y = gpt_block()
    g = draw_graph(y, params=dict(block.named_parameters()), depth=1)
    assert sorted((n.kind, n.name) for n in g.nodes) == [
        ("input", "input"), ("module", "attn"), ("module", "ln_1"), ("module", "ln_2"), ("module", "mlp"),
        ("op", "Add"), ("op", "Add")]
    assert all(a < b for a, b in g.edges) and g.nodes[-1].name == "Add"  # inputs first, the output last
    assert edges_by_name(g) == sorted([("input", "ln_1"), ("ln_1", "attn"), ("input", "Add"), ("attn", "Add"),
                                       ("Add", "ln_2"), ("ln_2", "mlp"), ("Add", "Add"), ("mlp", "Add")])
    attn = next(n for n in g.nodes if n.name == "attn")
    assert (attn.ops, attn.shape, len(attn.leaves)) == (14, (2, 4, 16), 4)
    y.backward(minigrad.randn(*y.shape))
    expected = np.sqrt(sum(np.sum(p.grad.numpy().astype(np.float64) ** 2) for p in block.attn.parameters()))
    line = next(s for s in g.texts()[g.nodes.index(attn)] if s.startswith("grad"))
    assert float(line.split()[2]) == pytest.approx(expected, rel=1e-3)


def test_record_modules_puts_module_call_and_function_forward_back():
    block = nn.Linear(2, 2)
    call, forward = nn.Module.__call__, Function._forward
    with pytest.raises(ValueError), record_modules(block):
        assert nn.Module.__call__ is not call
        block(minigrad.randn(3, 5))  # a shape error inside
    assert (nn.Module.__call__, Function._forward) == (call, forward)


def test_a_module_called_twice_gets_two_frames():
    lin = nn.Linear(3, 3)
    model = nn.Sequential(lin, nn.Tanh(), lin)
    with record_modules(model):
        y = model(minigrad.randn(2, 3, requires_grad=True))
    g = draw_graph(y, params=dict(model.named_parameters()))
    assert sorted(n.call.name for n in g.nodes if n.name == "Linear") == ["0", "0 #2"]


# ---- files and errors ---------------------------------------------------------------------------


def test_save_picks_the_format_by_suffix(tmp_path):
    model, loss = mlp()
    g = draw_graph(loss, params=dict(model.named_parameters()))
    assert g.save(tmp_path / "g.svg").read_text().startswith("<svg ")
    assert g.save(tmp_path / "g.dot").read_text().startswith("digraph ")
    with pytest.raises(ValueError, match="unknown format '.jpg'"):
        g.save(tmp_path / "g.jpg")


def test_png_through_matplotlib(tmp_path):
    need("matplotlib")
    _, loss = mlp()
    path = draw_graph(loss).save(tmp_path / "g.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_png_without_matplotlib_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # as if it were not installed
    _, loss = mlp()
    with pytest.raises(MissingExtra, match=r"pip install -e '\.\[plot\]'"):
        draw_graph(loss).save(tmp_path / "g.png")


def test_bad_input_gives_a_clear_error():
    with pytest.raises(TypeError, match="expected a Tensor, got ndarray"):
        draw_graph(np.ones(3))
    with pytest.raises(ValueError, match="has no graph"):
        draw_graph(minigrad.ones(3, requires_grad=True))
    with pytest.raises(ValueError, match="has no graph"):
        draw_graph(minigrad.ones(3) * 2)  # nothing required grad
    _, loss = mlp()
    with pytest.raises(TypeError, match=r"params\['w'\] is a list"):
        draw_graph(loss, params={"w": [1.0]})
    with pytest.raises(ValueError, match="depth"):
        draw_graph(loss, depth=-1)
    with pytest.raises(TypeError, match="expected a Module"), record_modules(loss):
        pass
    loss.backward()
    with pytest.raises(ValueError, match="freed by backward"):
        draw_graph(loss)


def test_the_docs_command_writes_the_pictures(tmp_path, capsys):
    main(["--out", str(tmp_path)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graph_chain_rule.svg", "graph_gpt_block.svg",
                                                          "graph_mlp.svg"]
    assert "grad (32, 128) norm" in (tmp_path / "graph_gpt_block.svg").read_text()
