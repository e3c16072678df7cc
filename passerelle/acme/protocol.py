"""RFC 8555 through the `acme` library: account, order, challenges, finalize, download (blocking).

The controller runs these calls in a thread. An order is two halves around the challenge
publication: `begin` creates the order and picks one challenge per authorization (HTTP-01 when
the resolver has httpChallenge, else TLS-ALPN-01), returning what every replica must answer;
`complete` tells the CA to validate, polls, finalizes with a fresh key's CSR and downloads the
chain (the `preferredChain` one when the CA offers alternates). Every failure is one `AcmeError`
(kind, message for people, the CA's Retry-After). The `acme` library dropped TLS-ALPN-01 in
certbot 3, so its challenge type is registered here: the response is an empty object (RFC 8737
§3) and the validation certificate is made by `alpn_certificate`.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import random
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from acme import challenges as acme_challenges
from acme import client, errors, messages
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID, ObjectIdentifier
from josepy.jwa import ES256
from josepy.jwk import JWK, JWKEC

from passerelle import __version__
from passerelle.acme import ari
from passerelle.acme.records import HTTP_01, TLS_ALPN_01, Account, Challenge
from passerelle.tls.store import self_signed

ACME_IDENTIFIER = ObjectIdentifier("1.3.6.1.5.5.7.1.31")  # id-pe-acmeIdentifier, RFC 8737 §6.1
ACME_TLS_ALPN = "acme-tls/1"
_PEM = serialization.Encoding.PEM


@acme_challenges.ChallengeResponse.register
class TLSALPN01Response(acme_challenges.KeyAuthorizationChallengeResponse):
    typ = TLS_ALPN_01


@acme_challenges.Challenge.register
class TLSALPN01(acme_challenges.KeyAuthorizationChallenge):
    response_cls = TLSALPN01Response
    typ = TLS_ALPN_01

    def validation(self, account_key: JWK, **unused: Any) -> str:
        return self.key_authorization(account_key)


class AcmeError(Exception):
    """kind: "unreachable" (network, TLS, timeouts), "rateLimited", "challenge" (validation
    failed), "ca" (any other refusal). retry_after: seconds the CA asked us to wait, or 0."""

    def __init__(self, kind: str, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientOptions:
    ca_server: str
    email: str = ""
    ca_bundle: str | bool = True  # a PEM file for requests' `verify`, or the system's trust
    eab_kid: str = ""
    eab_hmac: str = ""
    key_type: str = "EC256"
    preferred_chain: str = ""
    timeout: float = 120.0
    http01: bool = True
    tlsalpn01: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Pending:
    """An order whose challenges must be answered before `complete`."""

    names: tuple[str, ...]
    challenges: tuple[Challenge, ...]
    order: messages.OrderResource = field(repr=False)
    key_pem: str = field(repr=False)
    answers: tuple[tuple[messages.ChallengeBody, acme_challenges.ChallengeResponse], ...] = field(repr=False)


class _Network(client.ClientNetwork):
    """Remembers the last response, for the Retry-After of an error (RFC 8555 §6.6)."""

    last: requests.Response | None = None

    def _send_request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        self.last = super()._send_request(method, url, *args, **kwargs)
        return self.last


def new_certificate_key(key_type: str) -> str:
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    if key_type == "EC256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif key_type == "EC384":
        key = ec.generate_private_key(ec.SECP384R1())
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[3:]))
    pkcs8 = serialization.PrivateFormat.PKCS8
    return key.private_bytes(_PEM, pkcs8, serialization.NoEncryption()).decode()


class Session:
    """One account at one CA. `connect` first; then `begin`/`complete` per certificate."""

    def __init__(self, options: ClientOptions, account: Account | None) -> None:
        self._options = options
        self._account = account if account is not None and account.ca_server == options.ca_server else None
        self._client: client.ClientV2 | None = None
        self._net: _Network | None = None
        self._key: JWKEC | None = None

    def connect(self) -> Account:
        """The directory, and the account: the stored one, or a new registration (returned to store)."""
        with self._errors():
            if self._account is not None:
                key = JWKEC.json_loads(self._account.key_json)
            else:
                key = JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
            net = _Network(
                key,
                alg=ES256,
                verify_ssl=self._options.ca_bundle,  # type: ignore[arg-type]  # requests takes a path
                user_agent=f"passerelle/{__version__}",
                timeout=int(self._options.timeout),
            )
            directory = client.ClientV2.get_directory(self._options.ca_server, net)
            acme = client.ClientV2(directory, net)
            self._client, self._net, self._key = acme, net, key
            if self._account is not None:
                regr = messages.RegistrationResource(uri=self._account.uri, body=messages.Registration())
                try:
                    found = acme.query_registration(regr)  # onlyReturnExisting (RFC 8555 §7.3.1)
                    if found.uri != self._account.uri:  # the CA moved it: store where it is now
                        self._account = dataclasses.replace(self._account, uri=found.uri)
                    return self._account
                except messages.Error as e:
                    if e.code != "accountDoesNotExist":
                        raise
                    net.account = None  # a CA that forgot us (a restarted Pebble): register again
            eab = None
            if self._options.eab_kid:
                eab = messages.ExternalAccountBinding.from_data(
                    account_public_key=key.public_key(),
                    kid=self._options.eab_kid,
                    hmac_key=self._options.eab_hmac,
                    directory=directory,
                )
            contact = {"email": self._options.email} if self._options.email else {}
            registration = messages.NewRegistration.from_data(
                terms_of_service_agreed=True, external_account_binding=eab, **contact
            )
            regr = acme.new_account(registration)
            self._account = Account(
                ca_server=self._options.ca_server,
                uri=regr.uri,
                key_json=key.json_dumps(),
                email=self._options.email,
            )
            return self._account

    def begin(self, names: tuple[str, ...]) -> Pending:
        acme, key = self._connected()
        with self._errors():
            key_pem = new_certificate_key(self._options.key_type)
            csr = _csr(key_pem, names)
            order = acme.new_order(csr)
            found: list[Challenge] = []
            answers = []
            for authz in order.authorizations:
                if authz.body.status == messages.STATUS_VALID:
                    continue  # reused authorization (RFC 8555 §7.1.4): nothing to answer
                name = authz.body.identifier.value
                challb = self._pick(authz.body.challenges, name)
                chall = challb.chall
                assert isinstance(chall, acme_challenges.KeyAuthorizationChallenge)
                key_authorization = chall.key_authorization(key)
                if isinstance(chall, acme_challenges.HTTP01):
                    found.append(
                        Challenge(
                            type=HTTP_01, token=chall.encode("token"), key_authorization=key_authorization
                        )
                    )
                else:
                    cert_pem, alpn_key = alpn_certificate(name, key_authorization)
                    found.append(Challenge(type=TLS_ALPN_01, name=name, cert_pem=cert_pem, key_pem=alpn_key))
                answers.append((challb, chall.response(key)))
            return Pending(
                names=names, challenges=tuple(found), order=order, key_pem=key_pem, answers=tuple(answers)
            )

    def complete(self, pending: Pending) -> tuple[str, str]:
        """(full chain PEM, key PEM) once the CA validated every challenge."""
        acme, _ = self._connected()
        with self._errors():
            for challb, response in pending.answers:
                acme.answer_challenge(challb, response)
            deadline = datetime.datetime.now() + datetime.timedelta(seconds=self._options.timeout)
            order = acme.poll_authorizations(pending.order, deadline)
            order = acme.finalize_order(
                order, deadline, fetch_alternative_chains=bool(self._options.preferred_chain)
            )
            chains = [order.fullchain_pem, *(order.alternative_fullchains_pem or [])]
            return pick_chain(chains, self._options.preferred_chain), pending.key_pem

    def renewal_info(self, cert_pem: str) -> tuple[datetime.datetime | None, datetime.datetime]:
        """ARI (RFC 9773, ari.py): (a time inside the CA's suggested window, or None when its
        directory offers no renewalInfo; when to ask again)."""
        acme, _ = self._connected()
        now = datetime.datetime.now(datetime.UTC)
        with self._errors():
            try:
                base = str(acme.directory["renewalInfo"])
            except KeyError:
                return None, now + datetime.timedelta(seconds=ari.DEFAULT_RETRY)
            cert = x509.load_pem_x509_certificate(cert_pem.encode())
            response = acme.net.get(
                f"{base.rstrip('/')}/{ari.certificate_id(cert)}", content_type="application/json"
            )
            window = ari.suggested_window(response.json())
            retry = response.headers.get("Retry-After")
            return ari.schedule(
                window,
                now,
                retry_after=retry_after_seconds(response) if retry else None,
                draw=random.random(),
            )

    def _connected(self) -> tuple[client.ClientV2, JWKEC]:
        if self._client is None or self._key is None:
            raise AcmeError("ca", "not connected to the CA")
        return self._client, self._key

    def _pick(self, offered: list[messages.ChallengeBody], name: str) -> messages.ChallengeBody:
        wanted: list[type[acme_challenges.Challenge]] = []
        if self._options.http01:
            wanted.append(acme_challenges.HTTP01)
        if self._options.tlsalpn01:
            wanted.append(TLSALPN01)
        for kind in wanted:
            for challb in offered:
                if isinstance(challb.chall, kind):
                    return challb
        types = ", ".join(sorted(str(c.chall.typ) for c in offered)) or "none"
        raise AcmeError(
            "ca", f"the CA offers no challenge passerelle can answer for {name} (offered: {types})"
        )

    def _errors(self) -> _ErrorMap:
        return _ErrorMap(self._net)


class _ErrorMap:
    """Every failure inside becomes an AcmeError: the one place the library's errors are read."""

    def __init__(self, net: _Network | None) -> None:
        self._net = net

    def __enter__(self) -> None:
        return None

    def __exit__(self, _kind: type[BaseException] | None, error: BaseException | None, _: object) -> None:
        if error is None or isinstance(error, AcmeError) or not isinstance(error, Exception):
            return
        retry_after = retry_after_seconds(self._net.last if self._net is not None else None)
        if isinstance(error, requests.RequestException):
            raise AcmeError(
                "unreachable", f"the CA cannot be reached: {_short(error)}", retry_after
            ) from None
        if isinstance(error, errors.ValidationError):
            raise AcmeError("challenge", _validation_failures(error), retry_after) from None
        if isinstance(error, errors.TimeoutError):
            raise AcmeError("unreachable", "the CA did not finish the order in time", retry_after) from None
        if isinstance(error, messages.Error):
            code = error.code or "ca"
            kind = "rateLimited" if code == "rateLimited" else "ca"
            raise AcmeError(
                kind, f"the CA refused: {error.detail or error.description or code}", retry_after
            ) from None
        if isinstance(error, errors.IssuanceError):
            raise AcmeError(
                "ca", f"the CA did not issue: {error.error.detail or error.error}", retry_after
            ) from None
        raise AcmeError("ca", f"{type(error).__name__}: {error}", retry_after) from None


def _validation_failures(error: errors.ValidationError) -> str:
    parts = []
    for authzr in error.failed_authzrs:
        for challb in authzr.body.challenges:
            if challb.error is not None:
                detail = challb.error.detail or challb.error.description or challb.error.code
                parts.append(f"{authzr.body.identifier.value}: {challb.chall.typ}: {detail}")
    return "validation failed: " + ("; ".join(parts) or "no detail from the CA")


def retry_after_seconds(response: requests.Response | None) -> float:
    value = response.headers.get("Retry-After") if response is not None else None
    if not value:
        return 0.0
    if value.strip().isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, (when - datetime.datetime.now(datetime.UTC)).total_seconds())


def _short(error: Exception) -> str:
    text = str(error)
    return text if len(text) < 200 else text[:200] + "..."


def _csr(key_pem: str, names: tuple[str, ...]) -> bytes:
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])] if len(names[0]) <= 64 else [])
    )
    builder = builder.add_extension(
        x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
    )
    csr = builder.sign(key, hashes.SHA256())  # type: ignore[arg-type]
    return csr.public_bytes(_PEM)


def alpn_certificate(name: str, key_authorization: str) -> tuple[str, str]:
    """The TLS-ALPN-01 validation certificate (RFC 8737 §3): self-signed, SAN `name`, and the
    critical acmeIdentifier extension holding SHA-256(key authorization) as an OCTET STRING."""
    digest = hashlib.sha256(key_authorization.encode()).digest()
    cert, key_pem = self_signed(
        "passerelle ACME challenge",
        days=7,
        extensions=(
            (x509.SubjectAlternativeName([x509.DNSName(name)]), False),
            (x509.UnrecognizedExtension(ACME_IDENTIFIER, b"\x04\x20" + digest), True),
        ),
    )
    return cert.public_bytes(_PEM).decode(), key_pem


def pick_chain(chains: list[str], preferred: str) -> str:
    """The chain whose top certificate's issuer (or subject) CN is `preferred`, else the first
    (Traefik's and certbot's rule: the default chain unless a preferred one is offered)."""
    if preferred:
        for pem in chains:
            top = x509.load_pem_x509_certificates(pem.encode())[-1]
            names = [
                str(a.value)
                for n in (top.issuer, top.subject)
                for a in n.get_attributes_for_oid(NameOID.COMMON_NAME)
            ]
            if preferred in names:
                return pem
    return chains[0]
