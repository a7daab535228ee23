"""The method itself: the base's confusion graph (confusion), its certified max-cut (maxcut), the recursive tree
of cuts (hierarchy) and how the maxcut stage cuts it (cutting), the aux and its parameter budget (auxiliary), what
the aux is trained to do (objectives), the stacked set and its heads (stacking), and the per-group comparison on test
(fairness).

May import: auxcut.core, auxcut.data, auxcut.nets.
"""
