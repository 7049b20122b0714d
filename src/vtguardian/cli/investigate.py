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
    """Which devices contacted an IoC (or anything under a domain), first/last seen, hits."""
    from vtguardian.intel.hunt import hunt

    contacts = hunt(open_store(ctx), value, days)
    if as_json:
        print_json_lines(contact.as_dict() for contact in contacts)
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
