"""Golden tests for client-certificate headers and the three configuration dialects.

The certificates are the committed PEM files in fixtures/ (see fixtures/make.py). Every expected
header is written by hand from the formats in shared/reference/traefik-and-peers.md §3 and the
sources cited in passerelle/tls/certinfo.py - never produced by the code under test. Where an
expectation needs the certificate's base64 it is cut out of the PEM *text* of the fixture, a
different path from the DER the code works on.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import pathlib
import re
from urllib.parse import unquote, unquote_plus

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from passerelle.tls.certinfo import STRIPPED, client_cert_headers
from passerelle.tls.clientcert import (
    ClientCertSpec,
    ClientCertSpecError,
    CompatLevel,
    DNFields,
    InfoFields,
    SubjectFields,
    field_names,
    from_annotations,
    from_middleware,
    from_passerelle_annotations,
    from_traefik17_annotation,
)
from passerelle.tls.dn import rfc2253

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


def pem_text(name: str) -> str:
    return (FIXTURES / f"{name}.pem").read_text()


def der(name: str) -> bytes:
    return x509.load_pem_x509_certificate(pem_text(name).encode()).public_bytes(serialization.Encoding.DER)


def body(name: str) -> str:
    """The PEM minus its BEGIN/END lines and newlines: Traefik's `sanitize`, done on the text."""
    lines = pem_text(name).strip().splitlines()
    assert lines[0] == "-----BEGIN CERTIFICATE-----" and lines[-1] == "-----END CERTIFICATE-----"
    return "".join(lines[1:-1])


LEAF, INTERMEDIATE, MINIMAL, REFERENCE = der("leaf"), der("intermediate"), der("minimal"), der("reference")

ALL_SUBJECT = SubjectFields(
    country=True,
    province=True,
    locality=True,
    organization=True,
    organizational_unit=True,
    common_name=True,
    serial_number=True,
    domain_component=True,
)
ALL_ISSUER = DNFields(
    country=True,
    province=True,
    locality=True,
    organization=True,
    common_name=True,
    serial_number=True,
    domain_component=True,
)
ALL_INFO = InfoFields(
    not_after=True, not_before=True, sans=True, serial_number=True, subject=ALL_SUBJECT, issuer=ALL_ISSUER
)


def headers(
    level: CompatLevel, chain: list[bytes], *, pem: bool = True, info: InfoFields | None = ALL_INFO
) -> dict:
    lines = client_cert_headers(ClientCertSpec(level=level, pem=pem, info=info), chain)
    names = [name for name, _ in lines]
    assert len(names) == len(set(names)), "a header must not be set twice"
    return {name.decode(): value.decode("ascii") for name, value in lines}


# -- the worked example of the reference, §3.4, quoted verbatim ---------------------------------


def test_reference_worked_example_traefik3() -> None:
    got = headers(CompatLevel.TRAEFIK3, [REFERENCE], pem=False)
    assert got == {
        "X-Forwarded-Tls-Client-Cert-Info": "Subject%3D%22DC%3Dch%2CDC%3Dcern%2CC%3DCH%2CST%3DGeneva%2CL%3DMeyrin"
        "%2CO%3DCERN%2COU%3DIT%2CSN%3D12345%2CCN%3DJohn+Doe%22%3BIssuer%3D%22C%3DCH%2CO%3DCERN%2CCN%3DCERN+Grid"
        "+Certification+Authority%22%3BSerialNumber%3D%224660%22%3BNB%3D%221577836800%22%3BNA%3D%221609459200%22"
        "%3BSAN%3D%22jdoe.cern.ch%2Cjohn.doe%40cern.ch%2C10.0.0.1%2Cspiffe%3A%2F%2Fcern.ch%2Fuser%2Fjdoe%22"
    }


def test_reference_worked_example_traefik17_with_the_cern_annotation() -> None:
    spec = from_traefik17_annotation(
        """
        pem: false
        infos:
          notafter: true
          notbefore: true
          sans: true
          subject:
            country: true
            province: true
            locality: true
            organization: true
            commonname: true
            serialnumber: true
        """
    )
    lines = client_cert_headers(spec, [REFERENCE])
    assert lines == [
        (
            b"X-Forwarded-Tls-Client-Cert-Infos",
            b"Subject%3D%22C%3DCH%2CST%3DGeneva%2CL%3DMeyrin%2CO%3DCERN%2CSN%3D12345%2CCN%3DJohn+Doe%22%2CNB%3D"
            b"1577836800%2CNA%3D1609459200%2CSAN%3Djdoe.cern.ch%2Cjohn.doe%40cern.ch%2C10.0.0.1%2Cspiffe%3A%2F%2F"
            b"cern.ch%2Fuser%2Fjdoe",
        )
    ]


def test_reference_traefik17_with_issuer_and_domaincomponent() -> None:
    # "If issuer and domaincomponent are also enabled in >= 1.7.7, DC=ch,DC=cern, is prepended
    # inside Subject and ,Issuer="C=CH,O=CERN,CN=CERN Grid Certification Authority" follows it."
    got = headers(CompatLevel.TRAEFIK17, [REFERENCE], pem=False)
    assert unquote_plus(got["X-Forwarded-Tls-Client-Cert-Infos"]) == (
        'Subject="DC=ch,DC=cern,C=CH,ST=Geneva,L=Meyrin,O=CERN,SN=12345,CN=John Doe",'
        'Issuer="C=CH,O=CERN,CN=CERN Grid Certification Authority",'
        "NB=1577836800,NA=1609459200,SAN=jdoe.cern.ch,john.doe@cern.ch,10.0.0.1,spiffe://cern.ch/user/jdoe"
    )


# -- traefik3 on the rich leaf and a chain of two -----------------------------------------------

LEAF_V3 = (
    'Subject="DC=ch,DC=cern,C=CH,C=FR,ST=Genève,ST=Ain,L=Meyrin,L=Saint-Genis-Pouilly,O=CERN,O=CERN, Geneva,'
    'OU=IT,OU=Zürich Office,SN=12345,CN=John Doe";'
    'Issuer="DC=ch,DC=cern,CN=CERN Grid Certification Authority";'
    'SerialNumber="4660";NB="1704067200";NA="2019731400";'
    'SAN="jdoe.cern.ch,*.jdoe.cern.ch,john.doe@cern.ch,10.0.0.1,2001:db8::1,spiffe://cern.ch/user/jdoe"'
)
INTERMEDIATE_V3 = (
    'Subject="DC=ch,DC=cern,CN=CERN Grid Certification Authority";Issuer="C=CH,O=CERN,CN=CERN Root CA 2";'
    'SerialNumber="4096";NB="1577836800";NA="2208988800"'  # no SAN extension: no SAN field
)


def test_traefik3_leaf_every_field() -> None:
    got = headers(CompatLevel.TRAEFIK3, [LEAF])
    assert got["X-Forwarded-Tls-Client-Cert"] == body("leaf")  # raw base64, not escaped (>= 2.9.4)
    info = got["X-Forwarded-Tls-Client-Cert-Info"]
    assert unquote_plus(info) == LEAF_V3
    # Go's QueryEscape: UTF-8 bytes as upper-case %XX, space as "+", "*" escaped, "~._-" not.
    assert "ST%3DGen%C3%A8ve%2C" in info and "OU%3DZ%C3%BCrich+Office" in info
    assert "O%3DCERN%2C+Geneva%2C" in info and "%2A.jdoe.cern.ch" in info and "2001%3Adb8%3A%3A1" in info
    assert re.fullmatch(r"[A-Za-z0-9_.~+%-]*", info)


def test_traefik3_chain_of_two() -> None:
    got = headers(CompatLevel.TRAEFIK3, [LEAF, INTERMEDIATE])
    assert got["X-Forwarded-Tls-Client-Cert"] == body("leaf") + "," + body("intermediate")
    assert unquote_plus(got["X-Forwarded-Tls-Client-Cert-Info"]) == LEAF_V3 + "," + INTERMEDIATE_V3


def test_traefik3_minimal_certificate() -> None:
    got = headers(CompatLevel.TRAEFIK3, [MINIMAL])
    assert unquote_plus(got["X-Forwarded-Tls-Client-Cert-Info"]) == (
        'Subject="CN=minimal";Issuer="C=CH,O=CERN,CN=CERN Root CA 2";SerialNumber="7";NB="1577836800";NA="2208988800"'
    )


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        (InfoFields(subject=SubjectFields(organization=True)), 'Subject="O=CERN,O=CERN, Geneva"'),
        (InfoFields(subject=SubjectFields(organizational_unit=True)), 'Subject="OU=IT,OU=Zürich Office"'),
        (InfoFields(subject=SubjectFields(domain_component=True)), 'Subject="DC=ch,DC=cern"'),
        # The DN serialNumber is SN=..., the certificate serial a separate decimal field.
        (InfoFields(serial_number=True, subject=SubjectFields(serial_number=True)), 'Subject="SN=12345";SerialNumber="4660"'),
        # Only the last CN is kept (Go's pkix.Name); the UID beside it in the same RDN is never sent.
        (InfoFields(subject=SubjectFields(common_name=True)), 'Subject="CN=John Doe"'),
        # The leaf's issuer has no C: an empty DN drops the whole Issuer field.
        (InfoFields(issuer=DNFields(country=True), not_after=True), 'NA="2019731400"'),
        (InfoFields(issuer=DNFields(common_name=True), not_before=True), 'Issuer="CN=CERN Grid Certification Authority";NB="1704067200"'),
        (InfoFields(sans=True), 'SAN="jdoe.cern.ch,*.jdoe.cern.ch,john.doe@cern.ch,10.0.0.1,2001:db8::1,spiffe://cern.ch/user/jdoe"'),
        # Present but empty: Traefik still sets the header, to "".
        (InfoFields(), ""),
    ],
)  # fmt: skip
def test_traefik3_field_selection(info: InfoFields, expected: str) -> None:
    got = headers(CompatLevel.TRAEFIK3, [LEAF], pem=False, info=info)
    assert list(got) == ["X-Forwarded-Tls-Client-Cert-Info"]
    assert unquote_plus(got["X-Forwarded-Tls-Client-Cert-Info"]) == expected


def test_traefik3_pem_only_and_nothing() -> None:
    assert headers(CompatLevel.TRAEFIK3, [LEAF], info=None) == {"X-Forwarded-Tls-Client-Cert": body("leaf")}
    assert headers(CompatLevel.TRAEFIK3, [LEAF], pem=False, info=None) == {}


def test_traefik3_empty_info_in_a_chain_keeps_its_place() -> None:
    # The intermediate has no SAN: its entry is empty but the "," separator stays (getCertInfo).
    got = headers(CompatLevel.TRAEFIK3, [MINIMAL, INTERMEDIATE], pem=False, info=InfoFields(sans=True))
    assert got == {"X-Forwarded-Tls-Client-Cert-Info": "%2C"}


# -- traefik1.7 -----------------------------------------------------------------------------------

LEAF_V17 = (
    'Subject="DC=ch,DC=cern,C=CH,C=FR,ST=Genève,ST=Ain,L=Meyrin,L=Saint-Genis-Pouilly,O=CERN,O=CERN, Geneva,'
    'SN=12345,CN=John Doe",'
    'Issuer="DC=ch,DC=cern,CN=CERN Grid Certification Authority",'
    "NB=1704067200,NA=2019731400,"
    "SAN=jdoe.cern.ch,*.jdoe.cern.ch,john.doe@cern.ch,10.0.0.1,2001:db8::1,spiffe://cern.ch/user/jdoe"
)


def escape17(b64: str) -> str:
    return b64.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")


def test_traefik17_chain_of_two() -> None:
    got = headers(CompatLevel.TRAEFIK17, [LEAF, INTERMEDIATE])
    # 1.7 carries the certificate in -Cert (not -Infos), each one query-escaped, "," between.
    assert got["X-Forwarded-Tls-Client-Cert"] == escape17(body("leaf")) + "," + escape17(body("intermediate"))
    # No OU and no certificate serial in 1.7 even when asked for; ";" between certificates;
    # SAN= is written even for a certificate without SANs.
    assert unquote_plus(got["X-Forwarded-Tls-Client-Cert-Infos"]) == (
        LEAF_V17 + ';Subject="DC=ch,DC=cern,CN=CERN Grid Certification Authority",'
        'Issuer="C=CH,O=CERN,CN=CERN Root CA 2",NB=1577836800,NA=2208988800,SAN='
    )
    assert "X-Forwarded-Tls-Client-Cert-Info" not in got


def test_traefik17_minimal_partial() -> None:
    info = InfoFields(not_after=True, sans=True, subject=SubjectFields(organization=True))
    got = headers(CompatLevel.TRAEFIK17, [MINIMAL], pem=False, info=info)
    assert got == {"X-Forwarded-Tls-Client-Cert-Infos": "NA%3D2208988800%2CSAN%3D"}


# -- rfc9440 --------------------------------------------------------------------------------------


def test_rfc9440_leaf_and_chain() -> None:
    got = headers(CompatLevel.RFC9440, [LEAF, INTERMEDIATE], pem=False, info=None)
    assert got == {"Client-Cert": f":{body('leaf')}:", "Client-Cert-Chain": f":{body('intermediate')}:"}


def test_rfc9440_leaf_only_has_no_chain_header() -> None:
    assert headers(CompatLevel.RFC9440, [MINIMAL]) == {"Client-Cert": f":{body('minimal')}:"}


@given(st.lists(st.binary(min_size=1, max_size=64), min_size=1, max_size=4))
def test_rfc9440_values_decode_back_to_the_der(chain: list[bytes]) -> None:
    # The rfc9440 level never parses the certificates, so any bytes stand in for DER here.
    lines = dict(client_cert_headers(ClientCertSpec(level=CompatLevel.RFC9440), chain))
    leaf = lines[b"Client-Cert"]
    assert leaf[:1] == leaf[-1:] == b":" and base64.b64decode(leaf[1:-1], validate=True) == chain[0]
    members = lines[b"Client-Cert-Chain"].split(b", ") if len(chain) > 1 else []
    assert b"Client-Cert-Chain" in lines or len(chain) == 1
    assert [base64.b64decode(m.strip(b":"), validate=True) for m in members] == chain[1:]


# -- nginx ----------------------------------------------------------------------------------------

LEAF_RFC2253 = (
    "UID=jdoe+CN=John Doe,emailAddress=john.doe@cern.ch,serialNumber=12345,OU=Z\\C3\\BCrich Office,OU=IT,"
    "O=CERN\\, Geneva,O=CERN,L=Saint-Genis-Pouilly,L=Meyrin,ST=Ain,ST=Gen\\C3\\A8ve,C=FR,C=CH,DC=cern,DC=ch"
)


def test_nginx_leaf() -> None:
    got = headers(CompatLevel.NGINX, [LEAF, INTERMEDIATE])
    escaped = (
        pem_text("leaf")
        .replace("+", "%2B")
        .replace("/", "%2F")
        .replace("=", "%3D")
        .replace(" ", "%20")
        .replace("\n", "%0A")
    )
    assert got == {
        "ssl-client-verify": "SUCCESS",
        "ssl-client-subject-dn": LEAF_RFC2253,
        "ssl-client-issuer-dn": "CN=CERN Grid Certification Authority,DC=cern,DC=ch",
        "ssl-client-cert": escaped,  # the leaf only, BEGIN/END lines included
    }
    assert got["ssl-client-cert"].startswith("-----BEGIN%20CERTIFICATE-----%0AMII")
    assert got["ssl-client-cert"].endswith("%0A-----END%20CERTIFICATE-----%0A")
    assert unquote(got["ssl-client-cert"]) == pem_text("leaf")


def test_nginx_without_pem_and_without_certificate() -> None:
    assert headers(CompatLevel.NGINX, [MINIMAL], pem=False) == {
        "ssl-client-verify": "SUCCESS",
        "ssl-client-subject-dn": "CN=minimal",
        "ssl-client-issuer-dn": "CN=CERN Root CA 2,O=CERN,C=CH",
    }
    assert client_cert_headers(ClientCertSpec(level=CompatLevel.NGINX, pem=True), []) == [
        (b"ssl-client-verify", b"NONE")
    ]


@pytest.mark.parametrize("level", list(CompatLevel)[:3])
def test_no_certificate_no_headers(level: CompatLevel) -> None:
    assert client_cert_headers(ClientCertSpec(level=level, pem=True, info=ALL_INFO), []) == []


def name_cert(text: str) -> bytes:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(32))
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])
    when = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    builder = x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
    cert = builder.serial_number(1).not_valid_before(when).not_valid_after(when).sign(key, None)
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize(
    ("cn", "expected"),
    [
        ("#lead", "CN=\\#lead"),
        ("#", "CN=#"),  # one character: only the "last" escapes apply, as in OpenSSL
        (" pad ", "CN=\\ pad\\ "),
        ('a,b+c"d\\e<f>g;h=i#', 'CN=a\\,b\\+c\\"d\\\\e\\<f\\>g\\;h=i#'),
        ("tab\tdel\x7f", "CN=tab\\09del\\7F"),
    ],
)
def test_rfc2253_escaping(cn: str, expected: str) -> None:
    assert rfc2253(x509.load_der_x509_certificate(name_cert(cn)).subject) == expected


def rfc4514_unescape(value: str) -> str:
    out = bytearray()
    i = 0
    while i < len(value):
        if value[i] == "\\":
            pair = value[i + 1 : i + 3]
            if re.fullmatch(r"[0-9A-F]{2}", pair):
                out.append(int(pair, 16))
                i += 3
                continue
            out += value[i + 1].encode()
            i += 2
            continue
        out += value[i].encode()
        i += 1
    return out.decode("utf-8")


# X.509 bounds a CommonName to 64 characters, which cryptography checks as UTF-8 bytes.
cn_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40).filter(
    lambda s: len(s.encode()) <= 64
)


@settings(max_examples=60, deadline=None)
@given(cn_text)
def test_escapes_round_trip(cn: str) -> None:
    chain = [name_cert(cn)]
    info = InfoFields(subject=SubjectFields(common_name=True))
    v3 = headers(CompatLevel.TRAEFIK3, chain, pem=False, info=info)["X-Forwarded-Tls-Client-Cert-Info"]
    assert re.fullmatch(r"[A-Za-z0-9_.~+%-]*", v3)
    assert unquote_plus(v3) == f'Subject="CN={cn}"'
    dn = headers(CompatLevel.NGINX, chain, pem=False)["ssl-client-subject-dn"]
    assert re.fullmatch(r"[\x20-\x7e]*", dn)  # always printable ASCII: safe in a header
    assert dn.startswith("CN=") and rfc4514_unescape(dn[3:]) == cn


# -- anti-spoofing --------------------------------------------------------------------------------


def test_stripped_covers_every_header_any_level_sets() -> None:
    chain = [LEAF, INTERMEDIATE]
    set_somewhere = {
        name.lower()
        for level in CompatLevel
        for name, _ in client_cert_headers(ClientCertSpec(level=level, pem=True, info=ALL_INFO), chain)
    }
    assert len(set_somewhere) == 9
    assert set_somewhere <= STRIPPED
    assert {b"x_forwarded_tls_client_cert", b"ssl_client_verify", b"client_cert_chain"} <= STRIPPED
    assert all(name == name.lower() for name in STRIPPED) and len(STRIPPED) == 18


# -- the Traefik 1.7 annotation -------------------------------------------------------------------


def test_traefik17_annotation_full() -> None:
    spec = from_traefik17_annotation(
        "pem: true\ninfos:\n  notafter: true\n  notbefore: true\n  sans: true\n"
        "  subject: {country: true, province: true, locality: true, organization: true, commonname: true,"
        " serialnumber: true, domaincomponent: true}\n"
        "  issuer: {commonname: true, domaincomponent: true}\n"
    )
    assert spec == ClientCertSpec(
        level=CompatLevel.TRAEFIK17,
        pem=True,
        info=InfoFields(
            not_after=True,
            not_before=True,
            sans=True,
            subject=SubjectFields(
                country=True,
                province=True,
                locality=True,
                organization=True,
                common_name=True,
                serial_number=True,
                domain_component=True,
            ),
            issuer=DNFields(common_name=True, domain_component=True),
        ),
    )


@pytest.mark.parametrize(
    ("value", "spec"),
    [
        ("pem: true", ClientCertSpec(level=CompatLevel.TRAEFIK17, pem=True)),
        ("pem: true\ninfos:", ClientCertSpec(level=CompatLevel.TRAEFIK17, pem=True)),  # null: no info header
        ("infos: {}", ClientCertSpec(level=CompatLevel.TRAEFIK17, info=InfoFields())),
        (
            "infos: {sans: true, subject: }",
            ClientCertSpec(level=CompatLevel.TRAEFIK17, info=InfoFields(sans=True)),
        ),
    ],
)
def test_traefik17_annotation_small(value: str, spec: ClientCertSpec) -> None:
    assert from_traefik17_annotation(value) == spec


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "pem: true\ninfos: {notAfter: true}",
            "pass-client-tls-cert: infos: unknown key 'notAfter'; did you mean 'notafter'? "
            "(Traefik 1.7 silently ignored such keys; its keys are all lower-case)",
        ),
        (
            "info: {sans: true}",
            "pass-client-tls-cert: unknown key 'info'; did you mean 'infos'? "
            "(Traefik 1.7 silently ignored such keys; its keys are all lower-case)",
        ),
        (
            "infos: {subject: {organizationalunit: true}}",
            "pass-client-tls-cert: infos.subject: unknown key 'organizationalunit'; did you mean 'organization'? "
            "(Traefik 1.7 silently ignored such keys; its keys are all lower-case)",
        ),
        ("pem: 'true'", "pass-client-tls-cert: pem must be true or false, not the string 'true'"),
        ("infos: {subject: {country: 1}}", "pass-client-tls-cert: infos.subject.country must be true or false, not int 1"),
        ("infos: [sans]", "pass-client-tls-cert: infos must be a mapping with keys notafter, notbefore, sans, subject, issuer, not a list"),
        ("true", "pass-client-tls-cert must be a mapping with keys pem, infos, not bool True"),
        ("pem: [", "pass-client-tls-cert is not valid YAML: while parsing a flow node"),
    ],
)  # fmt: skip
def test_traefik17_annotation_errors(value: str, message: str) -> None:
    with pytest.raises(ClientCertSpecError) as caught:
        from_traefik17_annotation(value)
    assert str(caught.value) == message


# -- the Traefik 2/3 Middleware -------------------------------------------------------------------


def test_middleware() -> None:
    spec = from_middleware(
        {
            "pem": True,
            "info": {
                "notAfter": True,
                "serialNumber": True,
                "subject": {"organizationalUnit": True, "commonName": True, "domainComponent": False},
                "issuer": {"country": True},
            },
        }
    )
    assert spec == ClientCertSpec(
        pem=True,
        info=InfoFields(
            not_after=True,
            serial_number=True,
            subject=SubjectFields(organizational_unit=True, common_name=True),
            issuer=DNFields(country=True),
        ),
    )
    assert spec.level is CompatLevel.TRAEFIK3
    assert from_middleware({}) == ClientCertSpec()
    assert from_middleware({"pem": True}, level=CompatLevel.NGINX) == ClientCertSpec(
        level=CompatLevel.NGINX, pem=True
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"infos": {}}, "passTLSClientCert: unknown key 'infos'; did you mean 'info'?"),
        ({"info": {"issuer": {"organizationalUnit": True}}}, "passTLSClientCert: info.issuer: unknown key 'organizationalUnit'; did you mean 'organization'?"),
        ({"info": {"notafter": True}}, "passTLSClientCert: info: unknown key 'notafter'; did you mean 'notAfter'?"),
        ({"pem": "yes"}, "passTLSClientCert: pem must be true or false, not the string 'yes'"),
        ({"info": {"subject": True}}, "passTLSClientCert: info.subject must be a mapping with keys country, province, locality, organization, commonName, serialNumber, domainComponent, organizationalUnit, not bool True"),
        ({"bogus": 1}, "passTLSClientCert: unknown key 'bogus'; expected one of pem, info"),
    ],
)  # fmt: skip
def test_middleware_errors(spec: dict, message: str) -> None:
    with pytest.raises(ClientCertSpecError) as caught:
        from_middleware(spec)
    assert str(caught.value) == message


# -- passerelle's own annotations -----------------------------------------------------------------

TRAEFIK17_ALL = InfoFields(
    not_after=True,
    not_before=True,
    sans=True,
    subject=SubjectFields(**{f: True for f in ("country", "province", "locality", "organization", "common_name", "serial_number", "domain_component")}),
    issuer=ALL_ISSUER,
)  # fmt: skip


@pytest.mark.parametrize(
    ("level", "fields", "spec"),
    [
        (None, None, ClientCertSpec(pem=True, info=ALL_INFO)),
        ("traefik3", "pem", ClientCertSpec(pem=True)),
        ("traefik3", "subject.commonName, notAfter,,", ClientCertSpec(info=InfoFields(not_after=True, subject=SubjectFields(common_name=True)))),
        (None, "issuer", ClientCertSpec(info=InfoFields(issuer=ALL_ISSUER))),
        ("traefik1.7", None, ClientCertSpec(level=CompatLevel.TRAEFIK17, pem=True, info=TRAEFIK17_ALL)),
        ("traefik1.7", "info", ClientCertSpec(level=CompatLevel.TRAEFIK17, info=TRAEFIK17_ALL)),
        (" nginx ", None, ClientCertSpec(level=CompatLevel.NGINX, pem=True)),
        ("nginx", "pem", ClientCertSpec(level=CompatLevel.NGINX, pem=True)),
        ("rfc9440", None, ClientCertSpec(level=CompatLevel.RFC9440)),
    ],
)  # fmt: skip
def test_passerelle_annotations(level: str | None, fields: str | None, spec: ClientCertSpec) -> None:
    assert from_passerelle_annotations(level, fields) == spec


@pytest.mark.parametrize(
    ("level", "fields", "message"),
    [
        ("traefik2", None, "passerelle.io/client-cert-headers must be one of traefik3, traefik1.7, rfc9440, nginx, not the string 'traefik2'"),
        (None, "subject.cn", "passerelle.io/client-cert-fields: unknown field 'subject.cn'; did you mean 'subject.commonName'?"),
        (None, "issuer.OU", "passerelle.io/client-cert-fields: unknown field 'issuer.OU'; did you mean 'issuer.organization'?"),
        (None, "commonName", "passerelle.io/client-cert-fields: unknown field 'commonName'; did you mean 'subject.commonName'?"),
        ("traefik1.7", "subject.organizationalUnit", "passerelle.io/client-cert-fields: 'subject.organizationalUnit' cannot be sent at level traefik1.7: Traefik 1.7 had no certificate serialNumber and no organizationalUnit"),
        ("nginx", "subject", "passerelle.io/client-cert-fields: 'subject' cannot be sent at level nginx: nginx always sends ssl-client-verify and the two DNs; only pem adds ssl-client-cert"),
        ("rfc9440", "pem", "passerelle.io/client-cert-fields: 'pem' cannot be sent at level rfc9440: rfc9440 always sends Client-Cert and Client-Cert-Chain and nothing else"),
        (None, " , ", "passerelle.io/client-cert-fields is empty; name at least one field, e.g. 'pem'"),
    ],
)  # fmt: skip
def test_passerelle_annotation_errors(level: str | None, fields: str | None, message: str) -> None:
    with pytest.raises(ClientCertSpecError) as caught:
        from_passerelle_annotations(level, fields)
    assert str(caught.value) == message


def test_field_names_are_traefik3_spellings() -> None:
    names = field_names()
    assert names[:5] == ("pem", "notAfter", "notBefore", "sans", "serialNumber")
    assert "subject.organizationalUnit" in names and "issuer.organizationalUnit" not in names
    assert names[-3:] == ("info", "subject", "issuer")


# -- choosing between the Ingress annotations -----------------------------------------------------

V17 = "pem: true"


@pytest.mark.parametrize(
    ("annotations", "spec"),
    [
        ({}, None),
        ({"kubernetes.io/ingress.class": "traefik"}, None),
        ({"traefik.ingress.kubernetes.io/pass-client-tls-cert": V17}, ClientCertSpec(level=CompatLevel.TRAEFIK17, pem=True)),
        # 1.7 looked the bare prefix up first.
        ({"ingress.kubernetes.io/pass-client-tls-cert": V17, "traefik.ingress.kubernetes.io/pass-client-tls-cert": "pem: false"},
         ClientCertSpec(level=CompatLevel.TRAEFIK17, pem=True)),
        # The level annotation moves a 1.7 selection to another format, unchanged.
        ({"ingress.kubernetes.io/pass-client-tls-cert": V17, "passerelle.io/client-cert-headers": "traefik3"}, ClientCertSpec(pem=True)),
        # passerelle's fields win over the 1.7 annotation.
        ({"ingress.kubernetes.io/pass-client-tls-cert": V17, "passerelle.io/client-cert-fields": "sans"}, ClientCertSpec(info=InfoFields(sans=True))),
        ({"passerelle.io/client-cert-headers": "nginx"}, ClientCertSpec(level=CompatLevel.NGINX, pem=True)),
    ],
)  # fmt: skip
def test_from_annotations(annotations: dict[str, str], spec: ClientCertSpec | None) -> None:
    assert from_annotations(annotations) == spec


def test_from_annotations_reports_the_bad_one() -> None:
    with pytest.raises(ClientCertSpecError, match="^pass-client-tls-cert: pem must be true or false"):
        from_annotations({"ingress.kubernetes.io/pass-client-tls-cert": "pem: 1"})
    with pytest.raises(ClientCertSpecError, match="^passerelle.io/client-cert-headers must be one of"):
        from_annotations(
            {"ingress.kubernetes.io/pass-client-tls-cert": V17, "passerelle.io/client-cert-headers": "x"}
        )


# -- the spec as a value --------------------------------------------------------------------------

flags = st.booleans()
dn_fields = st.builds(
    DNFields,
    country=flags,
    province=flags,
    locality=flags,
    organization=flags,
    common_name=flags,
    serial_number=flags,
    domain_component=flags,
)
subject_fields = st.builds(
    SubjectFields,
    country=flags,
    province=flags,
    locality=flags,
    organization=flags,
    organizational_unit=flags,
    common_name=flags,
    serial_number=flags,
    domain_component=flags,
)
specs = st.builds(
    ClientCertSpec,
    level=st.sampled_from(CompatLevel),
    pem=flags,
    info=st.none()
    | st.builds(
        InfoFields,
        not_after=flags,
        not_before=flags,
        sans=flags,
        serial_number=flags,
        subject=subject_fields,
        issuer=dn_fields,
    ),
)


@given(specs)
def test_json_round_trip_and_hashing(spec: ClientCertSpec) -> None:
    data = json.loads(json.dumps(spec.to_json()))
    again = ClientCertSpec.from_json(data)
    assert again == spec and hash(again) == hash(spec)
    assert {spec: 1}[again] == 1


def test_to_json_shape() -> None:
    data = ClientCertSpec(level=CompatLevel.TRAEFIK17, pem=True, info=InfoFields(sans=True)).to_json()
    assert data["level"] == "traefik1.7" and data["pem"] is True
    assert data["info"]["sans"] is True and data["info"]["notAfter"] is False
    assert (
        data["info"]["subject"]["organizationalUnit"] is False
        and "organizationalUnit" not in data["info"]["issuer"]
    )
    assert ClientCertSpec().to_json() == {"level": "traefik3", "pem": False, "info": None}
    with pytest.raises(ClientCertSpecError, match="^level must be one of"):
        ClientCertSpec.from_json({"pem": True})


# -- Go's corner cases, reproduced ----------------------------------------------------------------


def odd_cert(*, not_before: datetime.datetime, sans: list[x509.GeneralName]) -> bytes:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(32))
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "odd")])
    builder = x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
    builder = builder.serial_number(1).not_valid_before(not_before).not_valid_after(not_before)
    builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, None).public_bytes(serialization.Encoding.DER)


def test_go_corner_cases() -> None:
    chain = [
        odd_cert(
            not_before=datetime.datetime(1969, 12, 31, 23, 59, 59, tzinfo=datetime.UTC),
            sans=[x509.IPAddress(ipaddress.ip_address("::ffff:10.0.0.1")), x509.IPAddress(ipaddress.ip_address("2001:db8:0:0:1:0:0:1"))],
        )
    ]  # fmt: skip
    info = InfoFields(not_before=True, sans=True)
    got = unquote_plus(
        headers(CompatLevel.TRAEFIK3, chain, pem=False, info=info)["X-Forwarded-Tls-Client-Cert-Info"]
    )
    # uint64(t.Unix()) of -1 wraps; net.IP prints IPv4-mapped IPv6 as a dotted quad, and IPv6
    # per RFC 5952 (the first of two equal runs of zeros is the one shortened).
    assert got == 'NB="18446744073709551615";SAN="10.0.0.1,2001:db8::1:0:0:1"'


def test_unparseable_der() -> None:
    spec = ClientCertSpec(pem=True, info=InfoFields(sans=True))
    with pytest.raises(ValueError):
        client_cert_headers(spec, [b"not a certificate"])
    # Levels that only carry the bytes do not parse them.
    assert client_cert_headers(ClientCertSpec(pem=True), [b"\x00\x01"]) == [
        (b"X-Forwarded-Tls-Client-Cert", b"AAE=")
    ]
