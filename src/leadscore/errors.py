"""One exception tree for leadscore.

    LeadscoreError
    ├── ModelError                 a scoring model cannot be loaded
    │   └── ModelValidationError   one or more positioned problems (all reported at once)
    ├── CompileError               a model cannot be turned into SQL
    │   └── UnsupportedRuleError   an engine lacks a construct a rule needs
    ├── StoreError                 the database is unusable (wrong schema, unknown lead, no active model)
    │   └── NotFoundError          a lead, model version or other record does not exist
    └── InputError                 an input file or message is malformed (positioned, per row or line)
        └── MessageError           a tracking message has a value the stores cannot hold (also a ValueError)
            └── DroppedMessage     one its sender's own server drops: reported, no failure of the request

Every error with a position carries it as data (``Problem``) so the CLI, the API and tests can
render or inspect it without parsing messages.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One positioned problem: where (file, line, column or row, field), which rule, and what."""

    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    rule: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = ":".join(str(p) for p in (self.file, self.line, self.column) if p is not None)
        parts = [where] if where else []
        if self.rule:
            parts.append(f"rule {self.rule}")
        if self.field:
            parts.append(f"field {self.field}")
        prefix = " ".join(parts)
        return f"{prefix}: {self.message}" if prefix else self.message


class LeadscoreError(Exception):
    """Base of every error leadscore raises on purpose."""


class ModelError(LeadscoreError):
    """A scoring model cannot be loaded."""


class ModelValidationError(ModelError):
    """A model file has one or more problems; ``problems`` lists all of them, in file order."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.line or 0, p.column or 0))
        super().__init__("\n".join(str(p) for p in self.problems))


class CompileError(LeadscoreError):
    """A model cannot be compiled to SQL."""


class UnsupportedRuleError(CompileError):
    """The target engine does not support a construct the rule uses."""

    def __init__(self, rule: str, engine: str, construct: str) -> None:
        self.rule, self.engine, self.construct = rule, engine, construct
        super().__init__(f"rule {rule}: {construct} is not supported on {engine}")


class StoreError(LeadscoreError):
    """The store cannot do what was asked."""


class NotFoundError(StoreError):
    """A record does not exist."""


class InputError(LeadscoreError):
    """Malformed input: ``problem`` says where (line/row, field) and what; ``problems`` is every problem
    found where a reader went on to the end (the first is ``problem``), the first LISTED of them said."""

    LISTED = 20

    def __init__(self, problem: Problem, *more: Problem) -> None:
        self.problem = problem
        self.problems = (problem, *more)
        said = [str(p) for p in self.problems[: self.LISTED]]
        if len(self.problems) > self.LISTED:
            said.append(f"(and {len(self.problems) - self.LISTED} more problems)")
        super().__init__("\n".join(said))


class MessageError(InputError, ValueError):
    """A Segment message is refused: ``problem.field`` is the path of the value (``properties.a.b``) and
    ``problem.message`` says what is wrong, naming it. A ValueError too, as every message check raises one."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(Problem(message, field=field))

    def __str__(self) -> str:
        return self.problem.message


class DroppedMessage(MessageError):
    """A message left out as its sender's own server leaves it out (PostHog drops a person event without
    person processing and answers 200): reported beside the refusals, but a request with nothing else to
    store is no failure (``api.tracking.commit_messages``), which its client would retry or drop a queue
    over."""
