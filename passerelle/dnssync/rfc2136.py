"""RFC 2136 dynamic updates with TSIG (RFC 8945), state read by AXFR (RFC 5936), via dnspython.

`read` transfers the whole zone over TCP, signed with the TSIG key, and keeps A, AAAA, CNAME and
TXT sets. A zone whose SOA serial is the one its last transfer saw, with nothing written since, is
not transferred again (the serial changes with every update, RFC 1035 §3.3.13, RFC 2136 §3.6),
except every `full_transfer_every` reads, which catches edits that did not bump it. `apply` sends
UPDATE messages over TCP: each change carries its prerequisite (§2.4.2
"RRset exists, value dependent" with the `before` records, or §2.4.3 "RRset does not exist"), then
deletes the set and adds the new records, so a message either applies whole or not at all
(§3.2, §3.4). An address change also requires the name's ownership TXT as read (present, value
dependent), so a name taken over by another owner since the read is not overwritten. Changes are
grouped by name and names packed into messages of up to `batch_size` changes and
MAX_MESSAGE_BYTES bytes; when a batch is refused on a prerequisite, its names are retried one
message each so one moved name does not hold back the others, and the moved names are reported
as a Conflict. Messages are sent one after the other: when one fails, those before it stay
applied, and the error carries them (`ProviderError.applied`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from itertools import groupby

import dns.asyncquery
import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.tsig
import dns.update
import dns.xfr
import dns.zone

from passerelle.dnssync.provider import Conflict, ProviderError, Refused, Unreachable
from passerelle.dnssync.records import (
    ADDRESS_RRTYPES,
    Change,
    RRset,
    ZoneState,
    rrset,
    txt_strings,
    txt_value,
)
from passerelle.dnssync.tsig import ALGORITHMS as ALGORITHM_NAMES
from passerelle.dnssync.tsig import secret_error

ALGORITHMS = {
    "hmac-sha256": dns.tsig.HMAC_SHA256,
    "hmac-sha384": dns.tsig.HMAC_SHA384,
    "hmac-sha512": dns.tsig.HMAC_SHA512,
    "hmac-sha224": dns.tsig.HMAC_SHA224,
    "hmac-sha1": dns.tsig.HMAC_SHA1,
    "hmac-md5": dns.tsig.HMAC_MD5,
}
assert set(ALGORITHMS) == set(ALGORITHM_NAMES)
KEPT_TYPES = frozenset({"A", "AAAA", "CNAME", "TXT"})
# Rcodes that mean "a prerequisite failed" (RFC 2136 §2.2, §3.2.1).
_PREREQUISITE_RCODES = frozenset(
    {dns.rcode.YXDOMAIN, dns.rcode.YXRRSET, dns.rcode.NXDOMAIN, dns.rcode.NXRRSET}
)
# An UPDATE's records are kept under this many bytes: TCP's length prefix allows 65535, and the
# header, zone section and TSIG signature need room too.
MAX_MESSAGE_BYTES = 32768
_TSIG_ERRORS = (
    dns.tsig.PeerBadKey,
    dns.tsig.PeerBadSignature,
    dns.tsig.PeerBadTime,
    dns.tsig.PeerBadTruncation,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Rfc2136Options:
    server: str
    port: int = 53
    key_name: str = ""  # "": unsigned (a server that allows updates by address)
    secret: str = field(default="", repr=False)  # base64, as in BIND's `key { secret "..." }`
    algorithm: str = "hmac-sha256"
    timeout: float = 5.0
    batch_size: int = 50
    full_transfer_every: int = 10  # reads; between, an unchanged SOA serial reuses the last transfer

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"TSIG algorithm {self.algorithm!r} is not one of {', '.join(ALGORITHMS)}")
        if error := secret_error(self.key_name, self.secret):
            raise ValueError(error)


@dataclass(frozen=True, slots=True, kw_only=True)
class Transferred:
    """A zone's last transfer: its SOA serial, its state, and the reads it has answered."""

    serial: int
    state: ZoneState
    reads: int = 1


class Rfc2136Provider:
    def __init__(self, options: Rfc2136Options) -> None:
        self.options = options
        self._last: dict[str, Transferred] = {}  # by zone; dropped by every apply to the zone
        self._keyring: dict[dns.name.Name, dns.tsig.Key] | None = None
        self._keyname: dns.name.Name | None = None
        if options.key_name:
            self._keyname = dns.name.from_text(options.key_name)
            self._keyring = {
                self._keyname: dns.tsig.Key(self._keyname, options.secret, ALGORITHMS[options.algorithm])
            }

    def describe(self) -> str:
        o = self.options
        where = f"[{o.server}]:{o.port}" if ":" in o.server else f"{o.server}:{o.port}"
        return f"rfc2136 {where} ({f'TSIG key {o.key_name}, {o.algorithm}' if o.key_name else 'unsigned'})"

    async def read(self, zone: str) -> ZoneState:
        last = self._last.get(zone)
        if last is not None and last.reads < self.options.full_transfer_every:
            if await self._serial(zone) == last.serial:
                self._last[zone] = replace(last, reads=last.reads + 1)
                return last.state
        self._last.pop(zone, None)
        transferred = await self._transfer(zone)
        self._last[zone] = transferred
        return transferred.state

    async def _serial(self, zone: str) -> int | None:
        """The zone's SOA serial as the server answers it now; None when it answers no SOA."""
        query = dns.message.make_query(zone, dns.rdatatype.SOA)
        if self._keyring is not None:
            query.use_tsig(self._keyring, self._keyname, algorithm=ALGORITHMS[self.options.algorithm])
        with self._errors(f"SOA query of zone {zone}"):
            response = await dns.asyncquery.tcp(
                query, await self._where(), timeout=self.options.timeout, port=self.options.port
            )
        if response.rcode() != dns.rcode.NOERROR:
            return None  # then the transfer says what is wrong
        for answer in response.answer:
            if answer.rdtype == dns.rdatatype.SOA and answer.name == dns.name.from_text(zone):
                return int(answer[0].serial)
        return None

    async def _transfer(self, zone: str) -> Transferred:
        origin = dns.name.from_text(zone)
        transferred = dns.zone.Zone(origin)
        query, _ = dns.xfr.make_query(
            transferred,
            keyring=self._keyring,
            keyname=self._keyname,
            keyalgorithm=ALGORITHMS[self.options.algorithm],
        )
        with self._errors(f"transfer (AXFR) of zone {zone}"):
            await dns.asyncquery.inbound_xfr(
                await self._where(), transferred, query, port=self.options.port, timeout=self.options.timeout,
                lifetime=self.options.timeout * 6,
            )  # fmt: skip
        state = await asyncio.to_thread(_state, zone, origin, transferred)  # a large zone: off the event loop
        return Transferred(serial=int(transferred.get_soa().serial), state=state)

    async def apply(self, zone: str, changes: Sequence[Change]) -> int:
        self._last.pop(zone, None)  # written (or maybe, if it fails): the next read transfers
        names = by_host(changes)
        sent = 0
        moved: list[str] = []
        applied: list[Change] = []
        try:
            for batch in _batches(
                names, self.options.batch_size, MAX_MESSAGE_BYTES, lambda g: _size(zone, g)
            ):
                sent += 1
                flat = [c for group in batch for c in group]
                if await self._send(zone, flat):
                    applied.extend(flat)
                    continue
                if len(batch) == 1:
                    moved.append(batch[0][0].host)
                    continue
                for group in batch:  # isolate the names whose state moved
                    sent += 1
                    if await self._send(zone, group):
                        applied.extend(group)
                    else:
                        moved.append(group[0].host)
        except ProviderError as e:
            e.applied = tuple(applied)  # the messages before the failure did change the zone
            raise
        if moved:
            raise Conflict(
                f"zone {zone} changed since it was read ({', '.join(moved)}); it will be read again",
                applied=tuple(applied),
            )
        return sent

    async def _send(self, zone: str, changes: list[Change]) -> bool:
        """One UPDATE message; False when a prerequisite failed."""
        update = _message(zone, changes, self._keyring, self._keyname, ALGORITHMS[self.options.algorithm])
        with self._errors(f"update of zone {zone}"):
            response = await dns.asyncquery.tcp(
                update, await self._where(), timeout=self.options.timeout, port=self.options.port
            )
        rcode = response.rcode()
        if rcode == dns.rcode.NOERROR:
            return True
        if rcode in _PREREQUISITE_RCODES:
            return False
        raise self._refusal(f"update of zone {zone}", dns.rcode.to_text(rcode))

    async def _where(self) -> str:
        """The server's address: given, or looked up each time (a name may move)."""
        try:
            return ipaddress.ip_address(self.options.server).compressed
        except ValueError:
            pass
        loop = asyncio.get_running_loop()
        try:
            found = await loop.getaddrinfo(self.options.server, self.options.port, type=socket.SOCK_STREAM)
        except OSError as e:
            raise Unreachable(
                f"{self.describe()}: cannot resolve {self.options.server}: {e.strerror or e}"
            ) from None
        return str(found[0][4][0])

    def _refusal(self, what: str, rcode: str) -> ProviderError:
        where = self.describe()
        if rcode in ("REFUSED", "NOTAUTH"):
            hint = " (check the TSIG key and the server's allow-update/allow-transfer)"
            return Refused(f"{what}: {where} answered {rcode}{hint}")
        if rcode == "SERVFAIL":
            return Unreachable(f"{what}: {where} answered SERVFAIL")
        return Refused(f"{what}: {where} answered {rcode}")

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Maps dnspython's and the socket's exceptions to the provider's tree, once, here."""
        where = self.describe()
        try:
            yield
        except ProviderError:
            raise
        except dns.tsig.PeerBadTime:
            raise Refused(
                f"{what}: {where} rejected the TSIG signature's time (BadTime): this host's clock and the "
                f"server's differ by more than the allowed fudge (300 s): check NTP on both"
            ) from None
        except _TSIG_ERRORS as e:
            name = type(e).__name__.removeprefix("Peer")
            raise Refused(
                f"{what}: {where} rejected the TSIG signature ({name}): check tsigKeyName, tsigSecret and "
                f"tsigAlgorithm against the server's key"
            ) from None
        except dns.xfr.TransferError as e:
            raise self._refusal(what, dns.rcode.to_text(e.rcode)) from None
        except dns.exception.Timeout:
            raise Unreachable(f"{what}: {where} did not answer within {self.options.timeout:g}s") from None
        except (OSError, EOFError) as e:
            reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
            raise Unreachable(f"{what}: {where}: {reason}") from None
        except dns.exception.DNSException as e:
            raise Refused(f"{what}: {where}: {e}") from None


def _state(zone: str, origin: dns.name.Name, transferred: dns.zone.Zone) -> ZoneState:
    out = []
    for name, rdataset in transferred.iterate_rdatasets():
        rtype = dns.rdatatype.to_text(rdataset.rdtype)
        if rtype not in KEPT_TYPES:
            continue
        absolute = name.derelativize(origin).to_text(omit_final_dot=True).lower()
        out.append(rrset(absolute, rtype, rdataset.ttl, [_value(rtype, rd) for rd in rdataset]))
    return ZoneState(zone=zone, rrsets=tuple(sorted(out)))


def by_host(changes: Sequence[Change]) -> list[list[Change]]:
    """Changes grouped by name, a name's ownership TXT with it: they go in one message, so an
    address is never published without its owner, nor an owner left without its addresses."""
    ordered = sorted(changes, key=lambda c: (c.host, c.name, c.type))
    return [list(group) for _, group in groupby(ordered, key=lambda c: c.host)]


def _message(
    zone: str,
    changes: Sequence[Change],
    keyring: dict[dns.name.Name, dns.tsig.Key] | None = None,
    keyname: dns.name.Name | None = None,
    algorithm: dns.name.Name = dns.tsig.HMAC_SHA256,
) -> dns.update.UpdateMessage:
    """The UPDATE for `changes`: prerequisites (§2.4), then deletes and adds (§2.5)."""
    update = dns.update.UpdateMessage(zone, keyring=keyring, keyname=keyname, keyalgorithm=algorithm)
    own = {c.name for c in changes}
    guards = {c.guard for c in changes if c.guard is not None and c.guard.name not in own}
    for guard in sorted(guards):  # the name is still ours (its TXT unchanged since the read)
        update.present(dns.name.from_text(guard.name), *_rdatas(guard))
    for change in changes:
        name = dns.name.from_text(change.name)
        if change.before is None:
            update.absent(name, change.type)
            if change.type in ADDRESS_RRTYPES:  # a CNAME would make the server ignore the add (§3.4.2.2)
                update.absent(name, "CNAME")
        else:
            update.present(name, *_rdatas(change.before))
            update.delete(name, change.type)
        if change.after is not None:
            update.add(name, change.after.ttl, *_rdatas(change.after))
    return update


def _size(zone: str, group: Sequence[Change]) -> int:
    """What `group` adds to an UPDATE's wire size, at most (names not compressed against others)."""
    return len(_message(zone, group).to_wire()) - len(_message(zone, ()).to_wire())


def _batches(
    names: list[list[Change]], size: int, max_bytes: int, measure: Callable[[list[Change]], int]
) -> Iterator[list[list[Change]]]:
    """Names packed into messages of at most `size` changes and `max_bytes` bytes of records (a
    name too large alone goes alone)."""
    batch: list[list[Change]] = []
    count = used = 0
    for group in names:
        need = measure(group)
        if batch and (count + len(group) > size or used + need > max_bytes):
            yield batch
            batch, count, used = [], 0, 0
        batch.append(group)
        count += len(group)
        used += need
    if batch:
        yield batch


def _value(rtype: str, rdata: dns.rdata.Rdata) -> str:
    if rtype in ("A", "AAAA"):
        return ipaddress.ip_address(rdata.to_text()).compressed
    if rtype == "TXT":
        return txt_value(rdata.strings)  # type: ignore[attr-defined]
    return rdata.to_text().lower().rstrip(".") if rtype == "CNAME" else rdata.to_text()


def _rdatas(records: RRset) -> list[dns.rdata.Rdata]:
    rdtype = dns.rdatatype.from_text(records.type)
    if records.type == "TXT":
        return [dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, rdtype, txt_strings(v)) for v in records.values]
    return [dns.rdata.from_text(dns.rdataclass.IN, rdtype, v) for v in records.values]
