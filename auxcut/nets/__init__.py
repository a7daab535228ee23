"""The neural nets and how they learn: the CNN family (models), every arch by name with weights from disk (backbones),
seeded early-stopped training on CPU, CUDA or several processes (training, distributed), what a net sees (embedding)
and how fast it answers (inference).

May import: auxcut.core.
"""
