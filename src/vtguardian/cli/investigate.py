"""Asking about IoCs: ``ioc`` (what a value is), ``hunt`` (who contacted it), ``alerts``."""

from __future__ import annotations

from typing import Annotated

import typer

from vtguardian.cli.output import out, print_json_lines, shown, styled
from vtguardian.cli.root import open_store, state, with_stdin


def ioc(
    ctx: typer.Context,
    values: Annotated[
        list[str],
        typer.Argument(help="Values to classify; '-' reads one value per line from stdin."),
    ],
) -> None:
    """Classify values as domain, ip, url or file hash, normalised, with eligibility.

    Prints one JSON object per value: input, type, value, registered_domain,
    eligible (may be sent to VirusTotal) and reason (why not).
    """
    from vtguardian.iocs import Classifier

    classifier = Classifier.from_settings(state(ctx).settings)
    print_json_lines(classifier.classify(value).as_dict() for value in with_stdin(values))


def hunt(
    ctx: typer.Context,
    value: Annotated[str, typer.Argument(help="A domain (subdomains included), IP, URL or hash.")],
    days: Annotated[float, typer.Option("--days", min=0, help="How far back to look.")] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per client.")] = False,
) -> None:
    """Which devices contacted an IoC (or anything under a domain), first/last seen, hits.

    A domain also lists the addresses it resolved to here and the other domains seen
    on them; an address, the domains that resolved to it (with --json: one more
    object, {"resolutions": ...}, when there are any).
    """
    from vtguardian.intel.hunt import hunt, pivot

    engine = open_store(ctx)
    contacts = hunt(engine, value, days)
    resolved = pivot(engine, value, days)
    if as_json:
        print_json_lines(contact.as_dict() for contact in contacts)
        if any(resolved.values()):
            print_json_lines([{"resolutions": resolved}])
        return
    from rich.table import Table

    table = Table(title=f"Devices that contacted {shown(value)} (last {days:g} days)")
    for column in ("client", "name", "first seen (UTC)", "last seen (UTC)", "hits", "IoCs"):
        table.add_column(column)
    for c in contacts:
        table.add_row(
            shown(c.client),
            shown(c.name or ""),
            f"{c.first_seen:%Y-%m-%d %H:%M}",
            f"{c.last_seen:%Y-%m-%d %H:%M}",
            str(c.hits),
            str(c.iocs),
        )
    out.print(
        table if contacts else f"no device contacted {shown(value)} in the last {days:g} days"
    )
    _print_resolutions(value, resolved)


def _print_resolutions(value: str, resolved: dict) -> None:
    """The pivots of ``hunt``: every value from traffic shown as text, never markup."""
    from rich.table import Table

    titles = {
        "addresses": f"Addresses {shown(value)} resolved to here",
        "neighbours": "Other domains seen on those addresses",
        "names": f"Domains that resolved to {shown(value)} here",
    }
    for key, title in titles.items():
        rows = resolved.get(key)
        if not rows:
            continue
        table = Table(title=title)
        for column in ("value", "verdict", "first seen (UTC)", "last seen (UTC)", "devices"):
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(
                shown(row["value"]),
                styled(row["verdict"]),
                shown(row["first_seen"] or "-"),
                shown(row["last_seen"] or "-"),
                shown(", ".join(row["devices"])),
            )
        out.print(table)


def alerts(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many, newest first.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per alert.")] = False,
) -> None:
    """Recent alerts: IoCs your devices contacted that became malicious or suspicious."""
    from vtguardian.intel.alerts import alert_payload
    from vtguardian.store.recent import recent_alerts

    payloads = [alert_payload(row) for row in recent_alerts(open_store(ctx), limit)]
    if as_json:
        print_json_lines(payloads)
        return
    from rich.table import Table

    table = Table(title="Alerts")
    for column in ("when (UTC)", "IoC", "verdict", "ratio", "devices"):
        table.add_column(column, overflow="fold")
    for p in payloads:
        devices = ", ".join(c.get("name") or c["ip"] for c in p["clients"] or [])
        ratio = f"{p['ratio']:.1%}" if p["ratio"] is not None else "-"
        table.add_row(
            p["created_at"][:16],
            shown(p["ioc"]["value"]),
            styled(p["verdict"]),
            ratio,
            shown(devices),
        )
    out.print(table)
