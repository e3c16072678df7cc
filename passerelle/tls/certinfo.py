"""Client-certificate header lines: a `ClientCertSpec` and the verified peer chain in, bytes out.

`client_cert_headers(spec, chain)` is pure and deterministic. `chain` is the DER of the client's
certificates, leaf first, as the TLS layer presented and verified them (Go's
`PeerCertificates`). It is meant to run once per connection and spec, and be cached.

Each level reproduces one implementation, from its source; where a detail is not obvious the
comment beside it cites where it comes from (also docs/client-certificates.md):

* traefik3   - pkg/middlewares/passtlsclientcert/pass_tls_client_cert.go (Traefik >= 2.9.4, 3.x)
* traefik1.7 - middlewares/tlsClientHeaders.go on the v1.7 branch (>= 1.7.7: issuer and DC)
* rfc9440    - RFC 9440 §2, RFC 8941 §3.3.5 (sf-binary) and §4.1.1 (list serialisation)
* nginx      - ingress-nginx's proxy_set_header lines over nginx's $ssl_client_verify,
               $ssl_client_s_dn / $ssl_client_i_dn (X509_NAME_print_ex with XN_FLAG_RFC2253)
               and $ssl_client_escaped_cert (PEM through ngx_escape_uri, URI component)

`STRIPPED` is every lower-cased name any level sets, plus its all-underscore spelling (which
CGI/WSGI backends fold into the same variable, the reason Traefik strips those too): the proxy
drops them from every client request, certificate or not, so a backend can trust them.
"""

from __future__ import annotations

import datetime
import ipaddress
from base64 import b64encode
from collections.abc import Callable, Sequence
from urllib.parse import quote, quote_plus

from cryptography import x509

from passerelle.tls.clientcert import ClientCertSpec, CompatLevel, DNFields, InfoFields
from passerelle.tls.dn import attribute_text, rfc2253

X_FORWARDED_TLS_CLIENT_CERT = b"X-Forwarded-Tls-Client-Cert"
X_FORWARDED_TLS_CLIENT_CERT_INFO = b"X-Forwarded-Tls-Client-Cert-Info"  # traefik3
X_FORWARDED_TLS_CLIENT_CERT_INFOS = b"X-Forwarded-Tls-Client-Cert-Infos"  # traefik1.7
CLIENT_CERT = b"Client-Cert"
CLIENT_CERT_CHAIN = b"Client-Cert-Chain"
SSL_CLIENT_VERIFY = b"ssl-client-verify"
SSL_CLIENT_SUBJECT_DN = b"ssl-client-subject-dn"
SSL_CLIENT_ISSUER_DN = b"ssl-client-issuer-dn"
SSL_CLIENT_CERT = b"ssl-client-cert"

_SET = (
    X_FORWARDED_TLS_CLIENT_CERT,
    X_FORWARDED_TLS_CLIENT_CERT_INFO,
    X_FORWARDED_TLS_CLIENT_CERT_INFOS,
    CLIENT_CERT,
    CLIENT_CERT_CHAIN,
    SSL_CLIENT_VERIFY,
    SSL_CLIENT_SUBJECT_DN,
    SSL_CLIENT_ISSUER_DN,
    SSL_CLIENT_CERT,
)
STRIPPED: frozenset[bytes] = frozenset(n.lower() for n in _SET) | frozenset(
    n.lower().replace(b"-", b"_") for n in _SET
)

Header = tuple[bytes, bytes]


def client_cert_headers(spec: ClientCertSpec, chain: Sequence[bytes]) -> list[Header]:
    """The header lines to add for a client that presented `chain` (DER, leaf first).

    An empty chain (no certificate) adds nothing, except `ssl-client-verify: NONE` at the nginx
    level, which is what ingress-nginx sends then. Raises ValueError if a DER blob is not a
    certificate `cryptography` can parse (the TLS layer already accepted it, so that is a bug
    or a library disagreement worth a log line, not a client error).
    """
    if not chain:
        return [(SSL_CLIENT_VERIFY, b"NONE")] if spec.level is CompatLevel.NGINX else []
    return _LEVELS[spec.level](spec, chain)


# -- traefik3 and traefik1.7 --------------------------------------------------------------------


def _traefik3(spec: ClientCertSpec, chain: Sequence[bytes]) -> list[Header]:
    out = []
    if spec.pem:
        # PEM-encode, then delete the BEGIN/END lines and every "\n": what is left is the bare
        # standard base64 of the DER. Not escaped since 2.9.4 (traefik/traefik#9412).
        out.append((X_FORWARDED_TLS_CLIENT_CERT, b",".join(b64encode(der) for der in chain)))
    if spec.info is not None:
        info = spec.info
        text = ",".join(_traefik3_fields(info, _load(der)) for der in chain)
        out.append((X_FORWARDED_TLS_CLIENT_CERT_INFO, _query_escape(text)))
    return out


def _traefik3_fields(info: InfoFields, cert: x509.Certificate) -> str:
    # Fixed order, ";" between fields, every value quoted, a field skipped when empty
    # (getCertInfo). Note: unlike 1.7, an empty SAN list drops the SAN field.
    parts = []
    if subject := _traefik_dn(
        cert.subject, info.subject, organizational_unit=info.subject.organizational_unit
    ):
        parts.append(f'Subject="{subject}"')
    if issuer := _traefik_dn(cert.issuer, info.issuer, organizational_unit=False):
        parts.append(f'Issuer="{issuer}"')
    if info.serial_number:
        parts.append(f'SerialNumber="{cert.serial_number}"')  # big.Int.String(): decimal
    if info.not_before:
        parts.append(f'NB="{_unix(cert.not_valid_before_utc)}"')
    if info.not_after:
        parts.append(f'NA="{_unix(cert.not_valid_after_utc)}"')
    if info.sans and (sans := _sans(cert)):
        parts.append(f'SAN="{",".join(sans)}"')
    return ";".join(parts)


def _traefik17(spec: ClientCertSpec, chain: Sequence[bytes]) -> list[Header]:
    out = []
    if spec.pem:
        # 1.7 query-escaped each certificate's base64 (+ / = -> %2B %2F %3D), then joined with ",".
        out.append(
            (X_FORWARDED_TLS_CLIENT_CERT, b",".join(_query_escape(b64encode(d).decode()) for d in chain))
        )
    if spec.info is not None:
        info = spec.info
        text = ";".join(_traefik17_fields(info, _load(der)) for der in chain)
        out.append((X_FORWARDED_TLS_CLIENT_CERT_INFOS, _query_escape(text)))
    return out


def _traefik17_fields(info: InfoFields, cert: x509.Certificate) -> str:
    # getXForwardedTLSClientCertInfo: "," between fields (and between SAN items), ";" between
    # certificates, only Subject/Issuer quoted, no certificate serial, no OU. SAN is written
    # even when the certificate has none ("SAN="), as 1.7's own tests expect.
    parts = []
    if subject := _traefik_dn(cert.subject, info.subject, organizational_unit=False):
        parts.append(f'Subject="{subject}"')
    if issuer := _traefik_dn(cert.issuer, info.issuer, organizational_unit=False):
        parts.append(f'Issuer="{issuer}"')
    if info.not_before:
        parts.append(f"NB={_unix(cert.not_valid_before_utc)}")
    if info.not_after:
        parts.append(f"NA={_unix(cert.not_valid_after_utc)}")
    if info.sans:
        parts.append(f"SAN={','.join(_sans(cert))}")
    return ",".join(parts)


_DC, _C, _ST, _L, _O, _OU, _SN, _CN = (
    "0.9.2342.19200300.100.1.25",
    "2.5.4.6",
    "2.5.4.8",
    "2.5.4.7",
    "2.5.4.10",
    "2.5.4.11",
    "2.5.4.5",
    "2.5.4.3",
)


def _traefik_dn(name: x509.Name, want: DNFields, *, organizational_unit: bool) -> str:
    """Go's pkix.Name as Traefik prints it: DC..., C..., ST..., L..., O..., OU..., SN, CN.

    Go's FillFromRDNSequence flattens multi-valued RDNs in encoded order, appends repeated
    C/ST/L/O/OU values in certificate order, and keeps only the last CN and serialNumber.
    Traefik writes `KEY=value` with no escaping at all, skips empty values (except DC, which it
    writes unconditionally), and never emits other attributes (emailAddress, UID, street...).
    """
    values: dict[str, list[str]] = {}
    for rdn in name.rdns:
        for attr in rdn:
            if (text := attribute_text(attr)) is not None:  # Go skips values that are not strings
                values.setdefault(attr.oid.dotted_string, []).append(text)
    parts = []
    if want.domain_component:
        parts += [f"DC={v}" for v in values.get(_DC, ())]
    for wanted, oid, key in (
        (want.country, _C, "C"),
        (want.province, _ST, "ST"),
        (want.locality, _L, "L"),
        (want.organization, _O, "O"),
        (organizational_unit, _OU, "OU"),
    ):
        if wanted:
            parts += [f"{key}={v}" for v in values.get(oid, ()) if v]
    for wanted, oid, key in ((want.serial_number, _SN, "SN"), (want.common_name, _CN, "CN")):
        if wanted and (last := values.get(oid, [""])[-1]):
            parts.append(f"{key}={last}")
    return ",".join(parts)


def _sans(cert: x509.Certificate) -> list[str]:
    """DNS names, then e-mail addresses, then IPs, then URIs (getSANs); other kinds are dropped."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    ips = [_go_ip(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return [
        *san.get_values_for_type(x509.DNSName),
        *san.get_values_for_type(x509.RFC822Name),
        *ips,
        *san.get_values_for_type(x509.UniformResourceIdentifier),
    ]


def _go_ip(ip: object) -> str:
    # net.IP.String(): RFC 5952 for IPv6 (as Python's str), dotted quad for IPv4-mapped IPv6.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _unix(when: datetime.datetime) -> int:
    # Traefik prints uint64(t.Unix()): a date before 1970 wraps around, and so does this.
    return ((when - _EPOCH) // datetime.timedelta(seconds=1)) % 2**64


def _query_escape(text: str) -> bytes:
    # Go's url.QueryEscape: all but A-Z a-z 0-9 - _ . ~ as %XX of the UTF-8 bytes (upper-case
    # hex), space as "+". quote_plus(safe="") is byte-identical (its always-safe set is the same).
    return quote_plus(text, safe="").encode("ascii")


# -- rfc9440 ------------------------------------------------------------------------------------


def _rfc9440(spec: ClientCertSpec, chain: Sequence[bytes]) -> list[Header]:
    # §2.2: Client-Cert is one sf-binary, ":" base64-with-padding ":" (RFC 8941 §3.3.5).
    # §2.3: Client-Cert-Chain is an sf-list of them, without the leaf, members joined by ", "
    # (RFC 8941 §4.1.1), sent only when there is something besides the leaf.
    out = [(CLIENT_CERT, _sf_binary(chain[0]))]
    if len(chain) > 1:
        out.append((CLIENT_CERT_CHAIN, b", ".join(_sf_binary(der) for der in chain[1:])))
    return out


def _sf_binary(der: bytes) -> bytes:
    return b":" + b64encode(der) + b":"


# -- nginx --------------------------------------------------------------------------------------


def _nginx(spec: ClientCertSpec, chain: Sequence[bytes]) -> list[Header]:
    # nginx's variables describe the leaf only. "SUCCESS": the caller hands over verified chains
    # only. An empty value is not sent at all (proxy_set_header drops empty headers), which is
    # what happens to the DN of a certificate with an empty subject.
    leaf = _load(chain[0])
    out = [(SSL_CLIENT_VERIFY, b"SUCCESS")]
    if subject := rfc2253(leaf.subject):
        out.append((SSL_CLIENT_SUBJECT_DN, subject.encode("ascii")))
    if issuer := rfc2253(leaf.issuer):
        out.append((SSL_CLIENT_ISSUER_DN, issuer.encode("ascii")))
    if spec.pem:
        # PEM_write_bio_X509 (64-column lines, BEGIN/END included, final "\n"), then
        # ngx_escape_uri(NGX_ESCAPE_URI_COMPONENT): over the PEM alphabet that escapes exactly
        # space + / = and "\n", as quote(safe="") does (%20, %2B, %2F, %3D, %0A).
        out.append((SSL_CLIENT_CERT, quote(_pem(chain[0]), safe="").encode("ascii")))
    return out


def _pem(der: bytes) -> str:
    body = b64encode(der).decode("ascii")
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN CERTIFICATE-----\n{lines}\n-----END CERTIFICATE-----\n"


def _load(der: bytes) -> x509.Certificate:
    return x509.load_der_x509_certificate(der)


_LEVELS: dict[CompatLevel, Callable[[ClientCertSpec, Sequence[bytes]], list[Header]]] = {
    CompatLevel.TRAEFIK3: _traefik3,
    CompatLevel.TRAEFIK17: _traefik17,
    CompatLevel.RFC9440: _rfc9440,
    CompatLevel.NGINX: _nginx,
}
