"""passTLSClientCert: details of the client's verified certificate, sent on to the backend as headers.

Traefik 2/3's `spec.passTLSClientCert: {pem, info: {...}}` (`pkg/config/dynamic/middlewares.go`),
and what the Traefik 1.7 and passerelle annotations ask for, all read into one
`tls.clientcert.ClientCertSpec`; which headers it makes, and how they are spelled at each
compatibility level, is `tls.certinfo`'s. The data plane formats them once per TLS connection.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from passerelle.tls import clientcert
from passerelle.tls.clientcert import ClientCertSpec


@dataclass(frozen=True, slots=True, kw_only=True)
class PassTLSClientCert:
    kind: ClassVar[str] = "passTLSClientCert"

    spec: ClientCertSpec

    @classmethod
    def from_middleware(cls, body: Any) -> PassTLSClientCert:
        """The value of a Middleware's `spec.passTLSClientCert` (raises ValueError saying what is wrong)."""
        if not isinstance(body, Mapping):
            raise ValueError("must be an object with `pem` and/or `info`")
        return cls(spec=clientcert.from_middleware(body))

    def to_dict(self) -> dict[str, Any]:
        return self.spec.to_json()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PassTLSClientCert:
        return cls(spec=ClientCertSpec.from_json(data))
