"""Agent (stub, being written)."""


class Agent:
    def __init__(self, settings, bus, host, driver) -> None:  # noqa: ANN001
        self.host = host

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass
