"""The model behind the server: cached embeddings, decoding, prefetch, the browser's
decoder, and the bounded queue."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from segany.data.rle import rle_to_mask
from segany.predictor import Predictor
from segany.server.errors import BusyError
from segany.server.inference import InferenceQueue, ModelService
from tests.server.conftest import Served, make_served, png_bytes


@pytest.fixture
def local(tmp_path: Path, service: ModelService) -> Served:
    state, _ = make_served(f"sqlite:///{tmp_path}/s.db", tmp_path / "data", service)
    with state.client:
        yield state


def _images(served: Served, count: int) -> tuple[int, list[dict]]:
    project = served.project()
    images = []
    for seed in range(count):
        answer = served.upload(project, png_bytes(seed=seed + 10), name=f"i{seed}.png")
        images.append(answer.json())
    return project, images


def test_embedding_is_computed_once_and_matches_the_predictor(
    local: Served, service: ModelService
) -> None:
    _, images = _images(local, 1)
    url = f"/api/images/{images[0]['id']}/embedding"
    first = local.client.get(url, headers=local.auth())
    assert first.status_code == 200
    meta = __import__("json").loads(first.headers["x-segany-embedding"])
    assert meta["weights_sha256"] == service.weights_key and meta["original_size"] == [96, 128]
    cached = service.cache.tensor_path(images[0]["sha256"])
    stamp = cached.stat().st_mtime_ns
    again = local.client.get(url, headers=local.auth())
    assert again.content == first.content and cached.stat().st_mtime_ns == stamp
    served = np.frombuffer(first.content, "<f4").reshape(meta["shape"])
    predictor = Predictor(service.model)
    predictor.set_image(
        local.config.images_dir / images[0]["sha256"][:2] / f"{images[0]['sha256']}.png"
    )
    assert np.array_equal(served, predictor.get_image_embedding().numpy())


def test_decode_answers_what_the_predictor_does(local: Served, service: ModelService) -> None:
    _, images = _images(local, 1)
    answer = local.client.post(
        f"/api/images/{images[0]['id']}/decode",
        json={"points": [[64, 48]], "labels": [1]},
        headers=local.auth(),
    )
    assert answer.status_code == 200
    data = answer.json()
    predictor = Predictor(service.model)
    predictor.set_image(
        local.config.images_dir / images[0]["sha256"][:2] / f"{images[0]['sha256']}.png"
    )
    expected = predictor.predict([[64, 48]], [1])
    assert np.allclose(data["scores"], expected.scores, atol=1e-5)
    for rle, mask in zip(data["masks"], expected.masks, strict=True):
        assert np.array_equal(rle_to_mask(rle), mask)
    assert data["best"] == int(np.argmax(expected.scores))
    assert all(0 <= s <= 1 for s in data["stability_scores"])
    bad = local.client.post(
        f"/api/images/{images[0]['id']}/decode",
        json={"points": [[1, 2]], "labels": [1, 0]},
        headers=local.auth(),
    )
    assert bad.status_code == 400


def test_next_images_are_encoded_ahead(local: Served, service: ModelService) -> None:
    _, images = _images(local, 4)
    local.client.get(f"/api/images/{images[0]['id']}/embedding", headers=local.auth())
    deadline = time.monotonic() + 30
    ahead = [i["sha256"] for i in images[1 : 1 + local.config.prefetch]]
    while time.monotonic() < deadline and not all(service.cached(s) for s in ahead):
        time.sleep(0.05)
    assert all(service.cached(s) for s in ahead)
    assert service.cached(images[-1]["sha256"]) is None  # only the next `prefetch` ones


def test_decoder_onnx_runs_on_the_served_embedding(local: Served, service: ModelService) -> None:
    ort = pytest.importorskip("onnxruntime")
    _, images = _images(local, 1)
    describe = local.client.get("/api/model", headers=local.auth()).json()
    assert describe["weights_sha256"] == service.weights_key
    onnx = local.client.get(describe["decoder"], headers=local.auth())
    assert onnx.status_code == 200
    embedding = local.client.get(f"/api/images/{images[0]['id']}/embedding", headers=local.auth())
    shape = __import__("json").loads(embedding.headers["x-segany-embedding"])["shape"]
    session = ort.InferenceSession(onnx.content)
    low = service.model.prompt_encoder.mask_input_size[0]
    outputs = session.run(
        None,
        {
            "image_embeddings": np.frombuffer(embedding.content, "<f4").reshape(shape),
            "point_coords": np.array([[[100.0, 80.0], [0.0, 0.0]]], np.float32),
            "point_labels": np.array([[1, -1]], np.float32),
            "mask_input": np.zeros((1, 1, low, low), np.float32),
            "has_mask_input": np.zeros(1, np.float32),
        },
    )
    assert outputs[0].shape[0] == 1 and np.isfinite(outputs[0]).all()


def test_an_export_of_an_older_graph_is_replaced(local: Served, service: ModelService) -> None:
    """A data dir written by an older segany holds an older decoder graph: it is exported
    again rather than served."""
    from segany.engine.onnx_export import GRAPH_VERSION

    describe = local.client.get("/api/model", headers=local.auth()).json()
    first = local.client.get(describe["decoder"], headers=local.auth()).content
    folder = service.config.models_dir / service.weights_key[:16]
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["graph_version"] == GRAPH_VERSION
    meta["graph_version"] = GRAPH_VERSION - 1
    (folder / "metadata.json").write_text(json.dumps(meta))
    (folder / "decoder.onnx").write_bytes(b"an old graph")
    again = local.client.get(describe["decoder"], headers=local.auth()).content
    assert again == first
    assert json.loads((folder / "metadata.json").read_text())["graph_version"] == GRAPH_VERSION


def test_queue_refuses_beyond_its_bound_and_times_out() -> None:
    queue = InferenceQueue(capacity=2, timeout_s=0.2)
    release = threading.Event()
    try:
        queue.submit(release.wait)
        queue.submit(lambda: 1)
        with pytest.raises(BusyError):
            queue.submit(lambda: 2)  # the third request: 503 at once
        assert queue.refused == 1
        release.set()
        time.sleep(0.05)
        assert asyncio.run(queue.run(lambda: 3)) == 3
        release.clear()
        started = threading.Event()
        queue.submit(lambda: started.set() or release.wait(), background=True)
        assert started.wait(5)  # background work is running, and not counted ...
        with pytest.raises(BusyError, match="within"):
            asyncio.run(queue.run(lambda: 4))  # ... but a request behind it can time out
    finally:
        release.set()
        queue.close()


def test_model_routes_answer_503_without_a_model(tmp_path: Path) -> None:
    state, _ = make_served(f"sqlite:///{tmp_path}/s.db", tmp_path / "data", None)
    with state.client:
        assert state.client.get("/api/model", headers=state.auth()).status_code == 503
        assert state.client.get("/readyz").json()["model"] == "none"


def test_waiting_decodes_of_one_image_share_a_decoder_call(
    local: Served, service: ModelService
) -> None:
    from segany.server.batching import DecodeRequest

    _, images = _images(local, 1)
    sha = images[0]["sha256"]
    path = local.config.images_dir / sha[:2] / f"{sha}.png"
    clicks = [[20.0, 30.0], [64.0, 48.0], [100.0, 70.0]]
    requests = [DecodeRequest(sha, path, [c], [1], None, True) for c in clicks]
    bad = DecodeRequest(sha, path, [[1.0, 2.0]], [1, 0], None, True)  # labels don't match
    other = DecodeRequest(sha, path, [[5.0, 5.0], [9.0, 9.0]], [1, 0], None, True)
    for request in [*requests, bad, other]:
        service.batcher.add(request)
    before = service.batcher.batches
    service.queue.submit(lambda: service.batcher.run(requests[0])).result(timeout=30)
    assert service.batcher.batches == before + 1  # one call answered all three
    assert all(r.answer.done() for r in requests) and not other.answer.done()
    predictor = Predictor(service.model)
    predictor.set_image(path)
    for click, request in zip(clicks, requests, strict=True):
        logits, scores = request.answer.result()
        alone = predictor.predict([click], [1], return_logits=True)
        assert np.allclose(logits, alone.masks, atol=1e-4)
        assert np.allclose(scores, alone.scores, atol=1e-5)
    with pytest.raises(Exception, match="label"):
        service.queue.submit(lambda: service.batcher.run(bad)).result(timeout=30)
    service.queue.submit(lambda: service.batcher.run(other)).result(timeout=30)
