"""providers.kubernetes: defaults, validation, paths relative to the config file."""

from __future__ import annotations

from pathlib import Path

import pytest

from passerelle.settings import SettingsError, parse_settings


def test_defaults() -> None:
    kube = parse_settings("providers:\n  kubernetes: {}\n").providers.kubernetes
    assert kube is not None
    assert (kube.kubeconfig, kube.context, kube.namespaces, kube.labelSelector, kube.throttle) == (
        "",
        "",
        [],
        "",
        0.5,
    )
    assert kube.ingressEndpoint is not None and kube.ingressEndpoint.nodeSelector == "role=ingress"
    assert (
        kube.leaderElection.leaseDuration,
        kube.leaderElection.renewDeadline,
        kube.leaderElection.retryPeriod,
    ) == (15, 10, 2)
    assert kube.events is True


def test_relative_kubeconfig_is_relative_to_the_config_file(tmp_path: Path) -> None:
    settings = parse_settings("providers:\n  kubernetes: {kubeconfig: kube/config}\n", base=tmp_path)
    assert settings.providers.kubernetes is not None
    assert settings.providers.kubernetes.kubeconfig == str(tmp_path / "kube" / "config")


def test_classes_come_from_the_kubernetes_provider() -> None:
    settings = parse_settings(
        "providers:\n  kubernetes: {ingressClasses: [edge], ingressWithoutClass: false}\n"
    )
    options = settings.ingress_options()
    assert (options.ingress_classes, options.ingress_without_class) == (("edge",), False)


def test_ingress_endpoint_null_disables_status() -> None:
    kube = parse_settings("providers:\n  kubernetes: {ingressEndpoint: null}\n").providers.kubernetes
    assert kube is not None and kube.ingressEndpoint is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "providers:\n  manifests: {directory: m}\n  kubernetes: {}\n",
            ":3: providers: configure one of manifests and kubernetes",
        ),
        ("providers:\n  kubernetes: {namespace: [a]}\n", ":2: providers.kubernetes.namespace: unknown key"),
        ("providers:\n  kubernetes: {throttle: soon}\n", "providers.kubernetes.throttle"),
        (
            "providers:\n  kubernetes: {leaderElection: {leaseDuration: 5s, renewDeadline: 10s}}\n",
            "retryPeriod < renewDeadline < leaseDuration",
        ),
        (
            "providers:\n  kubernetes: {ingressEndpoint: {nodeSelector: 'role in x'}}\n",
            "is not a label requirement",
        ),
        ("providers:\n  kubernetes: {ingressEndpoint: {publishedService: lb}}\n", "must be namespace/name"),
    ],
)
def test_mistakes_name_the_key(text: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_settings(text)


def test_offline_commands_say_they_cannot_read_a_cluster() -> None:
    from passerelle.api.offline import offline_view

    with pytest.raises(SettingsError, match="only providers.manifests can be read"):
        offline_view(parse_settings("providers:\n  kubernetes: {}\n"))
