"""occlude: occluded copies of the test split (the partial-MNIST cuts and random patches), kept as masks over the
test rows; the robustness stage scores every predictor on each."""

import sys
from pathlib import Path

# Import the auxcut of the checkout being reproduced (DVC may run us in a temporary copy of the repo).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from auxcut.data import prepared  # noqa: E402
from auxcut.variants import occlusion  # noqa: E402
from auxcut.core import paths  # noqa: E402
from auxcut.core.io import atomic_path  # noqa: E402
from auxcut.pipeline.stage import Stage, run_stage  # noqa: E402


def main(stage: Stage) -> None:
    p, cfg = stage.params, stage.params.occlusion
    stage.log_params(seed=p.seed, occlusion=cfg)
    ds = prepared.load(paths.PREPARED)
    test = ds.indices("test")
    _, height, width = ds.images.shape[1:]
    sets = occlusion.masks(cfg.sets, len(test), height, width, cfg.patch_count, cfg.patch_size, p.seed)
    with atomic_path(paths.OCCLUDED) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, rows=test, **sets)
    examples = np.asarray(ds.images[test[:4]])
    stage.save_plot(paths.PLOTS / "occlusion" / "examples.png", occlusion.plot_examples(
        examples, {name: mask[:4] if mask.ndim == 3 else mask for name, mask in sets.items()},
        "occluded test images"), shows_data=True)
    stage.write_metrics({"test_rows": len(test), "image_size": [height, width],
                         "removed_share": {name: occlusion.removed_share(mask) for name, mask in sets.items()}})


if __name__ == "__main__":
    run_stage("occlude", main)
