"""What is read off the pipeline's outputs: the short summary after a run (summary), the UTKFace study runner
(study) and the pages it writes (pages, and the variants' pages heads, occlusion, discovery).

May import: everything below it (core .. pipeline); never apps.
"""
