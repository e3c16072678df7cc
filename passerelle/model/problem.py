"""Problems: what is wrong with a user's object, phrased for the person who wrote it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"  # part of the object is not served
    WARNING = "warning"  # served, but probably not as the author meant


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class ObjectRef:
    """Identifies a Kubernetes object, or a manifest file when `kind` is "File"."""

    kind: str
    namespace: str = ""
    name: str

    def __str__(self) -> str:
        if self.namespace:
            return f"{self.kind} {self.namespace}/{self.name}"
        return f"{self.kind} {self.name}"


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class Problem:
    ref: ObjectRef
    message: str
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        return f"{self.severity}: {self.ref}: {self.message}"


class Report:
    """Appends each distinct problem once to `problems` (an object met twice is reported once)."""

    __slots__ = ("problems", "_seen")

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        self._seen = set(problems)

    def add(self, ref: ObjectRef, message: str, severity: Severity = Severity.ERROR) -> None:
        problem = Problem(ref=ref, message=message, severity=severity)
        if problem not in self._seen:
            self._seen.add(problem)
            self.problems.append(problem)
