"""Decode time per click inside the annotation page, in headless Chromium.

For each model, a server (in this process, uvicorn on loopback) serves one 1024x768
generated scene; Debian's chromium (Playwright, its executable path) opens the page at
1280x800, and the mouse clicks the scene's objects one after another (each a new prompt).
The page's worker times ``session.run`` of onnxruntime-web (WASM, 2 threads: the page is
cross-origin isolated); the click-to-mask time adds the worker round trip and the
upscaling to the image. The first click is left out. mobile_sam runs random weights
(none can be downloaded here; speed does not depend on their values).

    .venv/bin/python benchmarks/bench_page.py --clicks 30
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch
import uvicorn
from PIL import Image
from playwright.sync_api import sync_playwright

import segany
from segany.data.masks import interior_point
from segany.data.scenes import SceneConfig, generate_scene
from segany.server.app import create_app
from segany.server.auth import add_user, issue_token
from segany.server.config import ServerConfig
from segany.server.database import open_database
from segany.server.loadtest import free_port

CHROMIUM = "/usr/bin/chromium"


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def _serve(config: ServerConfig) -> tuple[str, uvicorn.Server]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="warning")
    )
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return url, server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the server did not start")


def measure(name: str, checkpoint: Path | None, clicks: int, work: Path) -> dict[str, Any]:
    data = work / name
    config = ServerConfig(data_dir=data, model=name, checkpoint=checkpoint)
    db = open_database(config.database_url)
    with db.session() as session:
        token = issue_token(session, add_user(session, "bench")).token
    db.close()
    url, server = _serve(config)
    scene = generate_scene(
        7, SceneConfig(size=(768, 1024), min_objects=clicks, max_objects=clicks + 4)
    )
    buffer = io.BytesIO()
    Image.fromarray(scene.image).save(buffer, "PNG")
    http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120)
    project = http.post("/api/projects", json={"name": "bench"}).json()["id"]
    http.post(
        f"/api/projects/{project}/images",
        files={"file": ("scene.png", buffer.getvalue(), "image/png")},
    )
    points = [interior_point(m) for m in scene.masks][:clicks]
    run_ms, click_ms = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.add_init_script(f"localStorage.setItem('segany.token', '{token}')")
        page = context.new_page()
        page.goto(f"{url}/app/?project={project}")
        assert page.evaluate("window.seganyApp.ready") is True
        box = page.locator("#mask").bounding_box()
        for x, y in points:
            page.keyboard.press("Escape")
            page.wait_for_function("!window.seganyApp.state.hovering")
            before = page.evaluate("window.seganyApp.state.decodes")
            start = time.perf_counter()
            page.mouse.click(
                box["x"] + (x + 0.5) * box["width"] / 1024,
                box["y"] + (y + 0.5) * box["height"] / 768,
            )
            page.wait_for_function(f"window.seganyApp.state.decodes > {before}", polling=1)
            click_ms.append((time.perf_counter() - start) * 1000)
            run_ms.append(float(page.evaluate("window.seganyApp.state.lastMs")))
        label = page.inner_text("#model")
        browser.close()
    server.should_exit = True

    def stats(values: list[float]) -> dict[str, float]:
        rest = values[1:]
        return {
            "median": round(float(np.median(rest)), 1),
            "p95": round(float(np.percentile(rest, 95)), 1),
            "first": round(values[0], 1),
        }

    return {
        "model": name,
        "page": label,
        "clicks": len(points),
        "decoder_ms": stats(run_ms),
        "click_to_mask_ms": stats(click_ms),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=30)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="segany-bench-page-"))
    torch.manual_seed(0)
    random_mobile = work / "mobile_sam_random.pth"
    torch.save(segany.load_model("mobile_sam", pretrained=False).state_dict(), random_mobile)
    results = {
        "cpu": _cpu(),
        "date": time.strftime("%Y-%m-%d"),
        "browser": "Debian chromium, headless",
        "runs": [
            measure("segany_shapes", None, args.clicks, work),
            measure("mobile_sam", random_mobile, args.clicks, work),
        ],
    }
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
