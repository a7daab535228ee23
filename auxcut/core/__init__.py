"""Plumbing with no science in it: atomic file output (io), where the pipeline's files live (paths), and MLflow
tracking (tracking).

May import: `auxcut` (AuxcutError) only. Everything else may import it.
"""
