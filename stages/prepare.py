"""prepare: load the chosen data set into compact uint8 arrays and split it train / val / test."""

import sys
from pathlib import Path

# Import the auxcut of the checkout being reproduced (DVC may run us in a temporary copy of the repo).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from auxcut.data import prepared, sources  # noqa: E402
from auxcut.core import paths  # noqa: E402
from auxcut.pipeline.stage import Stage, run_stage  # noqa: E402


def main(stage: Stage) -> None:
    p = stage.params
    stage.log_params(seed=p.seed, data=p.data)
    dataset = sources.prepare(p.data.source, stage.data_path(p.data.path), p.data.classes, stage.data_path(p.data.groups_csv),
                           p.data.image_size, p.data.split.model_dump(), p.seed, p.data.max_per_class,
                           p.data.coarse)
    prepared.save(dataset, paths.PREPARED)
    stage.write_metrics(prepared.summary(dataset))


if __name__ == "__main__":
    run_stage("prepare", main)
