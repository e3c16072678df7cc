"""Versions travel as small frames and reassemble into the same configuration."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest

from passerelle.model import ClientCA, DynamicConfig, PathMatch, PathType, Router, Server, Service, TlsConfig
from passerelle.model.delta import Delta
from passerelle.proxy.channel import FRAME_ITEMS, Channel, config_frames, delta_frames
from passerelle.proxy.worker import _assemble


def big_config(n: int, port: int = 80) -> DynamicConfig:
    prefix = PathMatch(type=PathType.PREFIX, value="/")
    return DynamicConfig(
        routers=tuple(
            Router(name=f"r{i}", service=f"s{i % 7}", host=f"h{i}.test", path=prefix) for i in range(n)
        ),
        services=tuple(
            Service(name=f"s{i}", servers=(Server(host="10.0.0.1", port=port),)) for i in range(7)
        ),
    )


def assemble(frames: list[dict], holder: object = None) -> Any:  # type: ignore[type-arg]
    async def run() -> Any:
        inbox: asyncio.Queue[dict] = asyncio.Queue()  # type: ignore[type-arg]
        for frame in frames[1:]:
            inbox.put_nowait(json.loads(json.dumps(frame)))  # as it crosses the socket
        begin = frames[0]
        holder_ = holder or SimpleNamespace(holds=False, tls_config=TlsConfig())
        return await _assemble(inbox, begin["version"], holder_, begin["tls"])  # type: ignore[arg-type]

    return asyncio.run(run())


def test_a_version_is_split_into_small_frames_and_reassembled() -> None:
    config = big_config(2 * FRAME_ITEMS + 3)
    frames = config_frames(5, config)
    assert [f["type"] for f in frames] == [
        "begin",
        "tls",
        "routers",
        "routers",
        "routers",
        "services",
        "commit",
    ]
    assert all(len(f.get("items", ())) <= FRAME_ITEMS for f in frames)
    assert frames[0]["base"] is None
    assert assemble(frames) == config


def test_a_change_set_travels_as_what_changed() -> None:
    new = big_config(FRAME_ITEMS + 10, port=81)
    delta = Delta(
        routers=new.routers[:3],
        removed_routers=("gone",),
        services=new.services[:1],
        removed_services=("old",),
        hosts={"h0.test": ("r0",), None: ()},
    )
    frames = delta_frames(6, 5, delta, None)
    assert frames[0] == {"type": "begin", "version": 6, "base": 5, "tls": False}
    assert [f["type"] for f in frames][1:] == ["routers", "services", "removed", "hosts", "commit"]
    assert assemble(frames) == (delta, None)
    tls = TlsConfig(client_cas=(ClientCA(options="mtls", pem="CA"),))
    assert assemble(delta_frames(7, 6, delta, tls)) == (delta, tls)


def test_tls_left_out_of_a_whole_version_is_the_one_held() -> None:
    held = DynamicConfig(tls=TlsConfig(client_cas=(ClientCA(options="mtls", pem="CA"),)))
    new = big_config(10, port=81)
    frames = config_frames(6, new, with_tls=False)
    assert "tls" not in [f["type"] for f in frames]
    got = assemble(frames, SimpleNamespace(holds=True, tls_config=held.tls))
    assert got == DynamicConfig(routers=new.routers, services=new.services, tls=held.tls)
    with pytest.raises(ValueError, match="has none yet"):
        assemble(frames)


def test_a_frame_of_another_version_is_refused() -> None:
    frames = config_frames(7, big_config(3))
    frames[2]["version"] = 8
    with pytest.raises(ValueError, match="frame of v8 inside v7"):
        assemble(frames)


def test_channel_framing_survives_arbitrary_splits() -> None:
    received: list[dict] = []  # type: ignore[type-arg]
    sender, receiver = Channel(received.append, lambda: None), Channel(received.append, lambda: None)
    wire = bytearray()
    sender.transport = SimpleNamespace(is_closing=lambda: False, write=wire.extend)  # type: ignore[assignment]
    for frame in config_frames(1, big_config(FRAME_ITEMS + 50)):
        assert sender.send(frame)
    for i in range(0, len(wire), 997):  # deliver in odd-sized pieces
        receiver.data_received(bytes(wire[i : i + 997]))
    assert [f["type"] for f in received] == ["begin", "tls", "routers", "routers", "services", "commit"]


def test_tls_state_travels_in_small_frames_only_when_asked() -> None:
    from passerelle.model import Certificate, HostOptions
    from passerelle.proxy.channel import CERTIFICATE_ITEMS

    certificates = tuple(
        Certificate(cert_pem=f"C{i}", key_pem=f"K{i}", names=(f"h{i}.test",), fingerprint=f"f{i}")
        for i in range(CERTIFICATE_ITEMS + 1)
    )
    tls = TlsConfig(
        certificates=certificates,
        hosts=(HostOptions(host="h1.test", options="mtls"),),
        client_cas=(ClientCA(options="mtls", pem="CA"),),
    )
    base = big_config(3)
    config = DynamicConfig(routers=base.routers, services=base.services, tls=tls)
    frames = config_frames(9, config)
    assert [f["type"] for f in frames][:4] == ["begin", "tls", "certificates", "certificates"]
    assert assemble(frames) == config
    lean = config_frames(10, config, with_tls=False)
    assert {"tls", "certificates"}.isdisjoint(f["type"] for f in lean)
    assert assemble(lean, SimpleNamespace(holds=True, tls_config=tls)) == config


def test_cluster_tls_options_travel_with_the_tls_state() -> None:
    import dataclasses
    import ssl

    from passerelle.model import HostOptions, TlsConfig
    from passerelle.tls.options import TlsOptions

    option = TlsOptions(
        name="team-mtls@kubernetescrd",
        min_version=ssl.TLSVersion.TLSv1_3,
        client_auth="RequireAnyClientCert",
        sni_strict=True,
        curves=("secp384r1",),
        source="TLSOption team/mtls",
    )
    tls = TlsConfig(hosts=(HostOptions(host="a.test", options=option.name),), options=(option,))
    config = dataclasses.replace(big_config(3), tls=tls)
    assert assemble(config_frames(8, config)) == config
