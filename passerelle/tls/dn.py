"""Distinguished names as OpenSSL prints them (pure): `rfc2253(name)` is nginx's $ssl_client_s_dn.

X509_NAME_print_ex(..., XN_FLAG_RFC2253) (OpenSSL's crypto/asn1/a_strex.c, charmap.h): attributes
last to first, OpenSSL's short names, RFC 2253 escapes with bytes outside printable ASCII as
\\XX, and a value it cannot print as text dumped as the hex of its DER. `attribute_text` reads a
value as Go and OpenSSL do (a T61String as Latin-1); certinfo.py's Traefik DNs use it too.
"""

from __future__ import annotations

from cryptography import x509

# OpenSSL's short names (OBJ_nid2sn), which XN_FLAG_FN_SN prints. An OID outside this table is
# printed dotted with its value dumped as #<DER hex>, as OpenSSL does for OIDs it does not know
# (XN_FLAG_DUMP_UNKNOWN_FIELDS); so a rarer OID OpenSSL does know would differ - see the docs.
_SHORT_NAMES = {
    "2.5.4.3": "CN",
    "2.5.4.4": "SN",  # surname; the DN serialNumber is "serialNumber"
    "2.5.4.5": "serialNumber",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.9": "street",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.12": "title",
    "2.5.4.13": "description",
    "2.5.4.15": "businessCategory",
    "2.5.4.17": "postalCode",
    "2.5.4.41": "name",
    "2.5.4.42": "GN",
    "2.5.4.43": "initials",
    "2.5.4.44": "generationQualifier",
    "2.5.4.46": "dnQualifier",
    "2.5.4.65": "pseudonym",
    "2.5.4.97": "organizationIdentifier",
    "0.9.2342.19200300.100.1.1": "UID",
    "0.9.2342.19200300.100.1.25": "DC",
    "1.2.840.113549.1.9.1": "emailAddress",
    "1.3.6.1.4.1.311.60.2.1.1": "jurisdictionL",
    "1.3.6.1.4.1.311.60.2.1.2": "jurisdictionST",
    "1.3.6.1.4.1.311.60.2.1.3": "jurisdictionC",
}
# ASN1_STRFLGS_ESC_2253 characters (crypto/asn1/charmap.h); "#" and " " only where noted below.
_ESCAPED = frozenset(b',+"\\<>;')


def rfc2253(name: x509.Name) -> str:
    """A DN as OpenSSL's X509_NAME_print_ex(..., XN_FLAG_RFC2253) writes it (nginx's $ssl_client_s_dn).

    XN_FLAG_DN_REV walks the attributes last to first - across RDNs *and* inside a multi-valued
    RDN - with "," between RDNs and "+" inside one (XN_FLAG_SEP_COMMA_PLUS), no spaces.
    """
    entries = [(index, attr) for index, rdn in enumerate(name.rdns) for attr in rdn]
    out: list[str] = []
    previous = -1
    for index, attr in reversed(entries):
        if previous != -1:
            out.append("+" if index == previous else ",")
        previous = index
        short = _SHORT_NAMES.get(attr.oid.dotted_string)
        if short is None:
            out.append(f"{attr.oid.dotted_string}={_der_dump(attr)}")
        elif (text := attribute_text(attr)) is not None:
            out.append(f"{short}={_rfc2253_value(text)}")
        else:  # a non-string value type: ASN1_STRFLGS_DUMP_UNKNOWN | DUMP_DER
            out.append(f"{short}={_der_dump(attr)}")
    return "".join(out)


def _rfc2253_value(value: str) -> str:
    # do_buf + do_esc_char with ASN1_STRFLGS_RFC2253: the value goes to UTF-8 (UTF8_CONVERT), and
    # every byte above 0x7F is then written as \XX (ESC_MSB) - so "Genève" is "Gen\C3\A8ve" -
    # as are control bytes and DEL (ESC_CTRL). The first character is checked with the
    # "first" flag (escapes "#" and " "), the last with the "last" flag (escapes " ") - and a
    # one-character value gets only the "last" one, so a lone "#" stays bare, as in OpenSSL.
    data = value.encode("utf-8")
    last = len(data) - 1
    out = []
    for i, byte in enumerate(data):
        if byte > 0x7E or byte < 0x20:
            out.append(f"\\{byte:02X}")
        elif byte in _ESCAPED:
            out.append("\\" + chr(byte))
        elif byte == 0x20 and (i == 0 or i == last):
            out.append("\\ ")
        elif byte == 0x23 and i == 0 and i != last:
            out.append("\\#")
        else:
            out.append(chr(byte))
    return "".join(out)


_T61STRING = 20


def attribute_text(attr: x509.NameAttribute[str | bytes]) -> str | None:
    """A string value as Go and OpenSSL read it, None for a value that is not a string.

    Both take a T61String's bytes as Latin-1; cryptography decodes them as UTF-8 (and refuses a
    certificate where that fails), so the bytes are recovered and read again.
    """
    if not isinstance(attr.value, str):
        return None
    if attr._type.value == _T61STRING:
        return attr.value.encode("utf-8").decode("latin-1")
    return attr.value


# How to get back the encoded bytes of a string value, by ASN.1 tag (T61String: see attribute_text).
_STRING_CODECS = {
    12: "utf-8",
    18: "ascii",
    19: "ascii",
    20: "utf-8",
    22: "ascii",
    26: "ascii",
    28: "utf-32-be",
    30: "utf-16-be",
}


def _der_dump(attr: x509.NameAttribute[str | bytes]) -> str:
    """ "#" and the upper-case hex of the value's DER (do_dump with ASN1_STRFLGS_DUMP_DER)."""
    tag = attr._type.value  # the ASN.1 tag the value was encoded with
    value = attr.value
    if isinstance(value, bytes):
        content = b"\x00" + value if tag == 3 else value  # BIT STRING: no unused bits
    else:
        content = value.encode(_STRING_CODECS.get(tag, "utf-8"))
    size = len(content)
    length = bytes([size]) if size < 0x80 else _long_length(size)
    return "#" + (bytes([tag]) + length + content).hex().upper()


def _long_length(size: int) -> bytes:
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw
