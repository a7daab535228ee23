"""The cut drawn on its graph, and any grouping of its nodes drawn the same way (the early exits' coarse groups)."""

from __future__ import annotations

import numpy as np


def draw_groups(ax, weights: np.ndarray, group_of: np.ndarray, names: list[str], title: str) -> None:
    """Each group in its own colour, together on a circle; edges between groups solid, inside a group dotted;
    width ~ weight. A cut is the grouping by its two sides."""
    import matplotlib.pyplot as plt
    import networkx as nx

    graph = nx.from_numpy_array(weights)
    pos = nx.circular_layout(sorted(graph.nodes, key=lambda i: (group_of[i], i)))
    top = max(float(weights.max()), 1e-9)
    between = [(i, j) for i, j in graph.edges if group_of[i] != group_of[j]]
    inside = [(i, j) for i, j in graph.edges if group_of[i] == group_of[j]]
    for edges, style in ((inside, {"edge_color": "0.75", "style": "dotted"}), (between, {"edge_color": "tab:red"})):
        nx.draw_networkx_edges(graph, pos, edgelist=edges, ax=ax,
                               width=[0.5 + 4 * weights[i, j] / top for i, j in edges], **style)
    # the colour cycle's 10 colours (a cut's sides are its first two); tab20 past them, so no two groups share one
    colors = [f"C{g}" for g in group_of] if group_of.max() < 10 else [plt.cm.tab20(g % 20) for g in group_of]
    nx.draw_networkx_nodes(graph, pos, node_color=colors, node_size=300, ax=ax)
    nx.draw_networkx_labels(graph, pos, labels={i: names[i] for i in graph.nodes}, font_size=7, ax=ax)
    ax.set_title(title)
    ax.axis("off")


def plot_cut(weights: np.ndarray, sides: np.ndarray, names: list[str], title: str):
    """Both sides coloured and grouped on a circle; cut edges solid, uncut ones dotted; width ~ weight."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 7))
    draw_groups(ax, weights, sides, names, title)
    return fig
