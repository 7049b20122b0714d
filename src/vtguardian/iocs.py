"""IoC model: detect the type of a value, normalise it, and decide if it may leave the network.

Everything that could be sent to a third party passes through :class:`Classifier`.
Normalisation makes the same indicator one row and one lookup however it was
written (``Example.COM.`` and ``example.com``); the eligibility rule keeps the
network's own names and addresses private (README, "Security": nothing private leaves home).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import idna
import tldextract

from vtguardian.config import DEFAULT_LOCAL_SUFFIXES
from vtguardian.errors import ConfigError

MAX_DOMAIN_LENGTH = 253
MAX_LABEL_LENGTH = 63
MAX_URL_LENGTH = 8192
MAX_INPUT_LENGTH = 16384

_HEX = re.compile(r"[0-9a-fA-F]+")
_HASH_LENGTHS = {32: "md5", 40: "sha1", 64: "sha256"}
# DNS allows underscores in service labels (_dmarc, _ldap._tcp); hostnames do not,
# but every DNS log is full of them, so they are valid domain labels here.
_ASCII_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?")
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
_DEFAULT_PORTS = {"http": 80, "https": 443, "ftp": 21, "ws": 80, "wss": 443}
_REVERSE_ZONES = ("in-addr.arpa", "ip6.arpa")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_RFC1918 = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
_ULA = ipaddress.ip_network("fc00::/7")
# IETF protocol assignments (RFC 6890): Python calls 192.0.0.9 and .10 global, but
# nothing of a home network's own belongs to a third party from there.
_IETF_PROTOCOL = ipaddress.ip_network("192.0.0.0/24")
# IPv6 forms that carry an IPv4 address (RFC 4291 IPv4-compatible, RFC 6052 NAT64,
# RFC 3056 6to4, RFC 4380 Teredo): the IPv4 inside is judged like a plain one.
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: local use only
# Special-use names that never resolve in the public DNS (RFC 7686), whatever the
# public suffix list says.
_SPECIAL_USE = ("onion",)
# "host:port" and "[v6]:port", as HTTP Host headers and CONNECT targets carry them.
_HOST_PORT = re.compile(r"(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\[\]]+)):\d{1,5}")
# Defanged forms people paste from reports: hxxp://evil[.]com, evil(.)com, 1.2.3[.]4
_DEFANG = (("[.]", "."), ("(.)", "."), ("{.}", "."), ("[dot]", "."), ("[:]", ":"))

_EXTRACT = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=())

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class IocType(StrEnum):
    DOMAIN = "domain"
    IP = "ip"
    URL = "url"
    FILE = "file"


class InvalidIoc(ValueError):
    """The value cannot be an indicator; the message is the reason shown to users."""


@dataclass(frozen=True, slots=True)
class Classified:
    """The verdict of the IoC model on one input value."""

    input: str
    type: IocType | None
    value: str | None
    registered_domain: str | None
    eligible: bool
    reason: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "type": self.type.value if self.type else None,
            "value": self.value,
            "registered_domain": self.registered_domain,
            "eligible": self.eligible,
            "reason": self.reason,
        }


def refang(value: str) -> str:
    """Undo the usual defanging so pasted threat reports parse."""
    if "[" in value or "(" in value or "{" in value:
        for old, new in _DEFANG:
            value = value.replace(old, new)
    lowered = value[:5].lower()
    if lowered.startswith(("hxxp", "hxxps")):
        value = "http" + value[4:]
    return value


def normalise_domain(raw: str) -> str:
    """Lower-case, strip the root dot, IDNA-encode and check RFC 1035 length rules."""
    name = raw.strip()
    if not name.isascii():
        try:
            name = idna.uts46_remap(name, std3_rules=False, transitional=False)
        except idna.IDNAError as exc:
            raise InvalidIoc(f"invalid domain: {exc}") from None
    name = name.lower()
    if name.endswith("."):
        name = name[:-1]
    if not name:
        raise InvalidIoc("invalid domain: empty name")
    labels = name.split(".")
    encoded = [_normalise_label(label) for label in labels]
    result = ".".join(encoded)
    if len(result) > MAX_DOMAIN_LENGTH:
        raise InvalidIoc(f"invalid domain: longer than {MAX_DOMAIN_LENGTH} characters")
    if len(encoded) > 1 and encoded[-1].isdigit():
        raise InvalidIoc("invalid domain: numeric top-level label")
    return result


def _normalise_label(label: str) -> str:
    if not label:
        raise InvalidIoc("invalid domain: empty label")
    if not label.isascii():
        try:
            label = idna.encode(label, uts46=False).decode("ascii")
        except (idna.IDNAError, UnicodeError) as exc:
            raise InvalidIoc(f"invalid domain: {exc}") from None
    if len(label) > MAX_LABEL_LENGTH:
        raise InvalidIoc(f"invalid domain: label longer than {MAX_LABEL_LENGTH} characters")
    if not _ASCII_LABEL.fullmatch(label):
        raise InvalidIoc(f"invalid domain: {_short(label)!r} is not a valid DNS label")
    if label.startswith("xn--"):
        try:
            idna.decode(label)
        except (idna.IDNAError, UnicodeError):
            raise InvalidIoc(f"invalid domain: bad punycode label {_short(label)!r}") from None
    return label


def normalise_ip(raw: str) -> IpAddress:
    """Parse an IPv4/IPv6 address; brackets and zone ids are dropped."""
    text = raw.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidIoc(f"invalid ip address: {_short(raw)!r}") from None
    # ::ffff:192.0.2.1 is the IPv4 host 192.0.2.1 seen through a dual-stack socket.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def strip_port(text: str) -> str:
    """The host of ``host:port`` or ``[v6]:port``; anything else unchanged.

    An IPv6 address has two colons or more, so one colon before digits is a port.
    """
    match = _HOST_PORT.fullmatch(text)
    if match is None:
        return text
    return match["v6"] or match["host"]


def normalise_hash(raw: str) -> str:
    text = raw.strip()
    if len(text) not in _HASH_LENGTHS or not _HEX.fullmatch(text):
        raise InvalidIoc("invalid file hash: expected md5, sha1 or sha256 hex")
    return text.lower()


def hash_kind(value: str) -> str:
    """``md5``, ``sha1`` or ``sha256`` for a normalised file hash."""
    return _HASH_LENGTHS[len(value)]


def registered_domain(domain: str) -> str | None:
    """eTLD+1 from tldextract's bundled Public Suffix List; no network fetch ever."""
    result = _split(domain).top_domain_under_public_suffix
    return result or None


def public_suffix(domain: str) -> str:
    return _split(domain).suffix


def is_public_suffix(domain: str) -> bool:
    """Whether a name is itself a public suffix (``co.uk``) or a private registry's
    (``duckdns.org``, ``github.io``): a block of it, or a wildcard under it, would
    block every site anyone registered there."""
    return not _split_private(domain).domain


_split_private = lru_cache(maxsize=4096)(
    lambda domain: _EXTRACT(domain, include_psl_private_domains=True)
)


# A URL's host is split three times as it is classified (local? public suffix? eTLD+1),
# and many URLs share a host: each host is split once.
_split = lru_cache(maxsize=16_384)(_EXTRACT.__call__)


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _suffixes(domain: str) -> Iterable[str]:
    """The name itself and every parent: a.b.c -> a.b.c, b.c, c."""
    yield domain
    start = domain.find(".")
    while start != -1:
        yield domain[start + 1 :]
        start = domain.find(".", start + 1)


def matching_suffix(domain: str, suffixes: frozenset[str]) -> str | None:
    """The entry of ``suffixes`` that equals the domain or one of its parents."""
    for candidate in _suffixes(domain):
        if candidate in suffixes:
            return candidate
    return None


def embedded_ipv4(ip: IpAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 transition form carries (none for other addresses).

    ``::c0a8:101``, ``64:ff9b::c0a8:101``, ``2002:c0a8:101::1`` and a Teredo
    address all lead to 192.168.1.1: a private address in a public-looking form.
    """
    if isinstance(ip, ipaddress.IPv4Address):
        return []
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip in _IPV4_COMPATIBLE or ip in _NAT64:
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip.teredo is not None:
        return list(ip.teredo)
    return []


def _ip_reason(ip: IpAddress) -> str | None:
    """Why an address must stay private, or None when it is a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "loopback address"
    if ip.is_link_local:
        return "link-local address"
    if ip.is_multicast:
        return "multicast address"
    if ip.is_unspecified:
        return "unspecified address"
    if isinstance(ip, ipaddress.IPv4Address):
        if ip in _CGNAT:
            return "carrier-grade NAT address (100.64.0.0/10)"
        if ip in _IETF_PROTOCOL:
            return "IETF protocol assignment (192.0.0.0/24)"
        if any(ip in net for net in _RFC1918):
            return "private address (RFC 1918)"
    elif ip in _ULA:
        return "unique local address (fc00::/7)"
    elif ip in _NAT64_LOCAL:
        return "local-use NAT64 address (64:ff9b:1::/48)"
    else:
        for inner in embedded_ipv4(ip):
            reason = _ip_reason(inner)
            if reason is not None:
                return f"{reason} inside an IPv6 address ({inner})"
    if not ip.is_global:
        return "reserved or documentation address"
    return None


# Only values up to this long are memoised: every domain fits, and a cache of long
# values (a 50 KB SNI from a hostile client, once each) would grow by the input.
CACHED_LENGTH = 255


class Classifier:
    """Applies the IoC model with one privacy policy; results are memoised.

    Collectors classify the same popular names millions of times, so a bounded
    cache turns the IDNA and suffix work into a dictionary hit. The cache holds
    at most ``cache_size`` values of at most ``CACHED_LENGTH`` characters, so its
    memory is bounded whatever the traffic: longer values are worked out anew.
    """

    def __init__(
        self,
        local_suffixes: Iterable[str] = DEFAULT_LOCAL_SUFFIXES,
        own_domains: Iterable[str] = (),
        own_networks: Iterable[str] = (),
        allow_domains: Iterable[str] = (),
        allow_networks: Iterable[str] = (),
        cache_size: int = 16_384,
    ) -> None:
        self.local_suffixes = _domain_set(local_suffixes, "privacy.local_suffixes")
        self.own_domains = _domain_set(own_domains, "privacy.own_domains")
        self.allow_domains = _domain_set(allow_domains, "allowlist.domains")
        self.own_networks = _network_list(own_networks, "privacy.own_networks")
        self.allow_networks = _network_list(allow_networks, "allowlist.networks")
        self._cached = lru_cache(maxsize=cache_size)(self._classify)
        self._cached_as = lru_cache(maxsize=cache_size)(self._classify_as)

    def classify(self, raw: str) -> Classified:
        """Detect the type of a free-form value, then normalise it."""
        if len(raw) <= CACHED_LENGTH:
            return self._cached(raw)
        return self._classify(raw)

    def classify_as(self, raw: str, kind: IocType) -> Classified:
        """Classify a value whose type the source already knows (a DNS query is a domain)."""
        if len(raw) <= CACHED_LENGTH:
            return self._cached_as(raw, kind)
        return self._classify_as(raw, kind)

    def is_allowlisted(self, domain: str) -> bool:
        """Whether ``domain`` is on the allowlist (which vouches for its addresses)."""
        return self.classify_as(domain, IocType.DOMAIN).reason == "allowlisted"

    @classmethod
    def from_settings(cls, settings: Any) -> Classifier:
        file_domains, file_networks = read_allowlist_files(settings.allowlist.files)
        return cls(
            local_suffixes=settings.privacy.local_suffixes,
            own_domains=settings.privacy.own_domains,
            own_networks=settings.privacy.own_networks,
            allow_domains=[*settings.allowlist.domains, *file_domains],
            allow_networks=[*settings.allowlist.networks, *file_networks],
        )

    def _classify(self, raw: str) -> Classified:
        """Detect the type of a free-form value, then normalise it."""
        text = raw.strip()
        if not text:
            return Classified(raw, None, None, None, False, "empty value")
        if len(text) > MAX_INPUT_LENGTH:
            return Classified(raw, None, None, None, False, "value too long")
        text = refang(text)
        if "://" in text:
            return self._classify_as(raw, IocType.URL, text)
        if ":" in text:
            text = strip_port(text)
        if len(text) in _HASH_LENGTHS and _HEX.fullmatch(text):
            return self._classify_as(raw, IocType.FILE, text)
        if ":" in text or text.replace(".", "").isdigit():
            try:
                return self._ip(raw, normalise_ip(text))
            except InvalidIoc as exc:
                if ":" in text:
                    return Classified(raw, None, None, None, False, str(exc))
        return self._classify_as(raw, IocType.DOMAIN, text)

    def _classify_as(self, raw: str, kind: IocType, text: str | None = None) -> Classified:
        """Classify a value whose type the source already knows (a DNS query is a domain)."""
        text = raw if text is None else text
        try:
            if kind is IocType.DOMAIN:
                return self._domain(raw, normalise_domain(text))
            if kind is IocType.IP:
                return self._ip(raw, normalise_ip(text))
            if kind is IocType.FILE:
                return Classified(raw, IocType.FILE, normalise_hash(text), None, True, None)
            return self._url(raw, text)
        except InvalidIoc as exc:
            return Classified(raw, None, None, None, False, str(exc))

    def _domain(self, raw: str, domain: str) -> Classified:
        local = self.local_reason(domain)
        if local is not None:
            # An eTLD+1 of a name that exists only inside the network means nothing.
            return Classified(raw, IocType.DOMAIN, domain, None, False, local)
        reason = self.policy_reason(domain)
        base = registered_domain(domain)
        return Classified(raw, IocType.DOMAIN, domain, base, reason is None, reason)

    def domain_reason(self, domain: str) -> str | None:
        """Why a normalised domain must not be looked up, or None when it may be."""
        return self.local_reason(domain) or self.policy_reason(domain)

    def local_reason(self, domain: str) -> str | None:
        """Why a name cannot be a public DNS name at all."""
        if "." not in domain:
            return "single-label name"
        if domain.rsplit(".", 1)[1] in _SPECIAL_USE:
            return "Tor onion service (.onion): never in the public DNS"
        local = matching_suffix(domain, self.local_suffixes)
        if local is not None:
            if local in _REVERSE_ZONES:
                return f"reverse-lookup name (.{local})"
            return f"local-only name (.{local})"
        if not public_suffix(domain):
            return "no public suffix (not a public DNS name)"
        return None

    def policy_reason(self, domain: str) -> str | None:
        """Why a public name is still kept private: the user's own, or trusted."""
        if matching_suffix(domain, self.own_domains) is not None:
            return "own domain (privacy.own_domains)"
        if matching_suffix(domain, self.allow_domains) is not None:
            return "allowlisted"
        return None

    def _ip(self, raw: str, ip: IpAddress) -> Classified:
        reason = self.ip_reason(ip)
        return Classified(raw, IocType.IP, ip.compressed, None, reason is None, reason)

    def ip_reason(self, ip: IpAddress) -> str | None:
        reason = _ip_reason(ip)
        if reason is not None:
            return reason
        for address in (ip, *embedded_ipv4(ip)):  # also through an IPv6 transition form
            if any(address in net for net in self.own_networks if net.version == address.version):
                return "own network (privacy.own_networks)"
            if any(address in net for net in self.allow_networks if net.version == address.version):
                return "allowlisted"
        return None

    def _url(self, raw: str, text: str) -> Classified:
        text = text.strip()
        if len(text) > MAX_URL_LENGTH:
            raise InvalidIoc(f"invalid url: longer than {MAX_URL_LENGTH} characters")
        if any(ch in text for ch in "\r\n\t ") or not text.isprintable():
            raise InvalidIoc("invalid url: contains whitespace or control characters")
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError as exc:
            raise InvalidIoc(f"invalid url: {exc}") from None
        scheme = parts.scheme.lower()
        if not _SCHEME.fullmatch(scheme):
            raise InvalidIoc("invalid url: bad scheme")
        host_text = parts.hostname
        if not host_text:
            raise InvalidIoc("invalid url: no host")
        # Credentials in a URL are the user's secret: they are dropped, never sent.
        host_ip: IpAddress | None = None
        if ":" in host_text or host_text.replace(".", "").isdigit():
            # The only forms an address can take; a name would fail the parse slowly.
            with suppress(InvalidIoc):
                host_ip = normalise_ip(host_text)
        if host_ip is not None:
            host = host_ip.compressed
            netloc = f"[{host}]" if host_ip.version == 6 else host
            reason = self.ip_reason(host_ip)
            base = None
        else:
            try:
                host = normalise_domain(host_text)
            except InvalidIoc as exc:
                raise InvalidIoc(f"invalid url host: {exc}") from None
            netloc = host
            reason = self.domain_reason(host)
            base = None if self.local_reason(host) else registered_domain(host)
        if port is not None and port != _DEFAULT_PORTS.get(scheme):
            netloc = f"{netloc}:{port}"
        value = f"{scheme}://{netloc}{parts.path or '/'}"
        if parts.query:
            value = f"{value}?{parts.query}"
        return Classified(raw, IocType.URL, value, base, reason is None, reason)


def _domain_set(entries: Iterable[str], setting: str) -> frozenset[str]:
    result = set()
    for entry in entries:
        text = entry.strip().lstrip("*").lstrip(".")
        if not text:
            continue
        try:
            result.add(normalise_domain(text))
        except InvalidIoc as exc:
            raise ConfigError(f"{setting}: {entry!r}: {exc}") from None
    return frozenset(result)


def _network_list(entries: Iterable[str], setting: str) -> tuple[IpNetwork, ...]:
    result = []
    for entry in entries:
        try:
            result.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ConfigError(f"{setting}: {entry!r} is not an IP network") from None
    return tuple(result)


def read_allowlist_files(paths: Iterable[Path]) -> tuple[list[str], list[str]]:
    """Domains and networks from allowlist files: one per line, ``#`` comments, hosts format.

    Hosts-format lines (``0.0.0.0 example.com``) are accepted because users copy
    allowlists between Pi-hole, AdGuard and hosts files.
    """
    domains: list[str] = []
    networks: list[str] = []
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise ConfigError(f"allowlist.files: cannot read {path}: {exc.strerror}") from None
        for line in text.splitlines():
            fields = line.split("#", 1)[0].split()
            if not fields:
                continue
            entry = fields[-1]
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                domains.append(entry)
            else:
                networks.append(entry)
    return domains, networks
