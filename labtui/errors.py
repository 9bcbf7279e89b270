"""User-facing errors: a message that names what failed and a hint that says what to do."""

from __future__ import annotations


class LabError(Exception):
    """An error meant for the user. `str(err)` is the message; `hint` says what to do next."""

    def __init__(self, message: str, hint: str | None = None, *, code: str = "error") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message

    def render(self) -> str:
        return f"{self.message}\n  -> {self.hint}" if self.hint else self.message


class ValidationFailed(LabError):
    """Raised when user input does not validate; carries the individual problems."""

    def __init__(self, problems: list) -> None:  # list[model.Problem]
        self.problems = problems
        errors = [p for p in problems if p.severity == "error"]
        first = errors[0] if errors else problems[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        label = getattr(first, "label", first.field)  # the field as the user sees it, not its internal name
        super().__init__(f"{label}: {first.message}{more}", first.hint, code="invalid")
