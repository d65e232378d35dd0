"""Where the boxes of a graph picture go: a layered (Sugiyama) layout, pure Python, for viz.py.

Boxes flow in layers from the inputs (top) to the output (bottom); a group (one module call)
is laid out first on its own, then placed in its parent as one tall box. In each group:
  1. layers: longest path from the inputs; an input (a parameter) is pulled down to just above
     its first user, so it sits beside the op that reads it;
  2. an edge that spans several layers gets an invisible point in each layer it crosses, so it
     is routed between the boxes, not through them;
  3. the order within each layer: barycenter sweeps down and up, keeping the order with the
     fewest crossings;
  4. x: each box pulled to the mean x of its neighbours, keeping the order and the gaps
     (isotonic regression, "pool adjacent violators");
  5. y: each layer a band as tall as its tallest box, boxes aligned at the top. Inside a band an
     edge runs straight down, so edges cross only in the gaps between bands, where no box is.
An edge into (or out of) a group enters through a port on the group's top (bottom) border.
What it leaves out: graphviz's network-simplex ranking and spline routing; fine for a few
hundred boxes.

Read next: exercises/ (write each backward yourself); viz.py is what draws with this layout.
"""
from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

GAP_X = 16.0  # between two boxes of a layer
GAP_LINE = 8.0  # beside an edge passing through a layer
GAP_Y = 30.0  # between layers: where edges bend and cross
PAD = 10.0  # inside a group's frame, left, right and bottom
TITLE = 20.0  # a group's title band, above its contents
SWEEPS = 12  # rounds of barycenter ordering (and of x pulling)

Rect = tuple[float, float, float, float]  # x, y (top left), width, height
Point = tuple[float, float]


@dataclass
class Layout:
    """The picture's geometry: boxes and group frames by key, and edges as polylines."""

    width: float
    height: float
    boxes: dict[Hashable, Rect] = field(default_factory=dict)
    groups: dict[Hashable, Rect] = field(default_factory=dict)
    edges: list[tuple[list[Point], bool]] = field(default_factory=list)  # points, arrowhead at the end


def layout(
    sizes: dict[Hashable, tuple[float, float]],
    edges: list[tuple[Hashable, Hashable]],
    group_of: dict[Hashable, Hashable | None] | None = None,
    parent_of: dict[Hashable, Hashable | None] | None = None,
    min_width: dict[Hashable, float] | None = None,
    arrive: dict[tuple[Hashable, Hashable], float] | None = None,
    margin: float = 10.0,
) -> Layout:
    """Lay out boxes of the given (width, height) joined by directed edges (u, v). group_of puts a
    box in a group (None: the top), parent_of nests groups; the graph of groups must be acyclic
    (one group per module call is: a call's ops are made between its start and its end).
    arrive[(u, v)]: where the edge meets v's top, as an x offset from v's center (an op's inputs
    side by side, in argument order); min_width: a group's least width (its title's)."""
    group_of = {n: (group_of or {}).get(n) for n in sizes}
    parent_of = dict(parent_of or {})
    segments = _segments(edges, group_of, parent_of)
    children: dict[Hashable, list[Hashable]] = {}
    for g, p in parent_of.items():
        children.setdefault(p, []).append(g)
    members: dict[Hashable, list[Hashable]] = {}
    for n, g in group_of.items():
        members.setdefault(g, []).append(n)

    def place(g: Hashable | None) -> _Block:
        blocks = {c: place(c) for c in children.get(g, [])}
        framed = g is not None
        return _place_group(members.get(g, []), blocks, segments.get(g, set()), sizes, arrive or {},
                            (min_width or {}).get(g, 0.0), framed, margin)

    root = place(None)
    return Layout(root.w, root.h, root.boxes, root.groups, root.paths)


# ---- which part of each edge each group routes ---------------------------------------------
# An edge u -> v between groups is cut at the group borders: inside u's group it runs from u to
# an out-port ("out", u) on the bottom border, in the common parent from that group's out-port
# to the in-port of v's group, inside v's group from its in-port ("in", u) down to v.
# End keys: ("node", n), ("in", u) / ("out", u) (a port of this group), ("child_in"/"child_out", c, u).


def _ancestors(g: Hashable | None, parent_of: dict) -> list[Hashable | None]:
    chain = [g]
    while g is not None:
        g = parent_of[g]
        chain.append(g)
    return chain


def _segments(edges: list[tuple[Hashable, Hashable]], group_of: dict, parent_of: dict) -> dict[Hashable, set]:
    segs: dict[Hashable, set] = {}
    for u, v in edges:
        up, down = _ancestors(group_of[u], parent_of), _ancestors(group_of[v], parent_of)
        lca = next(g for g in up if g in down)
        end: tuple = ("node", u)
        for g in up[: up.index(lca)]:  # out of u's groups
            segs.setdefault(g, set()).add((end, ("out", u)))
            end = ("child_out", g, u)
        into = down[: down.index(lca)][::-1]  # v's groups, outermost first
        segs.setdefault(lca, set()).add((end, ("child_in", into[0], u) if into else ("node", v)))
        for i, g in enumerate(into):
            nxt = ("child_in", into[i + 1], u) if i + 1 < len(into) else ("node", v)
            segs.setdefault(g, set()).add((("in", u), nxt))
    return segs


@dataclass
class _Block:
    """A laid-out group in its own coordinates, (0, 0) at its frame's top left."""

    w: float
    h: float
    boxes: dict[Hashable, Rect]
    groups: dict[Hashable, Rect]
    paths: list[tuple[list[Point], bool]]
    inport: dict[Hashable, float]  # source node -> x where its edge comes in, on the top border
    outport: dict[Hashable, float]  # source node -> x where its edges leave, on the bottom border


def _place_group(nodes: list[Hashable], blocks: dict[Hashable, _Block], segs: set, sizes: dict, arrive: dict,
                 min_width: float, framed: bool, margin: float) -> _Block:
    # items: this group's own boxes, its child groups, its ports, later the invisible edge points
    item_of = {("node", n): ("node", n) for n in nodes}
    item_of.update({("group", c): ("group", c) for c in blocks})
    size = {("node", n): sizes[n] for n in nodes}
    size.update({("group", c): (b.w, b.h) for c, b in blocks.items()})

    def item_and_offset(end: tuple, source: Hashable) -> tuple[tuple, float]:
        """The item an edge (from `source`) ends at, and the end's x offset from the item's center."""
        if end[0] == "node":
            return end, arrive.get((source, end[1]), 0.0) if end[1] != source else 0.0
        if end[0] in ("in", "out"):
            size.setdefault(end, (0.0, 0.0))
            return end, 0.0
        b = blocks[end[1]]
        x = (b.inport if end[0] == "child_in" else b.outport)[end[2]]
        return ("group", end[1]), x - b.w / 2

    links = []  # (a, offset at a, b, offset at b, arrowhead?)
    for src, dst in sorted(segs, key=repr):  # sorted: the same picture on every run
        a, oa = item_and_offset(src, src[-1])  # every end key names the edge's source last
        b, ob = item_and_offset(dst, src[-1])
        links.append((a, oa, b, ob, dst[0] == "node"))
    items = list(size)
    layer = _layers(items, links)
    order, chains = _add_line_points(items, links, layer, size)
    order = _order(order, chains, size)
    x = _x_positions(order, chains, size)
    return _frame(order, chains, links, layer, x, size, blocks, min_width, framed, margin)


def _layers(items: list, links: list) -> dict:
    """Longest path from the top; in-ports on layer 0, out-ports on a layer of their own at the bottom,
    and every other item with no input pulled down to just above its first user."""
    preds: dict = {i: [] for i in items}
    succs: dict = {i: [] for i in items}
    for a, _, b, _, _ in links:
        if a != b:
            preds[b].append(a)
            succs[a].append(b)
    has_in = any(i[0] == "in" for i in items)
    layer: dict = {}
    for i in _topo(items, preds, succs):
        if i[0] == "in":
            layer[i] = 0
        else:
            layer[i] = max([layer[p] + 1 for p in preds[i]], default=int(has_in))
    for i in items:
        if not preds[i] and i[0] not in ("in", "out") and succs[i]:
            layer[i] = max(int(has_in), min(layer[s] for s in succs[i]) - 1)
    bottom = max([layer[i] for i in items if i[0] != "out"], default=0) + 1
    for i in items:
        if i[0] == "out":
            layer[i] = bottom
    return layer


def _topo(items: list, preds: dict, succs: dict) -> list:
    """Items in an order where each comes after its inputs (Kahn's algorithm, stable)."""
    waiting = {i: len(preds[i]) for i in items}
    ready = [i for i in items if not waiting[i]]
    out = []
    while ready:
        i = ready.pop(0)
        out.append(i)
        for s in succs[i]:
            waiting[s] -= 1
            if not waiting[s]:
                ready.append(s)
    if len(out) != len(items):
        raise ValueError("graph_layout: the groups form a cycle (an edge leaves a group and comes back)")
    return out


def _add_line_points(items: list, links: list, layer: dict, size: dict) -> tuple[list[list], list]:
    """The layers as lists, with an invisible point ("line", k, l) on every layer an edge passes;
    chains: per link, the items it runs through, with the end offsets."""
    n_layers = max(layer.values(), default=0) + 1
    order: list[list] = [[] for _ in range(n_layers)]
    for i in items:
        order[layer[i]].append(i)
    chains = []
    for k, (a, oa, b, ob, _) in enumerate(links):
        path = [a]
        for l in range(layer[a] + 1, layer[b]):
            p = ("line", k, l)
            size[p] = (0.0, 0.0)
            layer[p] = l
            order[l].append(p)
            path.append(p)
        path.append(b)
        chains.append((path, oa, ob))
    return order, chains


def _unit_edges(chains: list) -> list[tuple]:
    """(upper item, x offset there, lower item, x offset there) for every step of every chain."""
    steps = []
    for path, oa, ob in chains:
        for j in range(len(path) - 1):
            steps.append((path[j], oa if j == 0 else 0.0, path[j + 1], ob if j == len(path) - 2 else 0.0))
    return steps


def _slot(k: int, offset: float, item: tuple, size: dict) -> float:
    """An edge end's place in its layer: the item's index, plus where on the item it ends."""
    return k + offset / (size[item][0] + 1.0)


def _crossings(order: list[list], steps: list, size: dict) -> int:
    pos = {i: k for lay in order for k, i in enumerate(lay)}
    by_layer: dict[int, list] = {}
    lay_of = {i: l for l, lay in enumerate(order) for i in lay}
    for a, oa, b, ob in steps:
        by_layer.setdefault(lay_of[a], []).append((_slot(pos[a], oa, a, size), _slot(pos[b], ob, b, size)))
    total = 0
    for pairs in by_layer.values():
        for i, (a1, b1) in enumerate(pairs):
            for a2, b2 in pairs[i + 1:]:
                total += (a1 - a2) * (b1 - b2) < 0
    return total


def _order(order: list[list], chains: list, size: dict) -> list[list]:
    """Barycenter sweeps: sort each layer by the mean position of its neighbours in the layer above
    (going down) or below (going up); keep the order with the fewest crossings."""
    steps = _unit_edges(chains)
    up: dict = {}
    down: dict = {}
    for a, oa, b, ob in steps:
        up.setdefault(b, []).append((a, oa))
        down.setdefault(a, []).append((b, ob))
    best, best_crossings = [list(lay) for lay in order], _crossings(order, steps, size)
    for sweep in range(SWEEPS):
        going_down = sweep % 2 == 0
        layers = range(1, len(order)) if going_down else range(len(order) - 2, -1, -1)
        for l in layers:
            near = order[l - 1] if going_down else order[l + 1]
            pos = {i: k for k, i in enumerate(near)}
            neighbours = up if going_down else down
            keyed = []
            for k, i in enumerate(order[l]):
                ns = [_slot(pos[n], off, n, size) for n, off in neighbours.get(i, []) if n in pos]
                keyed.append((sum(ns) / len(ns) if ns else k, k, i))
            order[l] = [i for _, _, i in sorted(keyed, key=lambda t: (t[0], t[1]))]
        c = _crossings(order, steps, size)
        if c < best_crossings:
            best, best_crossings = [list(lay) for lay in order], c
    return best


def _separation(a: tuple, b: tuple, size: dict) -> float:
    gap = GAP_X if a[0] != "line" and b[0] != "line" else GAP_LINE
    return (size[a][0] + size[b][0]) / 2 + gap


def _x_positions(order: list[list], chains: list, size: dict) -> dict:
    """Centers: start packed, then pull each item to the mean of its neighbours' x (down sweeps use
    the layer above, up sweeps the one below, the last both), keeping order and gaps."""
    x: dict = {}
    for lay in order:
        at = 0.0
        for k, i in enumerate(lay):
            at += _separation(lay[k - 1], i, size) if k else size[i][0] / 2
            x[i] = at
    wants_up: dict = {}
    wants_down: dict = {}
    for a, oa, b, ob in _unit_edges(chains):  # an end at a port: align the port, not the center
        wants_up.setdefault(b, []).append((a, oa - ob))
        wants_down.setdefault(a, []).append((b, ob - oa))
    for sweep in range(2 * SWEEPS + 1):
        last = sweep == 2 * SWEEPS
        going_down = sweep % 2 == 0
        layers = range(len(order)) if going_down else range(len(order) - 1, -1, -1)
        for l in layers:
            want = []
            for i in order[l]:
                ns = (wants_up.get(i, []) if going_down or last else []) + (
                    wants_down.get(i, []) if not going_down or last else [])
                want.append(sum(x[n] + d for n, d in ns) / len(ns) if ns else x[i])
            for i, xi in zip(order[l], _pav(order[l], want, size)):
                x[i] = xi
    return x


def _pav(lay: list, want: list[float], size: dict) -> list[float]:
    """The x closest to `want` (least squares) that keeps the layer's order and gaps: with c_k the
    least offset of item k from item 0, y_k = x_k - c_k must not decrease, an isotonic regression."""
    c = [0.0]
    for k in range(1, len(lay)):
        c.append(c[-1] + _separation(lay[k - 1], lay[k], size))
    pools: list[list[float]] = []  # [mean, count]
    for w, ck in zip(want, c):
        pools.append([w - ck, 1.0])
        while len(pools) > 1 and pools[-2][0] > pools[-1][0]:
            m2, n2 = pools.pop()
            m1, n1 = pools[-1]
            pools[-1] = [(m1 * n1 + m2 * n2) / (n1 + n2), n1 + n2]
    y = [m for m, n in pools for _ in range(int(n))]
    return [yk + ck for yk, ck in zip(y, c)]


def _frame(order: list[list], chains: list, links: list, layer: dict, x: dict, size: dict,
           blocks: dict[Hashable, _Block], min_width: float, framed: bool, margin: float) -> _Block:
    """Bands from the layers, every item's place, the edges' polylines; a frame around it all."""
    left = min([x[i] - size[i][0] / 2 for lay in order for i in lay], default=0.0)
    right = max([x[i] + size[i][0] / 2 for lay in order for i in lay], default=0.0)
    side, top = (PAD, TITLE) if framed else (margin, margin)
    dx = side - left
    band_top, y = [], top
    for lay in order:
        band_top.append(y)
        y += max([size[i][1] for i in lay], default=0.0) + GAP_Y
    bottom_of_bands = y - GAP_Y
    w = max(right - left + 2 * side, min_width + 2 * PAD if framed else 0.0)
    h = bottom_of_bands + (PAD if framed else margin)
    band_bottom = [t + max([size[i][1] for i in lay], default=0.0) for t, lay in zip(band_top, order)]

    boxes: dict = {}
    groups: dict = {}
    paths: list = []
    inport: dict = {}
    outport: dict = {}
    for lay, t in zip(order, band_top):
        for i in lay:
            cx = x[i] + dx
            if i[0] == "node":
                boxes[i[1]] = (cx - size[i][0] / 2, t, *size[i])
            elif i[0] == "group":
                b = blocks[i[1]]
                ox, oy = cx - b.w / 2, t
                boxes.update({k: (bx + ox, by + oy, bw, bh) for k, (bx, by, bw, bh) in b.boxes.items()})
                groups.update({k: (gx + ox, gy + oy, gw, gh) for k, (gx, gy, gw, gh) in b.groups.items()})
                groups[i[1]] = (ox, oy, b.w, b.h)
                paths.extend(([(px + ox, py + oy) for px, py in pts], arrow) for pts, arrow in b.paths)
            elif i[0] == "in":
                inport[i[1]] = cx
            elif i[0] == "out":
                outport[i[1]] = cx

    for (path, oa, ob), (*_, arrow) in zip(chains, links):
        a, b = path[0], path[-1]
        xa, xb = x[a] + dx + oa, x[b] + dx + ob
        if a[0] == "in":
            pts = [(xa, 0.0), (xa, band_bottom[layer[a]])]
        else:
            pts = [(xa, band_top[layer[a]] + size[a][1])]
            if size[a][1] < band_bottom[layer[a]] - band_top[layer[a]]:
                pts.append((xa, band_bottom[layer[a]]))
        for p in path[1:-1]:
            pts += [(x[p] + dx, band_top[layer[p]]), (x[p] + dx, band_bottom[layer[p]])]
        pts.append((xb, band_top[layer[b]]))
        if b[0] == "out":
            pts.append((xb, h))
        paths.append((pts, arrow))
    return _Block(w, h, boxes, groups, paths, inport, outport)
