"""Layered left-to-right layout for a process graph without stored positions.

Each node's layer is its longest distance from a source; an edge that skips layers holds a
place (a lane) in each layer it crosses; nodes and lanes inside a layer are ordered by the
barycentre of their neighbours in the previous layer (a few sweeps), then laid out on a
grid. Pure function of the graph, so the same YAML always gets the same picture.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from itertools import pairwise

import networkx as nx

__all__ = ["COLUMN", "ROW", "layered_layout"]

COLUMN = 240  # horizontal distance between layers
ROW = 120  # vertical distance between nodes of one layer


def layered_layout(nodes: Iterable[str], edges: Iterable[tuple[str, str]],
                   origin: tuple[int, int] = (40, 40)) -> dict[str, tuple[int, int]]:
    """Top-left position of every node; edges that close a cycle are ignored."""
    order = list(dict.fromkeys(nodes))
    g = nx.DiGraph()
    g.add_nodes_from(order)
    rank = {n: i for i, n in enumerate(order)}
    g.add_edges_from((u, v) for u, v in edges if u in rank and v in rank and u != v)
    if not nx.is_directed_acyclic_graph(g):
        g = _acyclic(g, rank)
    layers = _layers(g, rank)
    g = _with_lanes(g, layers)
    _order_by_barycentre(g, layers)
    tallest = max((len(layer) for layer in layers), default=0)
    out: dict[str, tuple[int, int]] = {}
    for x, layer in enumerate(layers):
        top = (tallest - len(layer)) * ROW // 2
        for y, node in enumerate(layer):
            if node in rank:  # not a lane
                out[node] = (origin[0] + x * COLUMN, origin[1] + top + y * ROW)
    return out


def _with_lanes(g: nx.DiGraph, layers: list[list[str]]) -> nx.DiGraph:
    """An edge that skips layers gets a placeholder (a lane) in each layer it crosses, so
    the ordering keeps a row free for it: without one, a gateway's route to a later step
    ran straight behind the step in between and hid its condition label."""
    level = {n: i for i, layer in enumerate(layers) for n in layer}
    out = nx.DiGraph()
    out.add_nodes_from(g)
    for u, v in g.edges:
        chain = [u]
        for i in range(level[u] + 1, level[v]):
            lane = f"\0{u}\0{v}\0{i}"  # \0 never occurs in a step id
            layers[i].append(lane)
            chain.append(lane)
        chain.append(v)
        out.add_edges_from(pairwise(chain))
    return out


def _acyclic(g: nx.DiGraph, rank: dict[str, int]) -> nx.DiGraph:
    """Drop back edges found by a DFS in document order, keeping the rest of the picture."""
    dag = nx.DiGraph()
    dag.add_nodes_from(g)
    state: dict[Hashable, int] = {}
    for root in sorted(g, key=rank.__getitem__):
        if root in state:
            continue
        stack = [(root, iter(sorted(g.successors(root), key=rank.__getitem__)))]
        state[root] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) != 1:  # not on the current path: a forward or cross edge
                dag.add_edge(node, child)
                if child not in state:
                    state[child] = 1
                    stack.append((child, iter(sorted(g.successors(child),
                                                     key=rank.__getitem__))))
    return dag


def _layers(g: nx.DiGraph, rank: dict[str, int]) -> list[list[str]]:
    level: dict[str, int] = {}
    for node in nx.topological_sort(g):
        level[node] = max((level[p] + 1 for p in g.predecessors(node)), default=0)
    layers: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for node in sorted(level, key=rank.__getitem__):
        layers[level[node]].append(node)
    return layers


def _order_by_barycentre(g: nx.DiGraph, layers: list[list[str]], sweeps: int = 4) -> None:
    for sweep in range(sweeps):
        down = sweep % 2 == 0
        indexes = range(1, len(layers)) if down else range(len(layers) - 2, -1, -1)
        for i in indexes:
            ref = {n: j for j, n in enumerate(layers[i - 1 if down else i + 1])}
            neighbours = g.predecessors if down else g.successors
            current = {n: j for j, n in enumerate(layers[i])}

            def key(n: str, ref: dict[str, int] = ref, current: dict[str, int] = current,
                    neighbours: object = neighbours) -> float:
                found = [ref[m] for m in neighbours(n) if m in ref]  # type: ignore[operator]
                return sum(found) / len(found) if found else current[n]

            layers[i].sort(key=key)
