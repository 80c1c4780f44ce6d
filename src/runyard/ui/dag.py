"""Laying out a pipeline's DAG for drawing: steps in layers left to right, edges as curves.

Pure: given step names and their upstream steps, it gives every box a position. Layers by
longest path from a source; within a layer, boxes are ordered by the mean position of
their upstream (then downstream) neighbours, a few sweeps each way, which keeps crossings
low on the pipelines people draw. Linear in steps and edges per sweep: a 500-step
pipeline lays out in milliseconds.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence

__all__ = ["BOX_H", "BOX_W", "Edge", "Layout", "Node", "layout"]

BOX_W = 160  # a step's box, in SVG units
BOX_H = 44
_GAP_X = 60  # between layers
_GAP_Y = 18  # between boxes of a layer
_MARGIN = 12
_SWEEPS = 4
_WAYPOINT_H = 8  # the gap a long edge takes in a layer it passes
_MOST_WAYPOINTS = 5000  # beyond this, long edges are drawn straight across (it stays fast)


@dataclasses.dataclass(frozen=True, slots=True)
class Node:
    name: str
    x: float
    y: float
    layer: int


@dataclasses.dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    path: str  # an SVG path from the source's right side to the target's left side


@dataclasses.dataclass(frozen=True, slots=True)
class Layout:
    nodes: list[Node]
    edges: list[Edge]
    width: float
    height: float


def layout(order: Sequence[str], upstream: Mapping[str, Sequence[str]]) -> Layout:
    """Positions for the steps ``order`` names (upstream steps first, as pipelines keep
    them), with ``upstream[name]`` the steps feeding each. Unknown upstream names are
    ignored. An edge that skips layers passes each skipped layer through a gap of its own
    (a waypoint ordered with the boxes), so it never runs through a box."""
    known = set(order)
    ups = {n: [u for u in upstream.get(n, ()) if u in known] for n in order}
    layer_of: dict[str, int] = {}
    for name in _topological(order, ups):
        layer_of[name] = 1 + max((layer_of[u] for u in ups[name]), default=-1)
    # Waypoints of long edges: ("source", "target", layer) keyed by a name no step has.
    preds: dict[str, list[str]] = {n: [] for n in order}
    succs: dict[str, list[str]] = {n: [] for n in order}
    waypoints: dict[tuple[str, str], list[str]] = {}
    budget = _MOST_WAYPOINTS
    for name in order:
        for up in ups[name]:
            span = layer_of[name] - layer_of[up]
            chain = [up]
            if 1 < span <= budget + 1:
                budget -= span - 1
                points = [f"\0{up}\0{name}\0{k}" for k in range(1, span)]
                for k, point in enumerate(points, start=1):
                    layer_of[point] = layer_of[up] + k
                    preds[point], succs[point] = [], []
                waypoints[(up, name)] = points
                chain += points
            chain.append(name)
            for a, b in itertools.pairwise(chain):
                succs[a].append(b)
                preds[b].append(a)
    layers: list[list[str]] = [[] for _ in range(max(layer_of.values(), default=-1) + 1)]
    for name in layer_of:  # steps in pipeline order, then waypoints as made
        layers[layer_of[name]].append(name)
    rank = {name: float(i) for layer in layers for i, name in enumerate(layer)}
    for _ in range(_SWEEPS):
        for layer in layers[1:]:
            _reorder(layer, preds, rank)
        for layer in reversed(layers[:-1]):
            _reorder(layer, succs, rank)

    def size(name: str) -> float:
        return _WAYPOINT_H if name.startswith("\0") else BOX_H

    spans = [sum(size(n) for n in layer) + max(len(layer) - 1, 0) * _GAP_Y for layer in layers]
    height = 2 * _MARGIN + max(spans, default=0)
    centre: dict[str, tuple[float, float]] = {}  # name -> (left x, middle y)
    nodes: dict[str, Node] = {}
    for index, layer in enumerate(layers):
        x = _MARGIN + index * (BOX_W + _GAP_X)
        y = (height - spans[index]) / 2
        for name in layer:
            centre[name] = (x, y + size(name) / 2)
            if not name.startswith("\0"):
                nodes[name] = Node(name, x, y, index)
            y += size(name) + _GAP_Y
    edges = []
    for name in order:
        for up in ups[name]:
            via = [centre[p] for p in waypoints.get((up, name), [])]
            path = f"M{centre[up][0] + BOX_W:.0f},{centre[up][1]:.0f}"
            x1, y1 = centre[up][0] + BOX_W, centre[up][1]
            for px, py in [*via, centre[name]]:
                bend = max((px - x1) / 2, 20)
                path += f" C{x1 + bend:.0f},{y1:.0f} {px - bend:.0f},{py:.0f} {px:.0f},{py:.0f}"
                if (px, py) != centre[name]:
                    path += f" L{px + BOX_W:.0f},{py:.0f}"  # straight through its gap
                    px += BOX_W
                x1, y1 = px, py
            edges.append(Edge(up, name, path))
    width = 2 * _MARGIN + len(layers) * BOX_W + max(len(layers) - 1, 0) * _GAP_X
    return Layout([nodes[n] for n in order], edges, width, height)


def _topological(order: Sequence[str], ups: Mapping[str, list[str]]) -> list[str]:
    """``order`` with every step after its upstream steps (a cycle's steps keep their place)."""
    done: dict[str, None] = {}
    visiting: set[str] = set()
    for start in order:
        stack = [(start, iter(ups[start]))]
        if start in done:
            continue
        visiting.add(start)
        while stack:
            name, pending = stack[-1]
            nxt = next((u for u in pending if u not in done and u not in visiting), None)
            if nxt is None:
                stack.pop()
                visiting.discard(name)
                done[name] = None
            else:
                visiting.add(nxt)
                stack.append((nxt, iter(ups[nxt])))
    return list(done)


def _reorder(layer: list[str], neighbours: Mapping[str, list[str]], rank: dict[str, float]) -> None:
    """Sort ``layer`` in place by its boxes' neighbours' mean rank (barycentre)."""

    def key(item: tuple[int, str]) -> float:
        slot, name = item
        near = neighbours[name]
        return sum(rank[n] for n in near) / len(near) if near else float(slot)

    layer[:] = [name for _, name in sorted(enumerate(layer), key=key)]
    for slot, name in enumerate(layer):
        rank[name] = float(slot)
