"""What the DVC pipeline's stages share: the params schema (params), the stage runtime with its one-line errors,
metrics and tracking (stage), and the final predictor that chains what the stages trained (predictor).

May import: everything below it (core, data, nets, method, variants); never reports or apps.
"""
