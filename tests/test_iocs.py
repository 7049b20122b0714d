"""The IoC model: detection, normalisation and the privacy rule."""

from __future__ import annotations

import ipaddress
import json
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import run_cli
from vtguardian.iocs import Classifier, IocType, normalise_domain

CASES = [
    # input, type, value, registered_domain, eligible
    ("Example.COM.", "domain", "example.com", "example.com", True),
    ("bücher.de", "domain", "xn--bcher-kva.de", "xn--bcher-kva.de", True),
    ("http://EXAMPLE.com:80/a?b=1", "url", "http://example.com/a?b=1", "example.com", True),
    ("https://Example.com:443", "url", "https://example.com/", "example.com", True),
    ("https://example.com:8443/x#frag", "url", "https://example.com:8443/x", "example.com", True),
    ("https://user:secret@example.com/", "url", "https://example.com/", "example.com", True),
    ("192.168.1.10", "ip", "192.168.1.10", None, False),
    ("10.0.0.1", "ip", "10.0.0.1", None, False),
    ("172.31.255.1", "ip", "172.31.255.1", None, False),
    ("100.64.1.1", "ip", "100.64.1.1", None, False),
    ("127.0.0.1", "ip", "127.0.0.1", None, False),
    ("169.254.10.1", "ip", "169.254.10.1", None, False),
    ("224.0.0.251", "ip", "224.0.0.251", None, False),
    ("fe80::1", "ip", "fe80::1", None, False),
    ("fd12:3456::1", "ip", "fd12:3456::1", None, False),
    ("2001:db8::1", "ip", "2001:db8::1", None, False),
    ("::ffff:192.168.1.1", "ip", "192.168.1.1", None, False),
    ("8.8.8.8", "ip", "8.8.8.8", None, True),
    ("2606:4700:4700::1111", "ip", "2606:4700:4700::1111", None, True),
    ("printer.local", "domain", "printer.local", None, False),
    ("nas.home.arpa", "domain", "nas.home.arpa", None, False),
    ("db.corp.internal", "domain", "db.corp.internal", None, False),
    ("tv.lan", "domain", "tv.lan", None, False),
    ("router", "domain", "router", None, False),
    ("1.168.192.in-addr.arpa", "domain", "1.168.192.in-addr.arpa", None, False),
    ("b.a.9.8.ip6.arpa", "domain", "b.a.9.8.ip6.arpa", None, False),
    ("44d88612fea8a8f36de82e1278abb02f", "file", "44d88612fea8a8f36de82e1278abb02f", None, True),
    (
        "3395856CE81F2B7382DEE72602F798B642F14140",
        "file",
        "3395856ce81f2b7382dee72602f798b642f14140",
        None,
        True,
    ),
    ("_dmarc.Google.com", "domain", "_dmarc.google.com", "google.com", True),
    # HTTP Host headers and CONNECT targets with their port (Zeek http.log, proxies)
    ("www.gstatic.com:443", "domain", "www.gstatic.com", "gstatic.com", True),
    ("8.8.8.8:53", "ip", "8.8.8.8", None, True),
    ("[2606:4700:4700::1111]:443", "ip", "2606:4700:4700::1111", None, True),
    ("[fd00::1]:8080", "ip", "fd00::1", None, False),
    ("www.bbc.co.uk", "domain", "www.bbc.co.uk", "bbc.co.uk", True),
    (
        "hxxp://evil[.]example[.]com/payload",
        "url",
        "http://evil.example.com/payload",
        "example.com",
        True,
    ),
]
INVALID = [
    ("a" * 64 + ".com", "label longer than 63"),
    ("", "empty value"),
    ("   ", "empty value"),
    ("-bad.com", "not a valid DNS label"),
    ("a..b.com", "empty label"),
    ("1.2.3", "numeric top-level label"),
    ("exa mple.com", "not a valid DNS label"),
    ("xn--zz.com", "bad punycode"),
    (".".join(["abcdefghij"] * 25) + ".com", "longer than 253"),
    ("http:///nohost", "no host"),
    ("http://example.com:99999/", "invalid url"),
    ("<script>alert(1)</script>.example", "not a valid DNS label"),
]


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier(allow_domains=["trusted.example.org"], own_networks=["203.0.113.0/24"])


@pytest.mark.parametrize(("raw", "kind", "value", "base", "eligible"), CASES)
def test_classify(classifier, raw, kind, value, base, eligible):
    result = classifier.classify(raw)
    assert (result.type, result.value, result.registered_domain, result.eligible) == (
        IocType(kind),
        value,
        base,
        eligible,
    )
    assert (result.reason is None) == eligible


@pytest.mark.parametrize(("raw", "reason"), INVALID)
def test_invalid_values_are_rejected_with_reason(classifier, raw, reason):
    result = classifier.classify(raw)
    assert result.type is None and result.value is None and not result.eligible
    assert reason in result.reason


def test_reasons_name_the_rule(classifier):
    assert "RFC 1918" in classifier.classify("192.168.1.10").reason
    assert "100.64.0.0/10" in classifier.classify("100.64.1.1").reason
    assert "fc00::/7" in classifier.classify("fd00::1").reason
    assert "link-local" in classifier.classify("fe80::1").reason
    assert "single-label" in classifier.classify("router").reason
    assert "reverse-lookup" in classifier.classify("1.168.192.in-addr.arpa").reason
    assert ".local" in classifier.classify("printer.local").reason


def test_allowlist_matches_domain_and_subdomains_only(classifier):
    assert classifier.classify("trusted.example.org").reason == "allowlisted"
    assert classifier.classify("a.b.Trusted.Example.org.").reason == "allowlisted"
    assert classifier.classify("http://cdn.trusted.example.org/x").reason == "allowlisted"
    assert classifier.classify("nottrusted.example.org").eligible
    assert classifier.classify("example.org").eligible


def test_own_network_is_never_eligible(classifier):
    assert not classifier.classify("203.0.113.77").eligible
    assert not classifier.classify("http://203.0.113.77/admin").eligible


def test_cli_prints_one_json_object_per_value():
    values = [case[0] for case in CASES] + [case[0] for case in INVALID]
    result = run_cli("ioc", "--", *values)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["input"] for line in lines] == values
    for line in lines:
        assert set(line) == {"input", "type", "value", "registered_domain", "eligible", "reason"}
    by_input = {line["input"]: line for line in lines}
    for raw, kind, value, _base, eligible in CASES:
        assert (by_input[raw]["type"], by_input[raw]["value"], by_input[raw]["eligible"]) == (
            kind,
            value,
            eligible,
        )


def test_cli_reads_values_from_stdin():
    result = run_cli("ioc", "-", input="8.8.8.8\nprinter.local\n")
    assert [json.loads(line)["eligible"] for line in result.stdout.splitlines()] == [True, False]


# --- properties -----------------------------------------------------------------

LABEL = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=20)
UNICODE_LABEL = st.text(alphabet="abcdeäöüßéñ", min_size=1, max_size=12)
TLDS = st.sampled_from(["com", "net", "org", "de", "co.uk", "io", "info"])


@st.composite
def domains(draw, label=LABEL):
    labels = draw(st.lists(label, min_size=1, max_size=4))
    return ".".join([*labels, draw(TLDS)])


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_classify_never_raises_and_is_consistent(text):
    result = Classifier().classify(text)
    if result.type is None:
        assert result.value is None and not result.eligible and result.reason
    else:
        assert result.eligible == (result.reason is None)


@settings(max_examples=300, deadline=None)
@given(st.one_of(domains(), domains(UNICODE_LABEL)), st.booleans(), st.booleans())
def test_domain_normalisation_is_idempotent_and_canonical(name, upper, trailing_dot):
    raw = (name.upper() if upper else name) + ("." if trailing_dot else "")
    first = Classifier().classify(raw)
    if first.type is None:  # e.g. a label that IDNA 2008 rejects
        return
    assert first.type is IocType.DOMAIN
    assert first.value == first.value.lower() and first.value.isascii()
    assert not first.value.endswith(".")
    assert all(0 < len(label) <= 63 for label in first.value.split("."))
    again = Classifier().classify(first.value)
    assert again.value == first.value
    assert first.registered_domain is not None
    assert first.value.endswith(first.registered_domain)


@settings(max_examples=200, deadline=None)
@given(domains(), st.sampled_from(["local", "lan", "home.arpa", "internal", "in-addr.arpa"]))
def test_local_names_are_never_eligible(name, suffix):
    assert not Classifier().classify(f"{name}.{suffix}").eligible


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(
        [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "100.64.0.0/10",
            "127.0.0.0/8",
            "169.254.0.0/16",
            "224.0.0.0/4",
            "240.0.0.0/4",
            "fc00::/7",
            "fe80::/10",
            "ff00::/8",
            "::1/128",
            "2001:db8::/32",
        ]
    ),
    st.integers(min_value=0),
)
def test_addresses_in_private_and_reserved_ranges_are_never_eligible(network, offset):
    net = ipaddress.ip_network(network)
    ip = net[offset % net.num_addresses]
    for raw in (str(ip), f"http://{'[' + str(ip) + ']' if ip.version == 6 else ip}/x"):
        result = Classifier().classify(raw)
        assert result.type is not None and not result.eligible, raw


@settings(max_examples=200, deadline=None)
@given(st.ip_addresses())
def test_eligible_addresses_are_global(ip):
    result = Classifier().classify(str(ip))
    assert result.type is IocType.IP
    if result.eligible:
        assert ipaddress.ip_address(result.value).is_global


@settings(max_examples=200, deadline=None)
@given(st.ip_addresses())
def test_a_url_host_that_is_an_address_is_read_as_one(ip):
    host = f"[{ip.exploded}]" if ip.version == 6 else ip.exploded
    result = Classifier().classify(f"http://{host}/x")
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    netloc = f"[{ip.compressed}]" if ip.version == 6 else ip.compressed
    assert result.value == f"http://{netloc}/x"
    assert result.registered_domain is None


@settings(max_examples=200, deadline=None)
@given(domains(), domains())
def test_allowlist_covers_every_subdomain(allowed, prefix):
    classifier = Classifier(allow_domains=[allowed])
    sub = f"{prefix.rsplit('.', 1)[0]}.{allowed}"
    assert classifier.classify(sub).reason == "allowlisted"
    assert classifier.classify(f"https://{sub}/path").reason == "allowlisted"


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["http", "https", "HTTP"]),
    domains(),
    st.sampled_from(["", "/", "/a/b", "/a?b=1&c=2"]),
)
def test_url_normalisation_is_idempotent(scheme, host, tail):
    first = Classifier().classify(f"{scheme}://{host.upper()}{tail}")
    assert first.type is IocType.URL
    assert first.value.startswith(f"{scheme.lower()}://{normalise_domain(host)}/")
    assert Classifier().classify(first.value).value == first.value
