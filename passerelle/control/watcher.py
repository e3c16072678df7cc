"""ConfigWatcher: newest snapshot in, translated and deduplicated configuration versions out.

Translation runs in a thread of its own at a lower scheduling priority (`TRANSLATION_NICENESS`):
at 10,000 Ingresses a version costs the control plane a good part of a second of CPU, and on a
machine whose cores the workers keep busy, that second should come out of idle time, not out of
requests' latency. A version then takes longer to arrive under load; traffic does not wait for it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields

from passerelle.kube.incremental import Translator
from passerelle.kube.ingress import IngressOptions
from passerelle.kube.manifests import Loaded
from passerelle.memory import gc_paused, settle
from passerelle.model import Certificate, DynamicConfig, Problem
from passerelle.model.delta import Delta, between

log = logging.getLogger("passerelle.watcher")

# Linux niceness of the translation thread (per thread on Linux): weight 110 against 1024 for a
# worker at 0, so a busy worker gets about 90% of a shared core while a version is translated.
TRANSLATION_NICENESS = 10


@dataclass(frozen=True, slots=True, kw_only=True)
class Version:
    number: int
    config: DynamicConfig
    problems: tuple[Problem, ...]
    origins: Mapping[tuple[str, str, str], str]
    # The DynamicConfig fields that differ from version `base`, found in the translation thread
    # so that listeners need not compare 20,000 routers again. None: not known, compare.
    base: int = 0
    changed: frozenset[str] | None = None
    # The routers and services that differ from version `base`, by name (or `whole`: a change
    # set cannot carry it). None: not known.
    delta: Delta | None = None


def delta_changes(delta: Delta, before: DynamicConfig, after: DynamicConfig) -> frozenset[str]:
    """changes(), knowing `delta`: only the TLS states are compared."""
    names = {"routers"} if delta.routers or delta.removed_routers else set()
    if delta.services_changed:
        names.add("services")
    if delta.middlewares:
        names.add("middlewares")
    if before.tls != after.tls:
        names.add("tls")
    return frozenset(names)


def changes(before: DynamicConfig | None, after: DynamicConfig) -> frozenset[str]:
    """The names of the DynamicConfig fields whose values differ (all of them without `before`)."""
    names = [f.name for f in fields(DynamicConfig) if f.compare]
    if before is None:
        return frozenset(names)
    return frozenset(name for name in names if getattr(before, name) != getattr(after, name))


Listener = Callable[[Version], None]
# (raw translation, merged with contributions, problems, version compared with, changed, generation,
# the change set from the previous raw translation to this one, or None)
_Translated = tuple[
    DynamicConfig, DynamicConfig, list[Problem], Version | None, frozenset[str], int, Delta | None
]


class ConfigWatcher:
    def __init__(self, options: IngressOptions, listeners: list[Listener], *, throttle: float = 0.05) -> None:
        self._translator = Translator(options)
        self._listeners = listeners
        self._throttle = throttle
        self._latest: Loaded | None = None
        self._wake = asyncio.Event()
        self.current: Version | None = None
        self._reported: set[Problem] = set()
        # Other sources' certificates and Problems (the ACME controller), merged into every version.
        self._extra: dict[str, tuple[tuple[Certificate, ...], tuple[Problem, ...]]] = {}
        self._generation = 0  # of _extra: a translation merged with older extras is merged again
        self._raw: tuple[Loaded, DynamicConfig, list[Problem]] | None = None
        self._raw_whole = False  # the versions made of it go whole (Delta.whole)
        self._current_raw: DynamicConfig | None = None  # the raw translation `current` was made of
        # Relative to this (the event loop's) thread; absolute, so a pooled thread is not lowered twice.
        self._niceness = min(19, os.getpriority(os.PRIO_PROCESS, 0) + TRANSLATION_NICENESS)

    async def publish(self, loaded: Loaded) -> None:
        """Called by a provider; only the newest snapshot is kept, so bursts coalesce."""
        self._latest = loaded
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self._throttle)
            self._wake.clear()
            loaded, self._latest = self._latest, None
            if loaded is not None:
                try:
                    translated = await asyncio.to_thread(self._translate_yielding, loaded, self.current)
                except Exception:  # a fault in translation: never the end of every later update
                    log.exception(
                        "translating the configuration failed; v%s keeps serving",
                        self.current.number if self.current else "none",
                    )
                    continue
                first = self.current is None
                if self._publish(loaded, *translated) is not None and first:
                    settle()

    def apply(self, loaded: Loaded) -> Version | None:
        """Translate and publish in the caller's thread (what `run` does, for tests and tools)."""
        return self._publish(loaded, *self._translate(loaded, self.current))

    def contribute(
        self, name: str, *, certificates: tuple[Certificate, ...] = (), problems: tuple[Problem, ...] = ()
    ) -> Version | None:
        """Set source `name`'s certificates (served after the cluster's: a Secret's wins for a name)
        and Problems, and publish them with the last translation; the new Version if one was made."""
        if self._extra.get(name) == (certificates, problems):
            return None
        self._extra[name] = (certificates, problems)
        self._generation += 1
        if self._raw is None:
            return None
        loaded, raw, found = self._raw
        config = self._merged(raw)
        current = self.current
        if current is None:
            return self._publish(loaded, raw, config, found, current, changes(None, config), self._generation)
        if self._raw_whole:  # Gateway API routes: no change set carries them
            delta = Delta(whole=True)
            changed = changes(current.config, config)
        else:  # the same routers and services as what is live when it was made of this translation
            delta = Delta() if raw is self._current_raw else between(current.config, config)
            changed = delta_changes(delta, current.config, config)
        return self._publish(loaded, raw, config, found, current, changed, self._generation, delta)

    def _merged(self, raw: DynamicConfig) -> DynamicConfig:
        extra = tuple(c for certificates, _ in self._extra.values() for c in certificates)
        if not extra:
            return raw
        return dataclasses.replace(
            raw, tls=dataclasses.replace(raw.tls, certificates=raw.tls.certificates + extra)
        )

    def _translate(self, loaded: Loaded, current: Version | None) -> _Translated:
        with gc_paused():
            generation = self._generation
            before = self._raw[1] if self._raw is not None else None
            raw, problems = self._translator.translate(loaded.snapshot)
            config = self._merged(raw)
            delta = self._translator.delta
            if delta is not None and delta.whole:  # sent whole: compared field by field only
                changed = changes(current.config if current is not None else None, config)
                return raw, config, problems, current, changed, generation, delta
            if current is None:
                return raw, config, problems, current, changes(None, config), generation, None
            if delta is None or before is None or before is not self._current_raw:
                delta = between(current.config, config)  # not a change of what is live: compare
            return (
                raw,
                config,
                problems,
                current,
                delta_changes(delta, current.config, config),
                generation,
                delta,
            )

    def _translate_yielding(self, loaded: Loaded, current: Version | None) -> _Translated:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self._niceness)
        except OSError:  # a sandbox that forbids it: translate at normal priority
            pass
        return self._translate(loaded, current)

    def _publish(
        self,
        loaded: Loaded,
        raw: DynamicConfig,
        config: DynamicConfig,
        problems: list[Problem],
        compared: Version | None,
        changed: frozenset[str],
        generation: int,
        delta: Delta | None = None,
    ) -> Version | None:
        self._raw = (loaded, raw, problems)
        self._raw_whole = delta is not None and delta.whole
        if generation != self._generation:  # contributions changed while this was translated
            config = self._merged(raw)
            compared = None
        problems = loaded.problems + problems + [p for _, extra in self._extra.values() for p in extra]
        self._log_problems(problems, loaded.origins)
        if compared is not self.current or compared is None:  # published meanwhile, or re-merged
            current = self.current.config if self.current else None
            if current is None:
                changed, delta = changes(None, config), None
            else:
                # the translator's delta is against the version it translated from: reused only
                # when that version is still live (compared None: only the contributions changed)
                if delta is not None and delta.whole:
                    changed = changes(current, config)
                else:
                    delta = delta if delta is not None and compared is None else between(current, config)
                    changed = delta_changes(delta, current, config)
        if self.current is not None and not changed:
            self.current = Version(
                number=self.current.number, config=config, problems=tuple(problems), origins=loaded.origins
            )
            self._current_raw = raw
            return None
        version = Version(
            number=(self.current.number + 1 if self.current else 1),
            config=config,
            problems=tuple(problems),
            origins=loaded.origins,
            base=self.current.number if self.current else 0,
            changed=changed,
            delta=delta,
        )
        for listener in self._listeners:
            try:
                listener(version)
            except Exception:
                log.exception(
                    "configuration v%d was not applied; v%s keeps serving",
                    version.number,
                    self.current.number if self.current else "none",
                )
                return None
        self.current = version
        self._current_raw = raw
        log.info(
            "configuration v%d applied: %d routers, %d services, %d problems",
            version.number, len(config.routers), len(config.services), len(problems),
        )  # fmt: skip
        return version

    def _log_problems(self, problems: list[Problem], origins: Mapping[tuple[str, str, str], str]) -> None:
        current = set(problems)
        for problem in problems:
            if problem not in self._reported:
                ref = problem.ref
                where = origins.get((ref.kind, ref.namespace, ref.name))
                log.warning("%s%s", problem, f" ({where})" if where else "")
        self._reported = current
