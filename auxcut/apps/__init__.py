"""What users run: the `auxcut` command (cli), the served model (serve), the MLflow UI (ui) and the quality gates
(validate).

May import: anything in auxcut; nothing imports it.
"""
