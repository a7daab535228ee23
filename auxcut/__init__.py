"""auxcut: improve an image classifier by mining its own confusions.

The pipeline trains a base CNN, reads its validation confusion matrix as a graph, splits the
classes with a Goemans-Williamson max-cut, trains a small auxiliary CNN on that binary split and
stacks base + aux outputs under a simple head. Every step is a plain function in this package;
`stages/` holds the thin DVC stage scripts that call them.
"""

__version__ = "0.1.0"


class AuxcutError(Exception):
    """A problem with the user's input (params, data, files), reported as one line without a traceback."""
