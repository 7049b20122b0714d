"""The device behind each Suricata event, on every format version (4.1 to 8).

Up to Suricata 7 a DNS answer is logged in the flow's direction (``src_ip`` is
the client, ``dest_ip`` the resolver on port 53); Suricata 8's v3 responses
name the responder as ``src_ip`` (doc/userguide 8.0 DNS logging changes).
Alerts carry DNS names in three layouts. Expectations are worked out by hand.
"""

from __future__ import annotations

import orjson

from sources_helpers import ingest, stored_by_device

CLIENT, PIHOLE = "192.168.1.116", "192.168.1.2"


def _eve(event_type: str, src: tuple[str, int], dest: tuple[str, int], **fields) -> bytes:
    event = {
        "timestamp": "2024-05-01T10:15:00.123456+0200",
        "flow_id": 1,
        "event_type": event_type,
        "src_ip": src[0],
        "src_port": src[1],
        "dest_ip": dest[0],
        "dest_port": dest[1],
        "proto": "UDP",
        **fields,
    }
    return orjson.dumps(event) + b"\n"


def _ingest(engine, tmp_path, content: bytes):
    path = tmp_path / "eve.json"
    path.write_bytes(content)
    totals = ingest(engine, "suricata", path)
    return totals, stored_by_device(engine)


def test_dns_answers_belong_to_the_client_on_every_version(engine, tmp_path):
    asking, answering = (CLIENT, 53421), (PIHOLE, 53)
    _, found = _ingest(
        engine,
        tmp_path,
        # Suricata 4.1 (v1): one event per answer record, in the flow's direction
        _eve("dns", asking, answering, dns={"type": "answer", "id": 1, "rrname": "a.example.com",
             "rrtype": "A", "ttl": 60, "rdata": "93.184.216.1"})
        # Suricata 5-7 (v2), grouped and detailed, in the flow's direction
        + _eve("dns", asking, answering, dns={"version": 2, "type": "answer", "id": 2,
               "rrname": "b.example.com", "rrtype": "A", "grouped": {"A": ["93.184.216.2"]}})
        + _eve("dns", asking, answering, dns={"version": 2, "type": "answer", "id": 3,
               "rrname": "www.suricata.io", "rrtype": "A", "answers": [
                   {"rrname": "www.suricata.io", "rrtype": "CNAME", "rdata": "suricata.io"},
                   {"rrname": "suricata.io", "rrtype": "A", "rdata": "35.212.0.44"}]})
        # Suricata 8 (v3): the responder is the source
        + _eve("dns", answering, asking, dns={"version": 3, "type": "response", "id": 4,
               "queries": [{"rrname": "c.example.com", "rrtype": "A"}],
               "answers": [{"rrname": "c.example.com", "rrtype": "A", "rdata": "93.184.216.3"}],
               "grouped": {"A": ["93.184.216.3"]}})
        + _eve("dns", asking, answering, dns={"version": 3, "type": "request", "id": 4,
               "queries": [{"rrname": "c.example.com", "rrtype": "A"}]}),
    )  # fmt: skip
    assert found == {
        "ip 93.184.216.1": {CLIENT: [1, 0]},
        "ip 93.184.216.2": {CLIENT: [1, 0]},
        "ip 35.212.0.44": {CLIENT: [1, 0]},
        "ip 93.184.216.3": {CLIENT: [1, 0]},
        "domain c.example.com": {CLIENT: [1, 0]},
    }


def test_without_a_port_53_side_the_format_version_decides(engine, tmp_path):
    """DNS on another port (a DoT proxy, a lab): v2 answers in the flow's direction,
    v3 responses from the responder."""
    a, b = ("192.168.1.30", 40000), ("192.168.1.31", 5300)
    _, found = _ingest(
        engine,
        tmp_path,
        _eve("dns", a, b, dns={"version": 2, "type": "answer", "rrname": "d.example.com",
             "rrtype": "A", "grouped": {"A": ["93.184.216.4"]}})
        + _eve("dns", b, a, dns={"version": 3, "type": "response",
               "queries": [{"rrname": "e.example.com", "rrtype": "A"}],
               "grouped": {"A": ["93.184.216.5"]}}),
    )  # fmt: skip
    assert found == {
        "ip 93.184.216.4": {"192.168.1.30": [1, 0]},
        "ip 93.184.216.5": {"192.168.1.30": [1, 0]},
    }


def test_alerts_on_dns_name_the_domain_and_the_asking_device(engine, tmp_path):
    """A local resolver is local too: the device is the side that is not port 53, and the
    IoC is the name in any of the three layouts, never the resolver's address."""
    alert = {"signature_id": 2027863, "signature": "ET INFO Observed DNS Query to .cc TLD",
             "category": "Potentially Bad Traffic", "severity": 2}  # fmt: skip
    asking, answering = (CLIENT, 53421), (PIHOLE, 53)
    _, found = _ingest(
        engine,
        tmp_path,
        # Suricata 6/7, on the request
        _eve("alert", asking, answering, alert=alert,
             dns={"query": [{"type": "query", "id": 0, "rrname": "evil-one.cc", "rrtype": "A"}]})
        # Suricata 7, on the response (the packet comes from the resolver)
        + _eve("alert", answering, asking, alert=alert,
               dns={"answer": {"version": 2, "type": "answer", "id": 0, "rrname": "evil-two.cc",
                               "rrtype": "A", "rcode": "NOERROR"}})
        # Suricata 8, on the response
        + _eve("alert", answering, asking, alert=alert,
               dns={"version": 3, "type": "response", "id": 0,
                    "queries": [{"rrname": "evil-three.cc", "rrtype": "A"}],
                    "answers": [{"rrname": "evil-three.cc", "rrtype": "A",
                                 "rdata": "35.212.0.45"}]}),
    )  # fmt: skip
    assert found == {
        "domain evil-one.cc": {CLIENT: [1, 0]},
        "domain evil-two.cc": {CLIENT: [1, 0]},
        "domain evil-three.cc": {CLIENT: [1, 0]},
    }


def test_quic_sni_is_read_as_tls_sni(engine, tmp_path):
    phone, server = ("192.168.1.40", 51000), ("142.250.185.110", 443)
    _, found = _ingest(
        engine,
        tmp_path,
        _eve("quic", phone, server, quic={"version": "1", "sni": "www.youtube.com",
             "ua": "Chrome/120.0.6099.129"})
        + _eve("quic", server, phone, quic={"version": "1"})
        + _eve("alert", phone, server, alert={"signature_id": 1, "signature": "QUIC test"},
               quic={"version": "1", "sni": "bad.example.net"}),
    )  # fmt: skip
    assert found == {
        "domain www.youtube.com": {"192.168.1.40": [1, 0]},
        "domain bad.example.net": {"192.168.1.40": [1, 0]},
    }
