"""The servable predictor: registered by the pipeline, equal to the pipeline's stacked head, served over HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings

import numpy as np
import pytest

from auxcut import AuxcutError
from auxcut.data import prepared
from auxcut.pipeline.predictor import SERVING_INPUT
from conftest import predictor_files


def registered(env: dict[str, str]):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    versions = client.search_model_versions("name = 'auxcut-digits'")
    return client, max(versions, key=lambda v: int(v.version))


def test_registered_model_reproduces_the_stacked_head(pipeline, monkeypatch):
    """The model the fixture's tracked run registered gives that run's stacked probabilities (later tests re-run
    stages untracked, so the registry's latest version is that run's)."""
    import mlflow.pyfunc

    repo, env, _ = pipeline
    monkeypatch.setenv("MLFLOW_TRACKING_URI", env["MLFLOW_TRACKING_URI"])
    client, latest = registered(env)
    run = client.get_run(latest.run_id)
    assert run.data.tags["auxcut.stage"] == "fit_head"
    model = mlflow.pyfunc.load_model("models:/auxcut-digits/latest")
    assert model.metadata.get_input_schema() == SERVING_INPUT  # the request's values reach Predictor.check uncast
    ds = prepared.load(repo / "data" / "prepared")
    rows = ds.indices("test")[:50]
    out = model.predict(np.asarray(ds.images[rows]))
    expected = np.load(repo.parent / "first-predictions" / "head_stacked.npy")[rows]
    np.testing.assert_allclose(out[ds.classes].to_numpy(dtype=float), expected, atol=1e-6)
    assert list(out["class"]) == [ds.classes[k] for k in expected.argmax(1)]
    np.testing.assert_allclose(out["probability"], expected.max(1), atol=1e-6)


def test_predictor_rejects_bad_images_with_what_it_expected(pipeline):
    from auxcut.core import paths
    from auxcut.pipeline.predictor import Predictor

    repo, _, _ = pipeline
    ds = prepared.load(repo / "data" / "prepared")
    predictor = Predictor.from_files(repo / paths.BASE_MODEL, repo / paths.AUX_MODEL, repo / paths.STACKED_HEAD, ds.classes)
    one = np.asarray(ds.images[0])
    assert len(predictor.predict(one)) == 1  # a single image is a batch of one
    for bad, why in ((np.zeros((2, 3, 8, 8), np.uint8), "got shape"), (one.astype(float) + 0.5, "whole numbers"),
                     (np.full((1, 1, 8, 8), 300), "outside 0..255"), (np.array([["a"] * 8] * 8), "shape"),
                     (np.zeros((0, 1, 8, 8), np.uint8), "1 to"), (one.astype(bool), "dtype bool"),
                     (np.array(one.tolist(), dtype=object) / 2, "not all integers \\(float")):
        with pytest.raises(AuxcutError, match=why) as info:
            predictor.predict(bad)
        assert "(N, 1, 8, 8)" in str(info.value) or "1 to" in str(info.value)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port: int, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_make_serve_answers_predictions_and_rejects_bad_requests(pipeline):
    repo, env, _ = pipeline
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "auxcut", "serve", "--port", str(port)], cwd=repo, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except OSError:
                assert server.poll() is None, server.stdout.read()
                assert time.monotonic() < deadline, "the scoring server did not answer /ping within 120 s"
                time.sleep(1)
        ds = prepared.load(repo / "data" / "prepared")
        rows = ds.indices("test")[:5]
        status, answer = post(port, json.dumps({"inputs": np.asarray(ds.images[rows]).tolist()}).encode())
        assert status == 200, answer
        expected = np.load(repo.parent / "first-predictions" / "head_stacked.npy")[rows]
        predictions = answer["predictions"]
        assert [p["class"] for p in predictions] == [ds.classes[k] for k in expected.argmax(1)]
        np.testing.assert_allclose([[p[c] for c in ds.classes] for p in predictions], expected, atol=1e-5)

        for body in (json.dumps({"inputs": np.zeros((1, 3, 8, 8), int).tolist()}).encode(),  # wrong shape
                     json.dumps({"inputs": [[[["x"] * 8] * 8]]}).encode(),  # wrong dtype
                     b"this is not json"):  # garbage
            status, answer = post(port, body)
            assert status == 400, (status, answer)
            assert answer.get("message"), answer

        # A pixel that is no uint8 is refused, not truncated (0.5 -> 0, 200.7 -> 200, true -> 1 before): issue 21.
        image = np.asarray(ds.images[rows[:1]]).tolist()
        for pixel, why in ((0.5, "not all integers (float, int)"), (200.7, "not all integers (float, int)"),
                           (True, "not all integers (bool, int)"), (300, "outside 0..255"), (-1, "outside 0..255")):
            bad = json.loads(json.dumps(image))
            bad[0][0][3][4] = pixel
            for key in ("inputs", "instances"):
                status, answer = post(port, json.dumps({key: bad}).encode())
                assert status == 400, (pixel, key, status, answer)
                assert why in answer["message"], answer
        status, answer = post(port, json.dumps({"inputs": [[[[True] * 8] * 8]]}).encode())  # all booleans
        assert status == 400 and "not all integers (bool)" in answer["message"], answer
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_a_torchvision_base_is_registered_and_served_as_the_predictor_it_was_built_from(tmp_path, monkeypatch):
    """The registered pyfunc rebuilds any arch from its checkpoint: here a mobilenet_v3_small base and a pmnist_net
    aux (issue 23), logged and registered as fit_head does, then loaded from the registry."""
    import mlflow

    from auxcut.pipeline.predictor import Predictor, log_pyfunc

    classes = ["a", "b", "c"]
    files, images, _, _ = predictor_files(tmp_path, "mobilenet_v3_small", "pmnist_net", classes=tuple(classes))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)  # the store's default artifact root is ./mlruns
    with mlflow.start_run(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        log_pyfunc(files["base"], files["aux"], files["head"], classes, images[:2], "auxcut-mobilenet")
    assert not [w for w in caught if "integer column" in str(w.message)]  # the output's label is never missing
    served = mlflow.pyfunc.load_model("models:/auxcut-mobilenet/latest").predict(images)
    expected = Predictor.from_files(files["base"], files["aux"], files["head"], classes).predict_proba(images)
    np.testing.assert_allclose(served[classes].to_numpy(dtype=float), expected, atol=1e-6)
    assert list(served["class"]) == [classes[k] for k in expected.argmax(1)]


def test_the_predictor_module_loads_without_mlflow_warnings():
    """Every stage that scores the predictor imports its module: MLflow warns at import of a pyfunc whose predict has
    no type hint, into every `make run`; its ndarray hint is one MLflow reads no schema from (the signature gives it)."""
    result = subprocess.run([sys.executable, "-W", "always::UserWarning", "-c", "import auxcut.pipeline.predictor"],
                            capture_output=True, text=True, check=True)
    assert "Warning" not in result.stderr, result.stderr
