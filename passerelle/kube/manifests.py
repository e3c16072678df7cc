"""A directory of Kubernetes YAML/JSON -> ClusterSnapshot, the laptop and test provider.

Every `*.yaml`, `*.yml` and `*.json` file (multi-document, `kind: List` too) is read; hidden files
are skipped. Nothing a user writes is lost to a mistake: a file that does not parse keeps the
objects it held last time it did, and an object the API server would reject keeps its last valid
version; both are reported as Problems. With `watch`, files are polled (cheap `stat` calls, no
platform-specific notifier) and a change is published within one poll interval.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import yaml

from passerelle.kube.layered import Layered
from passerelle.kube.nodes import read_node, read_pod
from passerelle.kube.objects import InvalidObject, read_ingress
from passerelle.kube.shapes import not_an_object
from passerelle.kube.snapshot import ClusterSnapshot, Key, key_of
from passerelle.memory import gc_paused
from passerelle.model import ObjectRef, Problem

log = logging.getLogger("passerelle.manifests")

SUFFIXES = (".yaml", ".yml", ".json")
# libyaml's parser when PyYAML was built with it: 8x faster on large directories (measured on
# 30,000 documents: 5 s instead of 40 s), same safe constructor.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
Publish = Callable[[ClusterSnapshot, list[Problem]], Awaitable[None]]
# Kinds checked on reading: an invalid object keeps its last valid version (a typo in a Node must
# not take it out of DNS, nor one in an Ingress take its routes away).
VALIDATORS: dict[str, Callable[[Any], object]] = {"Ingress": read_ingress, "Node": read_node, "Pod": read_pod}


@dataclass(slots=True)
class _FileState:
    signature: tuple[int, int]
    objects: list[tuple[dict[str, Any], int]]  # (object, line) of the last successful parse
    part: _Part | None = None  # what its objects are, once assembled


@dataclass(slots=True)
class _Part:
    """One file's objects as `_assemble` uses them, worked out once per parse of the file."""

    keyed: dict[Key, dict[str, Any]]  # the last of each key in the file
    origins: dict[Key, str]
    problems: list[Problem]  # documents that are not objects, keys defined twice in the file
    checked: list[Key]  # keys of kinds in VALIDATORS
    snapshot: ClusterSnapshot


@dataclass(slots=True)
class Loaded:
    snapshot: ClusterSnapshot
    problems: list[Problem]
    origins: Mapping[Key, str] = field(default_factory=dict)  # object key -> "file:line"


class ManifestsProvider:
    def __init__(self, directory: Path, *, watch: bool = True, interval: float = 0.2) -> None:
        self.directory = directory
        self.watch = watch
        self.interval = interval
        self._files: dict[Path, _FileState] = {}
        self._valid: dict[Key, dict[str, Any]] = {}  # last valid version of each object
        self._file_problems: dict[Path, Problem] = {}
        self._missing = False
        # The parts and the answer of the last `_assemble_parts` (None: it took the long way).
        self._last: tuple[dict[Path, _Part], Loaded] | None = None
        self._unreadable = 0  # times a file failed to parse (observability/metrics.py provider_health)

    @property
    def health(self) -> dict[str, float]:
        return {"errors": self._unreadable, "up": not self._missing}

    def load(self) -> Loaded:
        """Read what changed since the last call and build the whole snapshot."""
        self._scan()
        return self._assemble()

    def _scan(self) -> bool:
        """Re-read the files whose size or mtime changed; True if any file changed, came or went."""
        if not self.directory.is_dir():
            changed = self._files or not self._missing
            self._files.clear()
            self._file_problems.clear()
            self._missing = True
            return bool(changed)
        changed = self._missing
        self._missing = False
        seen = set()
        for path in sorted(self.directory.rglob("*")):
            if path.suffix not in SUFFIXES or any(
                part.startswith(".") for part in path.relative_to(self.directory).parts
            ):
                continue
            seen.add(path)
            try:
                stat = path.stat()
            except OSError:
                continue
            signature = (stat.st_mtime_ns, stat.st_size)
            state = self._files.get(path)
            if state is not None and state.signature == signature:
                continue
            changed = True
            try:
                objects = parse_documents(path.read_text(encoding="utf-8"))
            except (yaml.YAMLError, UnicodeDecodeError, OSError) as e:
                self._unreadable += 1
                self._file_problems[path] = Problem(ref=self._file_ref(path), message=_yaml_message(e))
                # keep the last good objects of this file, and retry when the file changes again
                self._files[path] = _FileState(
                    signature, *((state.objects, state.part) if state else ([], None))
                )
                continue
            self._file_problems.pop(path, None)
            self._files[path] = _FileState(signature, objects)
        for gone in set(self._files) - seen:
            del self._files[gone]
            self._file_problems.pop(gone, None)
            changed = True
        return changed

    def _assemble(self) -> Loaded:
        problems = list(self._file_problems.values())
        if self._missing:
            problems.append(
                Problem(
                    ref=ObjectRef(kind="Directory", name=str(self.directory)),
                    message="manifests directory not found",
                )
            )
        fast = self._assemble_parts(problems)
        if fast is not None:
            return fast
        current: dict[Key, dict[str, Any]] = {}
        origins: dict[Key, str] = {}
        for path, state in self._files.items():
            rel = self._file_ref(path).name
            for index, (obj, line) in enumerate(state.objects):
                wrong = not_an_object(obj)
                if wrong is not None:
                    message = f"line {line}: document {index + 1} {wrong}"
                    problems.append(Problem(ref=self._file_ref(path), message=message))
                    continue
                key = key_of(obj)
                origins[key] = f"{rel}:{line}"
                if key in current:
                    problems.append(Problem(ref=_ref(key), message=f"defined twice; {rel}:{line} wins"))
                current[key] = obj
        objects = []
        for key, obj in current.items():
            validate = VALIDATORS.get(key[0])
            if validate is not None and self._valid.get(key) is not obj:  # the same object: valid
                try:
                    validate(obj)
                except InvalidObject as e:
                    previous = self._valid.get(key)
                    kept = "; the last valid version keeps serving" if previous else ""
                    problems.append(Problem(ref=_ref(key), message=f"invalid ({origins[key]}): {e}{kept}"))
                    if previous is not None:
                        objects.append(previous)
                    continue
            self._valid[key] = obj
            objects.append(obj)
        for key in set(self._valid) - current.keys():
            del self._valid[key]  # deleted from the files: gone for good
        return Loaded(ClusterSnapshot.of(objects), problems, origins)

    def _assemble_parts(self, problems: list[Problem]) -> Loaded | None:
        """`_assemble`'s answer from each file's part, when no key is in two files and every
        object checked is valid (the usual case); None otherwise. After a change of a few files,
        the last snapshot edited with their parts (`_edited`); else every part merged (C-level
        dict updates), checking the objects that are new."""
        parts: dict[Path, _Part] = {}
        for path, state in self._files.items():
            if state.part is None:
                state.part = self._part(path, state.objects)
            parts[path] = state.part
        loaded = self._edited(parts) if self._last is not None else None
        if loaded is None:
            loaded = self._merged(parts)
        self._last = (parts, loaded) if loaded is not None else None
        if loaded is not None:
            loaded.problems = problems + list(chain.from_iterable(part.problems for part in parts.values()))
        return loaded

    def _merged(self, parts: dict[Path, _Part]) -> Loaded | None:
        current: dict[Key, dict[str, Any]] = {}
        origins: dict[Key, str] = {}
        for part in parts.values():
            current.update(part.keyed)
            origins.update(part.origins)
        if len(current) != sum(len(part.keyed) for part in parts.values()):
            return None  # a key in two files: which wins, and the Problem, the long way
        valid = self._valid
        for part in parts.values():
            if not self._checked(part):
                return None  # the last valid version keeps serving: the long way
        for key in valid.keys() - current.keys():
            del valid[key]  # deleted from the files: gone for good
        return Loaded(ClusterSnapshot.merged(part.snapshot for part in parts.values()), [], Layered(origins))

    def _edited(self, parts: dict[Path, _Part]) -> Loaded | None:
        """The last snapshot with the parts of the files that changed, came or went since, when
        they hold few objects and no key of another file; None otherwise."""
        assert self._last is not None
        last_parts, last = self._last
        old = [part for path, part in last_parts.items() if parts.get(path) is not part]
        new = [part for path, part in parts.items() if last_parts.get(path) is not part]
        if sum(len(part.keyed) for part in chain(old, new)) > max(len(last.snapshot) // 8, 1000):
            return None  # merging every part again costs less
        removed = {key for part in old for key in part.keyed}
        upserted: dict[Key, dict[str, Any]] = {}
        table = last.snapshot.objects
        for part in new:
            for key, obj in part.keyed.items():
                if key in upserted or (key in table and key not in removed):
                    return None  # a key in two files: the long way
                upserted[key] = obj
        for part in new:
            if not self._checked(part):
                return None
        gone = removed - upserted.keys()
        for key in gone:
            self._valid.pop(key, None)
        assert isinstance(last.origins, Layered)  # as _merged and this make them
        origins = last.origins.edited(gone, {k: v for part in new for k, v in part.origins.items()})
        return Loaded(last.snapshot.edited(gone, upserted), [], origins)

    def _checked(self, part: _Part) -> bool:
        """Whether the objects of `part` that kinds in VALIDATORS check are valid (each object
        is checked once, then remembered as the last valid version of its key)."""
        valid = self._valid
        for key in part.checked:
            obj = part.keyed[key]
            if valid.get(key) is not obj:
                try:
                    VALIDATORS[key[0]](obj)
                except InvalidObject:
                    return False
                valid[key] = obj
        return True

    def _part(self, path: Path, objects: list[tuple[dict[str, Any], int]]) -> _Part:
        rel = self._file_ref(path).name
        part = _Part({}, {}, [], [], ClusterSnapshot())
        for index, (obj, line) in enumerate(objects):
            wrong = not_an_object(obj)
            if wrong is not None:
                message = f"line {line}: document {index + 1} {wrong}"
                part.problems.append(Problem(ref=self._file_ref(path), message=message))
                continue
            key = key_of(obj)
            part.origins[key] = f"{rel}:{line}"
            if key in part.keyed:
                part.problems.append(Problem(ref=_ref(key), message=f"defined twice; {rel}:{line} wins"))
            part.keyed[key] = obj
        part.checked = [key for key in part.keyed if key[0] in VALIDATORS]
        part.snapshot = ClusterSnapshot.of(part.keyed.values())
        return part

    def _file_ref(self, path: Path) -> ObjectRef:
        try:
            name = str(path.relative_to(self.directory))
        except ValueError:
            name = str(path)
        return ObjectRef(kind="File", name=name)

    async def run(self, publish: Callable[[Loaded], Awaitable[None]]) -> None:
        with gc_paused():
            loaded: Loaded | None = self.load()
        while True:
            if loaded is not None:
                await publish(loaded)
            if not self.watch:
                return
            await asyncio.sleep(self.interval)
            with gc_paused():  # a few stat calls when nothing changed; a new snapshot only when it did
                loaded = self._assemble() if self._scan() else None


def parse_documents(text: str) -> list[tuple[dict[str, Any], int]]:
    """Every document of a YAML (or JSON) stream with its first line; `kind: List` is flattened."""
    loader = _Loader(text)
    out: list[tuple[dict[str, Any], int]] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            line = node.start_mark.line + 1
            data = loader.construct_document(node)
            if data is None:
                continue
            if isinstance(data, dict) and data.get("kind") == "List" and isinstance(data.get("items"), list):
                out.extend((item, line) for item in data["items"])
            else:
                out.append((data, line))
    finally:
        loader.dispose()
    return out


def _yaml_message(error: Exception) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"cannot be parsed, its last readable version keeps serving: {where}{problem}"


def _ref(key: Key) -> ObjectRef:
    return ObjectRef(kind=key[0], namespace=key[1], name=key[2])
