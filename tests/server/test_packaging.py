"""The annotation page ships in the wheel and the sdist (issue 40).

Nobody needs Node.js to run segany installed from a wheel or an sdist: the built page is
package data. These tests build both, offline, with the build backend already in the venv
(``pip wheel --no-build-isolation --no-index``; the sdist by setuptools' own
``build_sdist`` hook), from a copy of the working tree, so that the repository gets no
``build/`` or ``egg-info`` and no stale ``build/lib`` can slip files in. They check that:

* the wheel holds every file of the built page, byte for byte;
* the wheel, installed with ``pip install --target`` and imported from there (not from the
  editable source), runs ``segany serve``, which serves the page, its bundles and the WASM
  runtime with the right content types and the wheel's bytes, and stops cleanly;
* the sdist holds the built page, and a wheel built from it with no Node.js on ``PATH``
  holds it too.

The expected files are those of the built folder (``make`` builds it before the tests), not
a list of names here; a test is skipped when the page is not built and Node.js cannot build
it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from segany.server.loadtest import ServerProcess

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
APP = Path("src/segany/server/static/app")  # the built page, relative to the tree
PACKAGED = "segany/server/static/app"  # ... and inside the package
LOGIN = "segany/server/static/login.html"
# not copied into the tree that is built: environments, build outputs, caches
SKIPPED = {".git", ".venv", "node_modules", "build", "dist", "demo_output", "runs"}
SKIPPED_PATTERNS = ("*.egg-info", "__pycache__", ".*_cache")
JAVASCRIPT = {"text/javascript", "application/javascript"}
CONTENT_TYPES = {
    ".html": {"text/html"},
    ".js": JAVASCRIPT,
    ".mjs": JAVASCRIPT,  # a module worker's import: browsers refuse any other type
    ".wasm": {"application/wasm"},  # WebAssembly.instantiateStreaming needs exactly this
    ".css": {"text/css"},
}


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run ``command``; its output, or a failure with that output."""
    done = subprocess.run(
        command,
        cwd=cwd,
        env=env if env is not None else clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-4000:]}"
    return done.stdout


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(extra)
    return env


def page_in_zip(wheel: Path) -> dict[str, bytes]:
    """The page's files in a wheel (name under the app folder -> bytes), hidden ones aside."""
    with zipfile.ZipFile(wheel) as archive:
        return {
            name.removeprefix(PACKAGED + "/"): archive.read(name)
            for name in archive.namelist()
            if name.startswith(PACKAGED + "/") and not name.rsplit("/", 1)[-1].startswith(".")
        }


def build_wheel(tree: Path, out: Path, env: dict[str, str] | None = None) -> Path:
    out.mkdir()
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
        + ["--no-index", "--no-cache-dir", "-w", str(out), "."],
        cwd=tree,
        env=env,
    )
    (wheel,) = out.glob("segany-*.whl")
    return wheel


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the working tree with the page built in it."""
    built = ROOT / APP / ".built"
    node = shutil.which("node")
    if not built.exists() and (node is None or not (ROOT / "web/node_modules").is_dir()):
        pytest.skip(
            f"the annotation page is not built ({APP}/.built is missing) and Node.js or "
            "web/node_modules is not there to build it: run 'make test'"
        )
    copy = tmp_path_factory.mktemp("packaging") / "tree"
    skip = shutil.ignore_patterns(*SKIPPED_PATTERNS)

    def ignore(folder: str, names: list[str]) -> set[str]:
        return set(skip(folder, names)) | (SKIPPED & set(names))

    shutil.copytree(ROOT, copy, ignore=ignore, symlinks=True)
    if not built.exists():  # built here, into the copy only (the repository is not touched)
        assert node is not None
        run([node, str(ROOT / "web/build.mjs"), str(copy / APP)], cwd=ROOT / "web")
    return copy


@pytest.fixture(scope="module")
def page(tree: Path) -> dict[str, bytes]:
    """The built page's files (name -> bytes), the build's ``.built`` marker aside."""
    folder = tree / APP
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.name.startswith(".")
    }


@pytest.fixture(scope="module")
def wheel(tree: Path) -> Path:
    return build_wheel(tree, tree.parent / "dist")


@dataclass
class Installed:
    target: Path  # pip install --target
    cwd: Path  # a folder outside the repository
    env: dict[str, str]  # PYTHONPATH=target, in front of the venv's site-packages


@pytest.fixture(scope="module")
def installed(wheel: Path) -> Installed:
    target = wheel.parent.parent / "installed"
    run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index"]
        + ["--target", str(target), str(wheel)],
        cwd=wheel.parent,
    )
    cwd = wheel.parent.parent / "elsewhere"
    cwd.mkdir()
    return Installed(target, cwd, clean_env(PYTHONPATH=str(target)))


@pytest.fixture(scope="module")
def sdist(tree: Path) -> Path:
    out = tree.parent / "sdist"
    hook = "import sys, setuptools.build_meta as b; print(b.build_sdist(sys.argv[1]))"
    run([sys.executable, "-c", hook, str(out)], cwd=tree)
    (archive,) = out.glob("segany-*.tar.gz")
    return archive


# ------------------------------------------------------------------ the tests


def test_the_wheel_holds_the_built_page(tree: Path, page: dict[str, bytes], wheel: Path) -> None:
    # the build made a whole page: what index.html loads, and onnxruntime-web's runtime
    # under the names the bundled worker asks for
    html = page["index.html"].decode()
    loaded = set(re.findall(r'(?:src|href)="([^":/]+)"', html))
    assert {Path(n).suffix for n in loaded} >= {".js", ".css"}, html
    assert loaded <= set(page), f"index.html loads files the build did not make: {loaded}"
    started = {  # what the page's scripts start by relative URL (the worker)
        name.decode()
        for script in loaded
        if script.endswith(".js")
        for name in re.findall(rb'"\./([\w.-]+\.m?js)"', page[script])
    }
    assert started, "the page's script starts no worker"
    assert started <= set(page), f"the page starts scripts the build did not make: {started}"
    runtime = {
        name
        for script in page
        if script.endswith(".js")
        for name in re.findall(rb"ort-wasm[\w.-]*?\.(?:wasm|mjs)", page[script])
    }
    runtime_names = {name.decode() for name in runtime}
    assert any(n.endswith(".wasm") for n in runtime_names), runtime_names
    assert any(n.endswith(".mjs") for n in runtime_names), runtime_names
    assert runtime_names <= set(page), (
        f"the bundle loads files the build did not copy: {sorted(page)}"
    )

    packed = page_in_zip(wheel)
    assert sorted(packed) == sorted(page), "the wheel's page differs from the built folder"
    for name, data in page.items():
        assert packed[name] == data, f"{name} differs in the wheel"
    with zipfile.ZipFile(wheel) as archive:
        assert LOGIN in archive.namelist(), "the wheel lacks the login page"
        assert archive.read(LOGIN) == (tree / "src" / LOGIN).read_bytes()


def test_a_server_installed_from_the_wheel_serves_the_page(
    installed: Installed, page: dict[str, bytes], wheel: Path
) -> None:
    # the installed copy is the one imported, not the editable source in the repository
    where = run(
        [sys.executable, "-c", "import segany.server.app as a; print(a.__file__); print(a.APP)"],
        cwd=installed.cwd,
        env=installed.env,
    ).splitlines()
    assert [Path(p).is_relative_to(installed.target) for p in where] == [True, True], where
    assert not any(Path(p).is_relative_to(ROOT) for p in where), where
    script = installed.target / "bin" / "segany"  # the wheel's console script
    assert script.is_file()

    packed = page_in_zip(wheel)  # what the server must answer, byte for byte
    assert sorted(packed) == sorted(page)
    with zipfile.ZipFile(wheel) as archive:
        login = archive.read(LOGIN)
    data = installed.cwd / "data"
    env = dict(installed.env, SEGANY_HOME=str(data))
    server = ServerProcess(data, None, program=[str(script)], cwd=installed.cwd, env=env)
    with server, httpx.Client(base_url=server.url, timeout=30) as http:
        home = http.get("/")
        assert home.status_code == 307 and home.headers["location"] == "/app/"
        index = http.get("/app/")  # static files, no token: the page asks for one
        assert index.status_code == 200
        assert index.headers["content-type"].split(";")[0] == "text/html"
        assert index.content == packed["index.html"]
        for name, expected in packed.items():
            answer = http.get(f"/app/{name}")
            assert answer.status_code == 200, name
            kind = answer.headers["content-type"].split(";")[0].strip()
            allowed = CONTENT_TYPES.get(Path(name).suffix)
            assert allowed is None or kind in allowed, f"{name}: {kind}"
            assert answer.content == expected, f"{name} differs from the wheel's"
        assert http.get("/app/no-such-file.js").status_code == 404
        answer = http.get("/login")
        assert answer.status_code == 200 and answer.content == login
    # a clean stop on SIGTERM: the app shut down, then the process ended (uvicorn re-raises
    # the signal after a graceful shutdown, so -SIGTERM is clean)
    assert server.process is not None
    log = server.log.read_text()
    assert server.process.returncode in (0, -signal.SIGTERM), log[-3000:]
    assert "Application shutdown complete" in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]


def test_the_sdist_holds_the_page_and_builds_a_wheel_without_node(
    sdist: Path, page: dict[str, bytes]
) -> None:
    top = sdist.name.removesuffix(".tar.gz")
    prefix = f"{top}/src/{PACKAGED}/"
    with tarfile.open(sdist) as archive:
        members = {m.name: m for m in archive.getmembers() if m.isfile()}
        packed = {
            name.removeprefix(prefix): archive.extractfile(member).read()  # type: ignore[union-attr]
            for name, member in members.items()
            if name.startswith(prefix) and not name.rsplit("/", 1)[-1].startswith(".")
        }
        assert sorted(packed) == sorted(page), "the sdist's page differs from the built folder"
        for name, data in page.items():
            assert packed[name] == data, f"{name} differs in the sdist"
        assert f"{top}/src/{LOGIN}" in members
        unpacked = sdist.parent / "unpacked"
        archive.extractall(unpacked, filter="data")

    bare = sdist.parent / "bare-path"  # a PATH without node (nor npm, npx, esbuild)
    bare.mkdir()
    env = clean_env(PATH=str(bare))
    assert shutil.which("node", path=env["PATH"]) is None
    rebuilt = build_wheel(unpacked / top, sdist.parent / "dist", env=env)
    packed = page_in_zip(rebuilt)
    assert sorted(packed) == sorted(page), "the wheel built from the sdist lacks the page"
    for name, data in page.items():
        assert packed[name] == data, f"{name} differs in the wheel built from the sdist"
    with zipfile.ZipFile(rebuilt) as archive:
        assert LOGIN in archive.namelist()
