"""The API's views without a running router: a configuration file and its manifests, translated once.

`passerelle explain` and `passerelle check` use this: the same translation (kube/ingress.py), the
same static context and the same `VersionView` the API renders, so an offline answer is the
API's answer for the same files. The default certificate, when none is configured, is generated
afresh here: its fingerprint differs from a running router's.
"""

from __future__ import annotations

from pathlib import Path

from passerelle.api.context import Context
from passerelle.api.views import VersionView
from passerelle.kube.ingress import translate
from passerelle.kube.manifests import ManifestsProvider
from passerelle.settings import Settings, SettingsError


def offline_view(settings: Settings) -> VersionView:
    """Translate the manifests `settings` points at; SettingsError if it names no directory, or
    one that is not there (as `passerelle check` refuses it)."""
    manifests = settings.providers.manifests
    if manifests is None:
        if settings.providers.kubernetes is not None:  # offline means no cluster to ask
            raise SettingsError(
                "offline, only providers.manifests can be read; this configuration uses providers.kubernetes "
                "(ask the running router instead: its /api/explain)"
            )
        raise SettingsError("no provider configured: set providers.manifests.directory")
    directory = Path(manifests.directory)
    if not directory.is_dir():
        raise SettingsError(f"manifests directory {directory}: not a directory")
    loaded = ManifestsProvider(directory, watch=False).load()
    config, problems = translate(loaded.snapshot, settings.ingress_options())
    return VersionView(
        number=0,
        config=config,
        problems=[*loaded.problems, *problems],
        origins=loaded.origins,
        context=Context.of(settings, settings.tls_static()),
    )
