"""See the graph behind a tensor: one box per op, the leaves named, and after backward() each leaf's gradient.

    from minigrad.viz import draw_graph, record_modules
    with record_modules(model):                # optional: note which module made each op
        logits, loss = model(idx, targets)
    g = draw_graph(loss, params=dict(model.named_parameters()))   # as torchviz's make_dot
    loss.backward()
    g.save("graph.svg")                        # or .dot, or .png (matplotlib); g.svg() and g.dot() give the text

Each op box shows the Function's class name and its output's shape and dtype; a leaf is named from
`params` (unnamed ones are "input (shape)"); an input no gradient flows to (data, targets) is a
dashed box at each op that reads it, as the graph keeps only its shape. draw_graph copies the
graph's structure at once, because backward() frees the graph; the picture reads the leaves'
.grad when it is drawn, so draw it after backward() to see each gradient's shape and norm.

With record_modules, the ops are grouped in frames, one per module call; depth=1 draws each of
the model's children (a GPT block's ln_1, attn, ln_2, mlp) as one box instead, depth=2 their
children, and so on.

Dependencies: none for SVG and DOT. The layout (graph_layout.py) and the SVG writer are our own,
since the graphviz package needs the `dot` program, which pip cannot install; a PNG needs
matplotlib (pip install -e '.[plot]'). The DOT text renders with graphviz where it is installed.

The pictures in docs/ are made by `python -m minigrad.viz` (docs/graph_chain_rule.svg,
docs/graph_mlp.svg, docs/graph_gpt_block.svg; --out DIR to write them elsewhere).

Read next: graph_layout.py (where the boxes go), or docs/chapters/01_chain_rule.md, which uses this.
"""
from __future__ import annotations

import argparse
import contextlib
import itertools
import math
import weakref
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minigrad import graph_layout
from minigrad.autograd import Function, _topological_order
from minigrad.extras import require
from minigrad.nn.module import Module
from minigrad.tensor import Tensor

# ---- which module made which op --------------------------------------------------------------


@dataclass(eq=False)
class ModuleCall:
    """One call of a module's forward while record_modules ran: the ops made inside it form a group."""

    name: str  # dotted name in the recorded model ("attn.c_attn"); the class name for the model itself
    kind: str  # the module's class name
    parent: ModuleCall | None
    depth: int  # 0 for the recorded model's own call, 1 for its children's, ...

    @property
    def title(self) -> str:
        return self.name if self.name == self.kind else f"{self.name} · {self.kind}"


_made_in: weakref.WeakKeyDictionary[Function, ModuleCall] = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def record_modules(model: Module) -> Iterator[None]:
    """While this block runs, note for every op the module call that made it, named as in
    model.named_modules(). Like autograd.profile(), it wraps Module.__call__ and Function._forward
    only while it is on, so it costs nothing otherwise."""
    if not isinstance(model, Module):
        raise TypeError(f"record_modules: expected a Module, got {type(model).__name__}")
    names: dict[int, str] = {}
    for name, m in model.named_modules():  # a module registered twice keeps its first name, as in PyTorch
        names.setdefault(id(m), name)
    calls_of: dict[int, int] = {}  # id(module) -> calls so far, to number a module called twice
    stack: list[ModuleCall] = []
    plain_call, plain_forward = Module.__call__, Function._forward

    def call(module: Module, *args: Any, **kwargs: Any) -> Any:
        name = names.get(id(module)) or type(module).__name__
        n = calls_of[id(module)] = calls_of.get(id(module), 0) + 1
        parent = stack[-1] if stack else None
        stack.append(ModuleCall(name if n == 1 else f"{name} #{n}", type(module).__name__, parent,
                                parent.depth + 1 if parent else 0))
        try:
            return plain_call(module, *args, **kwargs)
        finally:
            stack.pop()

    def forward(fn: Function, *args: Any) -> Any:
        if stack:
            _made_in[fn] = stack[-1]
        return plain_forward(fn, *args)

    Module.__call__, Function._forward = call, forward  # type: ignore[method-assign]
    try:
        yield
    finally:
        Module.__call__, Function._forward = plain_call, plain_forward  # type: ignore[method-assign]


# ---- the graph, copied --------------------------------------------------------------------------


@dataclass(eq=False)
class Node:
    """One box: an op, a leaf, an input no gradient flows to, or a module drawn as one box."""

    kind: str  # "op", "param" (a leaf named in params), "input" (an unnamed leaf), "const", "module"
    name: str  # the op's class name, the parameter's name, "input", or the module's name
    shape: tuple[int, ...]  # the op's (or module's) output shape, the leaf's shape
    dtype: Any
    call: ModuleCall | None = None  # ops: the module call that made it; module boxes: the call around them
    leaves: list[Tensor] = field(default_factory=list)  # whose .grad the box shows
    ops: int = 0  # modules: how many ops it stands for
    call_kind: str = ""  # modules: the module's class name

    def lines(self) -> list[str]:
        """The box's text: a title, then shape and dtype, then the gradient if backward has run."""
        spec = f"{self.shape} {self.dtype}"
        if self.kind == "op":
            return [self.name, spec]
        if self.kind == "const":
            return [f"input {self.shape}", f"{self.dtype}, no grad"]
        if self.kind == "module":
            params = f", {_plural(len(self.leaves), 'param')}" if self.leaves else ""
            return [self.name, f"{self.call_kind}: {_plural(self.ops, 'op')}{params}", spec] + self._grad_lines()
        t = self.leaves[0]
        title = self.name if self.kind == "param" else f"input {self.shape}"
        second = f"{self.shape} {self.dtype}" if self.kind == "param" else str(self.dtype)
        if t.numel() == 1:  # a scalar: its value says more than its shape
            second += f", value {_num(t.data.item())}"
        return [title, second] + self._grad_lines()

    def _grad_lines(self) -> list[str]:
        grads = [t.grad for t in self.leaves if t.grad is not None]
        if not grads:
            return []
        if self.kind == "module":
            total = math.sqrt(sum(_norm(g) ** 2 for g in grads))
            return [f"grad norm {_num(total)} over its params"]
        g = grads[0]
        if g.numel() == 1:
            return [f"grad {tuple(g.shape)} = {_num(g.data.item())}"]
        return [f"grad {tuple(g.shape)} norm {_num(_norm(g))}"]


def _norm(g: Tensor) -> float:
    return float(math.sqrt(float((g.data.astype("float64") ** 2).sum())))


def _plural(k: int, word: str) -> str:
    return f"{k} {word}" + ("s" if k != 1 else "")


def _num(v: float) -> str:
    return f"{v:.4g}"


class Graph:
    """The boxes and arrows behind a tensor, copied when draw_graph ran; the gradients are read
    from the leaves each time the picture is drawn."""

    def __init__(self, nodes: list[Node], edges: list[tuple[int, int]]) -> None:
        self.nodes = nodes  # the output's node last
        self.edges = edges  # (input's node, user's node), index pairs, each once; a user's in argument order
        self.frames = self._frames()  # per node, the module call whose frame it is drawn in

    def __repr__(self) -> str:
        return f"Graph({len(self.nodes)} nodes, {len(self.edges)} edges)"

    def dot(self) -> str:
        """The graph in graphviz's DOT language: `dot -Tsvg graph.dot` draws it where graphviz is installed."""
        lines = ["digraph minigrad {", '  node [shape=box, style="rounded,filled", fontname="monospace", fontsize=10];']
        inside: dict[ModuleCall | None, list[str]] = {}
        group_of = self.frames
        for i, (n, text) in enumerate(zip(self.nodes, self.texts())):
            label = "\\n".join(_dot_escape(s) for s in text)
            fill, stroke, dashed = _STYLE[n.kind]
            extra = ', style="rounded,filled,dashed"' if dashed else ""
            if i == len(self.nodes) - 1:
                stroke = _OUTPUT_STROKE
            inside.setdefault(group_of[i], []).append(
                f'n{i} [label="{label}", fillcolor="{fill}", color="{stroke}"{extra}];')
        children: dict[ModuleCall | None, list[ModuleCall]] = {}
        for g in self._groups(group_of):
            children.setdefault(g.parent, []).append(g)

        def emit(g: ModuleCall | None, indent: str) -> None:
            for c in children.get(g, []):
                lines.append(f"{indent}subgraph cluster_{sum(s.count('subgraph') for s in lines)} {{")
                lines.append(f'{indent}  label="{_dot_escape(c.title)}"; style="dashed,rounded";')
                emit(c, indent + "  ")
                lines.append(f"{indent}}}")
            lines.extend(indent + s for s in inside.get(g, []))

        emit(None, "  ")
        lines.extend(f"  n{a} -> n{b};" for a, b in self.edges)
        lines.append("}")
        return "\n".join(lines) + "\n"

    def svg(self) -> str:
        """The picture as SVG text (no dependency)."""
        return _svg(*self._scene())

    def save(self, path: str | Path) -> Path:
        """Write the picture; the suffix picks the format: .svg, .dot or .png (needs matplotlib)."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".png":
            _png(path, *self._scene())
        elif suffix in (".svg", ".dot", ".gv"):
            path.write_text(self.svg() if suffix == ".svg" else self.dot(), encoding="utf-8")
        else:
            raise ValueError(f"Graph.save: unknown format {suffix!r} (use .svg, .dot or .png)")
        return path

    def _repr_svg_(self) -> str:  # Jupyter shows the picture
        return self.svg()

    # ---- layout ---------------------------------------------------------------------------------

    def _frames(self) -> list[ModuleCall | None]:
        """Per node, its frame: an op's is the call that made it, unless that call (and the calls
        around it) made only this op: a Linear module's one Linear op has no frame of its own, its
        box names the module instead. A leaf's is the innermost frame that holds all of its users."""
        ops_in: dict[int, int] = {}  # id(call) -> ops made in it and in the calls inside it
        for n in self.nodes:
            if n.kind in ("op", "module"):
                for c in _chain(n.call)[:-1]:
                    ops_in[id(c)] = ops_in.get(id(c), 0) + 1
        frame: list[ModuleCall | None] = []
        for n in self.nodes:
            c = n.call if n.kind in ("op", "module", "const") else None
            while c is not None and ops_in[id(c)] == 1:
                c = c.parent
            frame.append(c)
        users: dict[int, list[int]] = {}
        for a, b in self.edges:
            users.setdefault(a, []).append(b)
        for i, n in enumerate(self.nodes):
            if n.kind in ("param", "input") and i in users:  # a leaf's users are ops or modules
                chains = [_chain(frame[b]) for b in users[i]]
                frame[i] = next(g for g in chains[0] if all(g in c for c in chains[1:]))
        return frame

    def texts(self) -> list[list[str]]:
        """Each box's lines: the node's, and under an op that has no frame of its own, its module's name."""
        out = []
        for n, f in zip(self.nodes, self.frames):
            lines = n.lines()
            if n.kind == "op" and n.call is not None and f is not n.call:
                lines.append(n.call.name)
            out.append(lines)
        return out

    def _groups(self, group_of: list[ModuleCall | None]) -> list[ModuleCall]:
        """Every frame, with the frames around them, outermost first."""
        seen: dict[int, ModuleCall] = {}
        for g in group_of:
            for c in _chain(g)[:-1]:
                seen.setdefault(id(c), c)
        return sorted(seen.values(), key=lambda g: g.depth)

    def layout(self) -> tuple[graph_layout.Layout, list[list[str]]]:
        """Where every box goes (graph_layout.py), and each box's lines of text."""
        texts = self.texts()
        sizes = {i: _box_size(t) for i, t in enumerate(texts)}
        groups = self._groups(self.frames)
        inputs: dict[int, list[int]] = {}
        for a, b in self.edges:
            inputs.setdefault(b, []).append(a)
        arrive = {}  # an op's inputs meet its top side by side, in argument order
        for b, srcs in inputs.items():
            step = min(ARRIVAL_STEP, (sizes[b][0] - 2 * PAD_X) / max(len(srcs) - 1, 1))
            arrive.update({(a, b): (k - (len(srcs) - 1) / 2) * step for k, a in enumerate(srcs)})
        return graph_layout.layout(
            sizes,
            self.edges,
            group_of=dict(enumerate(self.frames)),
            parent_of={g: g.parent for g in groups},
            min_width={g: len(g.title) * CHAR_W * TITLE_SCALE for g in groups},
            arrive=arrive,
        ), texts

    def _scene(self) -> tuple[float, float, list[tuple]]:
        """The picture as a list of shapes that both the SVG and the PNG writer draw."""
        lay, texts = self.layout()
        shapes: list[tuple] = []
        for g, (x, y, w, h) in sorted(lay.groups.items(), key=lambda kv: kv[0].depth):
            fill = _GROUP_FILL[g.depth % len(_GROUP_FILL)]
            shapes.append(("rect", x, y, w, h, fill, "#9a9ab0", True, 1.0))
            # a halo in the frame's colour: an edge coming in through the title leaves it legible
            shapes.append(("text", x + 7, y + 14, g.title, FONT * TITLE_SCALE, "bold", "#55557a", fill))
        for pts, arrow in lay.edges:
            if arrow:
                (x, y) = pts[-1]
                pts = pts[:-1] + [(x, y - ARROW)]
                shapes.append(("poly", [(x, y), (x - ARROW / 2, y - ARROW), (x + ARROW / 2, y - ARROW)], "#555"))
            shapes.append(("path", pts, "#555"))
        last = len(self.nodes) - 1
        for i, n in enumerate(self.nodes):
            x, y, w, h = lay.boxes[i]
            fill, stroke, dashed = _STYLE[n.kind]
            width = 1.0
            if i == last:
                stroke, width = _OUTPUT_STROKE, 2.0
            shapes.append(("rect", x, y, w, h, fill, stroke, dashed, width))
            for k, s in enumerate(texts[i]):
                color = "#b42318" if s.startswith("grad") else "#55557a" if k == 2 and n.kind == "op" else "#222"
                shapes.append(("text", x + PAD_X, y + PAD_Y + (k + 0.8) * LINE, s, FONT,
                               "bold" if k == 0 else "normal", color, None))
        return lay.width, lay.height, shapes


def _chain(g: ModuleCall | None) -> list[ModuleCall | None]:
    """g, its parent, ..., None."""
    out: list[ModuleCall | None] = [g]
    while g is not None:
        g = g.parent
        out.append(g)
    return out


# ---- drawing ------------------------------------------------------------------------------------

FONT = 11.0  # px, monospace
CHAR_W = 0.6 * FONT  # a monospace character's width (DejaVu Sans Mono: 0.602 em)
LINE = 14.0  # px between lines of text
PAD_X, PAD_Y = 8.0, 5.0  # inside a box
TITLE_SCALE = 0.95  # a frame's title, a little smaller than box text
ARROW = 7.0
ARRIVAL_STEP = 18.0  # px between the inputs meeting an op's top
_OUTPUT_STROKE = "#c2410c"
_STYLE = {  # kind -> fill, stroke, dashed
    "op": ("#ffffff", "#555555", False),
    "param": ("#dbeafe", "#3b6fb6", False),
    "input": ("#fef9c3", "#a18a00", False),
    "const": ("#f5f5f5", "#999999", True),
    "module": ("#ede9fe", "#6d5bd0", False),
}
_GROUP_FILL = ["#f7f7fc", "#efeff8", "#e7e7f3"]


def _box_size(lines: list[str]) -> tuple[float, float]:
    return max(len(s) for s in lines) * CHAR_W + 2 * PAD_X, len(lines) * LINE + 2 * PAD_Y


def _path_d(pts: list[tuple[float, float]]) -> str:
    """Straight down where x stays, an S-curve (vertical at both ends) where it changes."""
    d = f"M{pts[0][0]:.1f},{pts[0][1]:.1f}"
    for (x0, y0), (x1, y1) in itertools.pairwise(pts):
        if abs(x1 - x0) < 0.05:
            d += f" L{x1:.1f},{y1:.1f}"
        else:
            ym = (y0 + y1) / 2
            d += f" C{x0:.1f},{ym:.1f} {x1:.1f},{ym:.1f} {x1:.1f},{y1:.1f}"
    return d


def _xml(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _dot_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def _svg(width: float, height: float, shapes: list[tuple]) -> str:
    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="DejaVu Sans Mono, Menlo, Consolas, monospace">'),
           f'<rect width="{width:.0f}" height="{height:.0f}" fill="#ffffff"/>']
    for s in shapes:
        if s[0] == "rect":
            _, x, y, w, h, fill, stroke, dashed, sw = s
            dash = ' stroke-dasharray="4 3"' if dashed else ""
            out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="5" fill="{fill}" '
                       f'stroke="{stroke}" stroke-width="{sw:g}"{dash}/>')
        elif s[0] == "text":
            _, x, y, text, size, weight, color, halo = s
            bold = ' font-weight="bold"' if weight == "bold" else ""
            at = f'x="{x:.1f}" y="{y:.1f}" font-size="{size:g}"{bold}'
            if halo:  # the same text stroked wide underneath (paint-order is not understood everywhere)
                out.append(f'<text {at} fill="{halo}" stroke="{halo}" stroke-width="4">{_xml(text)}</text>')
            out.append(f'<text {at} fill="{color}">{_xml(text)}</text>')
        elif s[0] == "path":
            out.append(f'<path d="{_path_d(s[1])}" fill="none" stroke="{s[2]}" stroke-width="1.2"/>')
        elif s[0] == "poly":
            pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in s[1])
            out.append(f'<polygon points="{pts}" fill="{s[2]}"/>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _png(path: Path, width: float, height: float, shapes: list[tuple], dpi: int = 150) -> None:
    """The same shapes through matplotlib (1 px of the SVG is 1/96 inch)."""
    plt = require("matplotlib.pyplot", "a PNG of the graph")
    from matplotlib import patheffects
    from matplotlib.patches import FancyBboxPatch, PathPatch, Polygon
    from matplotlib.path import Path as MplPath

    fig = plt.figure(figsize=(width / 96, height / 96), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")
    pt = 72 / 96  # points per px
    for s in shapes:
        if s[0] == "rect":
            _, x, y, w, h, fill, stroke, dashed, sw = s
            ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0,rounding_size=5", facecolor=fill,
                                        edgecolor=stroke, linewidth=sw * pt, linestyle="--" if dashed else "-"))
        elif s[0] == "text":
            _, x, y, text, size, weight, color, halo = s
            effects = [patheffects.withStroke(linewidth=4 * pt, foreground=halo)] if halo else []
            ax.text(x, y, text, fontsize=size * pt, family="monospace", weight=weight, color=color, va="baseline",
                    path_effects=effects)
        elif s[0] == "path":
            verts, codes = [s[1][0]], [MplPath.MOVETO]
            for (x0, y0), (x1, y1) in itertools.pairwise(s[1]):
                ym = (y0 + y1) / 2
                verts += [(x0, ym), (x1, ym), (x1, y1)]
                codes += [MplPath.CURVE4] * 3
            ax.add_patch(PathPatch(MplPath(verts, codes), facecolor="none", edgecolor=s[2], linewidth=1.2 * pt))
        elif s[0] == "poly":
            ax.add_patch(Polygon(s[1], closed=True, facecolor=s[2], edgecolor="none"))
    fig.savefig(path, dpi=dpi, facecolor="white")
    plt.close(fig)


# ---- draw_graph ---------------------------------------------------------------------------------


def draw_graph(
    output: Tensor,
    params: Mapping[str, Tensor] | Iterable[tuple[str, Tensor]] | None = None,
    depth: int | None = None,
) -> Graph:
    """The graph that made `output`, as boxes and arrows (torchviz's make_dot(output, params)).

    params: names for the leaves, e.g. dict(model.named_parameters()). depth: with record_modules,
    draw each module call nested `depth` deep (the model itself is 0) as one box; None draws every
    op, in one frame per module call. Call it before backward(), which frees the graph; draw (save,
    svg) after backward() to see the gradients."""
    if not isinstance(output, Tensor):
        raise TypeError(f"draw_graph: expected a Tensor, got {type(output).__name__}")
    if output._ctx is None:
        raise ValueError("draw_graph: this tensor has no graph: it is a leaf (made directly, or under no_grad(), "
                         "or from inputs none of which requires grad); draw the result of ops on a tensor "
                         "with requires_grad=True")
    if depth is not None and (not isinstance(depth, int) or depth < 0):
        raise ValueError(f"draw_graph: depth must be None or an int >= 0, got {depth!r}")
    names = {}
    for name, t in (params.items() if isinstance(params, Mapping) else params or ()):
        if not isinstance(t, Tensor):
            raise TypeError(f"draw_graph: params[{name!r}] is a {type(t).__name__}, not a Tensor")
        names[id(t)] = name
    nodes, edges = _copy_graph(output, names)
    if depth is not None:
        nodes, edges = _collapse(nodes, edges, depth)
    return Graph(nodes, edges)


_FREED = ("draw_graph: the graph behind this tensor was freed by backward(); call draw_graph before "
          "backward() (and draw the picture after it to see the gradients), or use backward(retain_graph=True)")


def _copy_graph(output: Tensor, names: dict[int, str]) -> tuple[list[Node], list[tuple[int, int]]]:
    """Nodes from the inputs to the output (the output's last), and (input, user) edges."""
    spec: dict[int, tuple[tuple[int, ...], Any]] = {id(output._ctx): (tuple(output.shape), output.dtype)}
    nodes: list[Node] = []  # users before the nodes their inputs came from; reversed at the end
    index: dict[int, int] = {}  # id(Function or leaf) -> its node
    links: list[tuple[int | None, int, int]] = []  # (id of the input's Function or leaf, or None and the
    # index of an input no gradient flows to; index of the user), in argument order
    for item in _topological_order(output._ctx):
        if isinstance(item, Function):
            if getattr(item, "edges", None) is None:
                raise ValueError(_FREED)
            shape, dtype = spec[id(item)]
            me = index[id(item)] = len(nodes)
            nodes.append(Node("op", type(item).__name__, shape, dtype, _made_in.get(item)))
            for e, (s, d, _) in zip(item.edges, item.input_specs):
                if e is None:  # one dashed box at this op: the graph keeps only its shape
                    links.append((None, len(nodes), me))
                    nodes.append(Node("const", "input", tuple(s), d, nodes[me].call))
                else:  # what made e: its output's shape is the shape this op was given
                    spec.setdefault(id(e), (tuple(s), d))
                    links.append((id(e), 0, me))
        else:
            index[id(item)] = len(nodes)
            kind = "param" if id(item) in names else "input"
            nodes.append(Node(kind, names.get(id(item), "input"), tuple(item.shape), item.dtype, leaves=[item]))
    last = len(nodes) - 1  # reversed: the inputs first, the output last
    pairs = [(last - (index[a] if a is not None else k), last - b) for a, k, b in links]
    return nodes[::-1], _by_user(pairs)


def _by_user(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Each (input, user) pair once, grouped by user, each user's inputs in argument order."""
    return sorted(dict.fromkeys(pairs), key=lambda e: e[1])


def _collapse(nodes: list[Node], edges: list[tuple[int, int]], depth: int) -> tuple[list[Node], list[tuple[int, int]]]:
    """Each module call `depth` deep becomes one box; the ops inside it, the inputs only they read
    and the parameters only they use go into that box."""

    def outer(call: ModuleCall | None) -> ModuleCall | None:
        while call is not None and call.depth > depth:
            call = call.parent
        return call if call is not None and call.depth == depth else None

    users: dict[int, list[int]] = {}
    for a, b in edges:
        users.setdefault(a, []).append(b)
    boxes: dict[int, Node] = {}  # id(call) -> its module box
    into: dict[int, Node] = {}  # node index -> the box it goes into
    for i, n in enumerate(nodes):
        c = outer(n.call) if n.kind in ("op", "const") else None
        if c is None:
            continue
        if id(c) not in boxes:
            boxes[id(c)] = Node("module", c.name, n.shape, n.dtype, c.parent, call_kind=c.kind)
        into[i] = boxes[id(c)]
        into[i].ops += n.kind == "op"
    for i, n in enumerate(nodes):  # a leaf all of whose users went into one box goes in too
        if n.kind in ("param", "input"):
            homes = {id(into.get(b)) for b in users.get(i, [])}
            if len(homes) == 1 and users[i][0] in into:
                into[i] = into[users[i][0]]
                into[i].leaves.extend(n.leaves)
    for i, n in enumerate(nodes):  # a box's output: the op inside it that something outside uses
        box = into.get(i)
        if box is not None and (i == len(nodes) - 1 or any(into.get(b) is not box for b in users.get(i, []))):
            box.shape, box.dtype = n.shape, n.dtype
    last_member: dict[int, tuple[int, Node]] = {}  # id(new node) -> (its last member's index, it)
    for i, n in enumerate(nodes):
        target = into.get(i, n)
        last_member[id(target)] = (i, target)
    # ordered by their last members, a box comes after all of its inputs: the order stays topological
    new_nodes = [n for _, n in sorted(last_member.values(), key=lambda t: t[0])]
    new_index = {id(n): k for k, n in enumerate(new_nodes)}
    index = [new_index[id(into.get(i, n))] for i, n in enumerate(nodes)]
    return new_nodes, _by_user([(index[a], index[b]) for a, b in edges if index[a] != index[b]])


# ---- the pictures in docs/ ----------------------------------------------------------------------


def chain_rule_graph() -> Graph:
    """Chapter 1's three scalars: L = (w x + b)^2 at w = -3, x = 2, b = 1, after backward."""
    from minigrad import tensor

    w, x, b = (tensor(v, dtype="float64", requires_grad=True) for v in (-3.0, 2.0, 1.0))
    loss = (w * x + b) ** 2
    g = draw_graph(loss, params={"w": w, "x": x, "b": b})
    loss.backward()
    return g


def mlp_graph() -> Graph:
    """A two-layer MLP (2 -> 8 -> 3) and its cross-entropy on a batch of 4, after backward."""
    import minigrad
    import minigrad.functional as F
    from minigrad import nn

    minigrad.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 3))
    x, y = minigrad.randn(4, 2), minigrad.tensor([0, 2, 1, 2])  # (N, 2) points, (N,) classes
    loss = F.cross_entropy(model(x), y)
    g = draw_graph(loss, params=dict(model.named_parameters()))
    loss.backward()
    return g


def gpt_block_graph(depth: int | None = None) -> Graph:
    """One block of gpt.model's GPT (C = 32, 4 heads, B = 2, T = 8), its ops grouped by module, after
    backward with a random output gradient."""
    import minigrad
    from gpt.model import Block, GPTConfig  # the docs' example, not a dependency of minigrad

    minigrad.manual_seed(0)
    block = Block(GPTConfig(n_embd=32, n_head=4, block_size=8))
    x = minigrad.randn(2, 8, 32, requires_grad=True)  # (B, T, C)
    with record_modules(block):
        y = block(x)  # (B, T, C)
    g = draw_graph(y, params=dict(block.named_parameters()), depth=depth)
    y.backward(minigrad.randn(*y.shape))
    return g


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m minigrad.viz", description="Draw the graph pictures in docs/.")
    parser.add_argument("--out", default="docs", help="folder to write them to (default: docs)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, make in (("graph_chain_rule", chain_rule_graph), ("graph_mlp", mlp_graph),
                       ("graph_gpt_block", gpt_block_graph)):
        path = make().save(out / f"{name}.svg")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
