"""Conductor (stub, being written)."""


class Conductor:
    def __init__(self, cloud) -> None:  # noqa: ANN001
        self.cloud = cloud

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass
