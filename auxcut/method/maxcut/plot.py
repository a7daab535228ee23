"""The cut drawn on its graph."""

from __future__ import annotations

import numpy as np


def plot_cut(weights: np.ndarray, sides: np.ndarray, names: list[str], title: str):
    """Both sides coloured and grouped on a circle; cut edges solid, uncut ones dotted; width ~ weight."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import networkx as nx

    graph = nx.from_numpy_array(weights)
    pos = nx.circular_layout(sorted(graph.nodes, key=lambda i: (sides[i], i)))
    fig, ax = plt.subplots(figsize=(7, 7))
    top = max(float(weights.max()), 1e-9)
    cut_edges = [(i, j) for i, j in graph.edges if sides[i] != sides[j]]
    kept_edges = [(i, j) for i, j in graph.edges if sides[i] == sides[j]]
    for edges, style in ((kept_edges, {"edge_color": "0.75", "style": "dotted"}), (cut_edges, {"edge_color": "tab:red"})):
        nx.draw_networkx_edges(graph, pos, edgelist=edges, ax=ax,
                               width=[0.5 + 4 * weights[i, j] / top for i, j in edges], **style)
    colors = ["tab:blue" if s == 0 else "tab:orange" for s in sides]
    nx.draw_networkx_nodes(graph, pos, node_color=colors, node_size=300, ax=ax)
    nx.draw_networkx_labels(graph, pos, labels={i: names[i] for i in graph.nodes}, font_size=7, ax=ax)
    ax.set_title(title)
    ax.axis("off")
    return fig
