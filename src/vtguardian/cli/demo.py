"""``vtguardian demo``: the whole pipeline offline, then the built-in page."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from vtguardian.cli.output import err, out, shown, styled
from vtguardian.errors import ConfigError

#: Devices named in a row of "What needs your attention"; the rest are counted.
DEVICES_SHOWN = 2


def demo(
    folder: Annotated[
        Path,
        typer.Option("--dir", help="Where to write the demo logs and database."),
    ] = Path("vtguardian-demo"),
    serve_page: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve the built-in page at the end.")
    ] = True,
    port: Annotated[int, typer.Option("--port", help="Port for the page (0: any free).")] = 8080,
    real: Annotated[
        bool,
        typer.Option(
            "--real", help="Ask the real VirusTotal with VT_API_KEY, within the public quota."
        ),
    ] = False,
) -> None:
    """The whole pipeline offline, no API key needed: sample Pi-hole and Suricata logs,
    ingest, lookups against the built-in VirusTotal emulator, verdicts, Pi-hole
    blocking as a dry run, then the built-in page."""
    from rich.progress import BarColumn, Progress, TextColumn
    from rich.table import Table

    from vtguardian.demo import run_demo

    real_key = os.environ.get("VT_API_KEY") if real else None
    if real and not real_key:
        raise ConfigError("--real needs your VirusTotal API key in VT_API_KEY")
    if real:
        out.print(
            "Demo: a week of a household's Pi-hole and Suricata logs, looked up in the real "
            "VirusTotal with your key at 4 requests/minute (the public API's quota): this takes "
            "about 15 minutes. Private and local names are never sent."
        )
    else:
        out.print(
            "Demo: a week of a household's Pi-hole and Suricata logs, looked up against the "
            "built-in VirusTotal emulator (its quota is raised for the demo; the public API "
            "allows 4 requests/minute)."
        )
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}"))
    with Progress(*columns, console=err) as progress:
        task = progress.add_task("VirusTotal lookups", total=None)

        def update(report, remaining: int) -> None:
            done = report.found + report.not_found
            progress.update(task, completed=done, total=done + remaining)

        result = run_demo(folder, update, real_key=real_key)
    t = result.ingested
    out.print(
        f"Ingested {t.lines} log lines: {t.hits} hits on {t.new_iocs} new IoCs; "
        f"{t.skipped_private} private/local values kept at home."
    )
    where = "VirusTotal" if real else "VirusTotal (emulated)"
    seen = "" if real else f" ({result.requests_seen_by_emulator} reached the emulator)"
    out.print(
        f"{where}: {result.lookups.requests} requests, one per eligible IoC{seen}. Verdicts: "
        + ", ".join(f"{count} {verdict}" for verdict, count in result.verdicts.items())
    )
    table = Table(title="What needs your attention")
    for column in ("type", "IoC", "verdict", "ratio", "devices"):
        table.add_column(column, overflow="fold")
    listed = result.findings[:15]
    for kind, value, verdict, ratio, devices in listed:
        table.add_row(
            kind,
            shown(value),
            styled(verdict),
            f"{ratio:.1%}" if ratio is not None else "-",
            devices_summary(devices),
        )
    out.print(table)
    if len(result.findings) > len(listed):
        out.print(f"... and {len(result.findings) - len(listed)} more in the database.")
    if result.intel is not None:
        from vtguardian.cli.demo_intel import print_intel

        print_intel(result.intel)
    out.print(
        f"Pi-hole (dry run on the demo {result.gravity.name}): would block "
        + (shown(", ".join(result.would_block)) or "nothing")
        + "; suspicious and allowlisted domains are never blocked."
    )
    if result.job is not None:
        job = result.job
        out.print(
            f"Job {shown(job['id'])}: {job['events_in']} Suricata alerts triaged, "
            f"{job['malicious']} malicious, {job['pending']} pending; "
            "see them in the Event Explorer (the page's /#explorer)."
        )
    firewall = result.firewall_would_block
    out.print(
        "Firewall (`vtguardian block firewall --check`): would block "
        + (shown(", ".join(f"{a} ({why})" for a, why in firewall.items())) or "nothing")
        + "; addresses shared with harmless or popular names are left alone."
    )
    if result.dns_bypass_alerts:
        out.print(
            f"DNS bypass: {result.dns_bypass_alerts} alert(s): a device reached a flagged "
            "domain's address without asking Pi-hole (see the page's DNS bypass panel)."
        )
    out.print(f"Database: {result.database}")
    if serve_page:
        _serve_demo(result.database, port)


def devices_summary(devices: str) -> str:
    """The devices of a finding (comma separated, as the demo's query joins them) in
    one short cell: all of them when few, else how many and the first few."""
    names = [shown(name) for name in devices.split(",") if name]
    if len(names) <= DEVICES_SHOWN:
        return ", ".join(names)
    return f"{len(names)} devices: {', '.join(names[:DEVICES_SHOWN])}, …"


def _serve_demo(database: Path, port: int) -> None:
    """The built-in page over the demo database, until Ctrl-C."""
    import contextlib
    import socket

    import uvicorn

    from vtguardian.config import settings_from_values
    from vtguardian.web.app import create_app

    try:
        listener = socket.create_server(("127.0.0.1", port))
    except OSError:
        listener = socket.create_server(("127.0.0.1", 0))  # 8080 taken: any free port
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
    settings = settings_from_values(database={"url": f"sqlite:///{database.resolve()}"})
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), log_level="warning", lifespan="off")
    )
    out.print(Text.assemble("The built-in page: ", (url, "bold"), "  (Ctrl-C to stop)"))
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[listener])
