"""The configured volume backends: `volume_backends` in the settings, name -> spec.

A spec is "KIND" or "KIND:OPTIONS" (the options are the kind's own, see each module). With
no `volume_backends` set, the cloud has one backend named "file" (qcow2 files under
<data_dir>/volumes).
"""

from __future__ import annotations

from collections.abc import Callable

from cirrus.config import Settings
from cirrus.storage.volumes.backend import BackendError, VolumeBackend
from cirrus.storage.volumes.backends.fake import FakeBackend
from cirrus.storage.volumes.backends.file import FileBackend
from cirrus.storage.volumes.backends.rbd import RbdBackend

# kind -> factory(name, options, settings). Each backend module adds its line here.
KINDS: dict[str, Callable[[str, str, Settings], VolumeBackend]] = {
    "fake": FakeBackend.from_spec,
    "file": FileBackend.from_spec,
    "rbd": RbdBackend.from_spec,
}

DEFAULT_BACKENDS = {"file": "file"}


def backend_specs(settings: Settings) -> dict[str, str]:
    return dict(settings.volume_backends) or dict(DEFAULT_BACKENDS)


def load_backends(settings: Settings) -> dict[str, VolumeBackend]:
    """Every configured backend by name; a spec naming an unknown kind is refused."""
    backends: dict[str, VolumeBackend] = {}
    for name, spec in backend_specs(settings).items():
        kind, _, options = spec.partition(":")
        factory = KINDS.get(kind.strip())
        if factory is None:
            raise BackendError(
                f"volume backend {name!r}: unknown kind {kind!r} in volume_backends "
                f"(known: {', '.join(sorted(KINDS))})")
        backends[name] = factory(name, options, settings)
    return backends


def default_backend_name(settings: Settings) -> str:
    """The backend a volume whose type names none goes to: default_volume_backend, else the
    first configured."""
    specs = backend_specs(settings)
    if settings.default_volume_backend:
        return settings.default_volume_backend
    return next(iter(specs))
