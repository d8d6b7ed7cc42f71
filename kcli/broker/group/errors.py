"""The group coordinator's refusal: a Kafka error code (``kcli.broker.errors``) and why."""


class CoordinatorError(Exception):
    """A request cannot be served by this coordinator; ``error_code`` says why."""

    def __init__(self, error_code: int, message: str = "") -> None:
        super().__init__(message or f"error {error_code}")
        self.error_code = error_code
