"""auxcut: improve an image classifier by mining its own confusions.

The pipeline trains a base CNN, reads its validation confusion matrix as a graph, splits the
classes with a Goemans-Williamson max-cut, trains a small auxiliary CNN on that binary split and
stacks base + aux outputs under a simple head. Every step is a plain function in this package;
`stages/` holds the thin DVC stage scripts that call them.

The sub-packages are layers, lowest first; a module imports only from its own layer and the ones below
(tests/test_layers.py keeps it so):

    core      plumbing: atomic files, paths, MLflow tracking
    data      sources and the prepared data set
    nets      the CNNs, training, embeddings, inference speed
    method    confusion graph, max-cut, tree of cuts, aux objectives, stacking, fairness
    variants  the family: aux as a head, attribute heads, exits, occlusion, missing features, fine labels
    pipeline  params schema, stage runtime, the final predictor
    reports   summary, the UTKFace study and its pages
    apps      the `auxcut` command, serving, the UI, the quality gates
"""

__version__ = "0.1.0"


class AuxcutError(Exception):
    """A problem with the user's input (params, data, files), reported as one line without a traceback."""
