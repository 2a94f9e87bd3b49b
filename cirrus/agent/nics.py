"""What the agent has plugged for each VM on its host, kept on disk.

The agent needs it when the database is out of reach by design (an agent talks only to the
bus): to unplug a destroyed VM's taps, and after a host restart to make every bridge and
tap again before any VM starts. One small JSON file per host, replaced atomically.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path


class NicStore:
    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._nics: dict[str, list[dict]] = {}
        if path is not None and path.exists():
            self._nics = json.loads(path.read_text())

    def get(self, uuid: str) -> list[dict]:
        with self._lock:
            return list(self._nics.get(uuid, []))

    def all(self) -> dict[str, list[dict]]:
        with self._lock:
            return {uuid: list(nics) for uuid, nics in self._nics.items()}

    def set(self, uuid: str, nics: list[dict]) -> None:
        with self._lock:
            if nics:
                self._nics[uuid] = list(nics)
            else:
                self._nics.pop(uuid, None)
            self._save()

    def add(self, uuid: str, nic: dict) -> None:
        with self._lock:
            nics = [n for n in self._nics.get(uuid, []) if n["port_id"] != nic["port_id"]]
            self._nics[uuid] = [*nics, nic]
            self._save()

    def remove(self, uuid: str, port_id: str) -> None:
        with self._lock:
            nics = [n for n in self._nics.get(uuid, []) if n["port_id"] != port_id]
            if nics:
                self._nics[uuid] = nics
            else:
                self._nics.pop(uuid, None)
            self._save()

    def pop(self, uuid: str) -> list[dict]:
        with self._lock:
            nics = self._nics.pop(uuid, [])
            if nics:
                self._save()
            return nics

    def _save(self) -> None:
        if self._path is None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._nics))
        tmp.replace(self._path)
