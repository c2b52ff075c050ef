"""Keeping the served model on the database's active version.

:class:`VersionFollower` ties a :class:`~segany.server.inference.ModelService` to the
``model_versions`` table:

* at start (on the model's thread, before the service is ready) it registers the model
  the server was started with as v1 when the table is empty, then loads the active
  version if that is another one, so the first request is already answered by it;
* :meth:`VersionFollower.activate` (``POST /api/model/versions/{id}/activate``) loads the
  version on the model's thread, verifying its weights, then marks it active and swaps
  it in; a version that fails to load is not activated;
* a thread compares the active row with the served weights every
  ``ServerConfig.version_poll_s`` seconds (2 by default) and switches when they differ:
  that is how a version activated by ``segany train --from-project --activate`` (or by
  another server on the same database) is picked up. Polling costs one small read every
  few seconds; checking on every request would cost one per request, and a switch would
  then wait for a request to come.

Loading and swapping run on the model's worker thread as background work (after the
requests waiting), so a request is answered wholly by one version, and the weights sha256
an answer names is the one that computed it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import IntegrityError

from segany.server import versions
from segany.server.config import ServerConfig
from segany.server.database import Database
from segany.server.inference import ModelService
from segany.server.tables import ModelVersion
from segany.server.versions import VersionSource
from segany.server.weights_store import load_version, store_model, store_weights
from segany.weights import sha256_file

__all__ = ["VersionFollower", "served_source"]

T = TypeVar("T")
log = logging.getLogger("segany.server.switching")


def served_source(config: ServerConfig, service: ModelService) -> VersionSource:
    """The model ``service`` serves, as a version to register: the registry's weights, or
    its weights file copied into the data dir (saved there as safetensors when it came
    from a file of another kind)."""
    model = service.model
    if service.source is None:
        return VersionSource(name=model.name, weights_sha256=service.weights_key)
    if service.source.suffix.lower() == ".safetensors" and (
        sha256_file(service.source) == service.weights_key
    ):
        path, sha = store_weights(config, service.source)
    else:
        path, sha = store_model(config, model)
    return VersionSource(name=model.name, weights_sha256=sha, path=path)


class VersionFollower:
    """Serves the active version with ``service`` (see the module's docstring)."""

    def __init__(self, db: Database, config: ServerConfig) -> None:
        self.db, self.config = db, config
        self.service: ModelService | None = None
        self._lock = threading.Lock()  # one switch at a time in this process
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ starting
    def prepare(self, service: ModelService) -> None:
        """On the model's thread, as the service loads: register v1 if need be and load
        the active version (``ModelService(prepare=...)``)."""
        self.service = service
        with self._lock:
            self._settle(on_worker=True)

    def follow(self, service: ModelService) -> VersionFollower:
        """Follow the active version with ``service`` from now on: at once if it is
        loaded (else :meth:`prepare` does it), then every ``version_poll_s`` seconds."""
        self.service = service
        if service.ready.is_set() and service.error is None:
            self.sync()
        self._thread = threading.Thread(target=self._loop, name="segany-versions", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        service = self._service()
        while not self._stop.is_set() and not service.ready.wait(0.5):
            pass
        if service.error is not None:
            return
        said = ""
        while not self._stop.wait(self.config.version_poll_s):
            try:
                self.sync()
                said = ""
            except Exception as exc:  # a missing file or a lost database: try again later
                if str(exc) != said:  # said once, not every poll
                    log.warning("model versions: %s", exc)
                said = str(exc)

    # ----------------------------------------------------------- switching
    def sync(self) -> bool:
        """Serve the active version (registering v1 if there is none); True when the
        served weights changed."""
        with self._lock:
            return self._settle(on_worker=False)

    def activate(self, version_id: int) -> ModelVersion:
        """Load version ``version_id`` (its weights verified), make it the active one and
        serve it. Raises what loading raised, with nothing changed."""
        service = self._service()
        with self._lock:
            with self.db.read() as session:
                row = versions.get_version(session, version_id)
            loaded = None
            if row.weights_sha256 != service.weights_key:
                loaded = self._on_worker(lambda: load_version(self.config, row), False)
            with self.db.session() as session:
                row = versions.activate(session, version_id)
            if loaded is None:
                service.version = row.label
            else:
                model, path = loaded
                self._on_worker(
                    lambda: service.use(model, row.weights_sha256, row.label, path), False
                )
            return row

    def _settle(self, on_worker: bool) -> bool:
        service = self._service()
        active = self._active_or_first(service)
        if active.weights_sha256 == service.weights_key:
            service.version = active.label
            return False

        def switch() -> None:
            model, path = load_version(self.config, active)
            service.use(model, active.weights_sha256, active.label, path)

        self._on_worker(switch, on_worker)
        log.info("serving model version %s (%s)", active.label, active.weights_sha256[:12])
        return True

    def _active_or_first(self, service: ModelService) -> ModelVersion:
        with self.db.read() as session:
            active = versions.active_version(session)
        if active is not None:
            return active
        source = served_source(self.config, service)
        try:
            with self.db.session() as session:
                row, _ = versions.register(session, source, active=True)
                return row
        except IntegrityError:  # another process registered one first: take its active one
            with self.db.read() as session:
                found = versions.active_version(session)
            if found is None:
                raise
            return found

    def _on_worker(self, job: Callable[[], T], here: bool) -> T:
        """``job`` on the model's thread (``here``: this is it), after waiting requests."""
        if here:
            return job()
        return self._service().queue.submit(job, background=True).result()

    def _service(self) -> ModelService:
        if self.service is None:
            raise RuntimeError("the follower has no model service yet")
        return self.service
