"""The method's family, each selected by params on the same pipeline: the aux as a head (joint, trained by
joint_training), attribute heads (attributes), early exits (exits), occlusion and missing-feature heads (occlusion,
missing, robustness), fine labels discovered and learned from (discovery, fine_training), and the checks of their
params against the data (checks).

May import: auxcut.core, auxcut.data, auxcut.nets, auxcut.method.
"""
