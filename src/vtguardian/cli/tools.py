"""Tools around vtguardian: ``vt-emulator`` (a VirusTotal stand-in) and ``dashboard export``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vtguardian.cli.output import json_text, out, print_json
from vtguardian.cli.root import state
from vtguardian.errors import InvalidInput

dashboard_app = typer.Typer(help="The Grafana dashboard virus_total.json.", no_args_is_help=True)


def vt_emulator(
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1.")] = 8899,
    seed_file: Annotated[
        Path | None, typer.Option("--seed-file", help="JSON list of fixed answers.")
    ] = None,
    faults: Annotated[
        str,
        typer.Option(
            "--faults",
            help="Faults to inject, e.g. 'error_rate=0.2,drop_rate=0.1,truncate_rate=0.05,"
            "slow_rate=0.1,slow_seconds=3,burst_429=5'.",
        ),
    ] = "",
    per_minute: Annotated[int | None, typer.Option(help="Budget per key per minute.")] = None,
    per_day: Annotated[int | None, typer.Option(help="Budget per key per UTC day.")] = None,
    per_month: Annotated[int | None, typer.Option(help="Budget per key per month.")] = None,
    minute_seconds: Annotated[float, typer.Option(help="Length of the 'minute' window.")] = 60.0,
    key: Annotated[
        list[str] | None, typer.Option("--key", help="Accepted API key (repeatable).")
    ] = None,
) -> None:
    """Run the built-in VirusTotal API v3 emulator (for tests, demos, trying things out)."""
    import errno

    from vtguardian.testing.vt_emulator import (
        DEFAULT_KEY,
        Faults,
        Quota,
        emulator_from_options,
        serve_forever,
    )

    emulator = emulator_from_options(
        seed_file,
        _parse_faults(faults, Faults),
        Quota(per_minute, per_day, per_month, minute_seconds),
        key or [DEFAULT_KEY],
    )
    _check_port(port)
    out.print(f"VirusTotal emulator on http://127.0.0.1:{port} (keys: {len(emulator.keys)})")
    try:
        serve_forever(emulator, port)
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
            raise
        raise _port_error(port, exc) from None  # taken since the check: still one line


def _check_port(port: int) -> None:
    """Refuse a port that cannot be bound before saying the emulator is on it."""
    import socket

    try:
        socket.create_server(("127.0.0.1", port)).close()
    except (OSError, OverflowError) as exc:
        raise _port_error(port, exc) from None


def _port_error(port: int, exc: Exception) -> InvalidInput:
    import os

    number = getattr(exc, "errno", None)
    reason = os.strerror(number) if number else str(exc)
    return InvalidInput(f"--port {port}: cannot listen on 127.0.0.1: {reason}")


def _parse_faults(text: str, faults_type: type) -> object:
    values: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, number = part.partition("=")
        if name not in faults_type.__dataclass_fields__:
            raise InvalidInput(f"--faults: unknown fault {name!r}")
        try:
            values[name] = int(number) if name in ("burst_429", "seed") else float(number)
        except ValueError:
            raise InvalidInput(f"--faults: {name} needs a number, got {number!r}") from None
    return faults_type(**values)


@dashboard_app.command("export")
def dashboard_export(
    ctx: typer.Context,
    target: Annotated[
        Path, typer.Option("--out", help="Where to write the dashboard ('-' for stdout).")
    ] = Path("virus_total.json"),
) -> None:
    """Write the Grafana dashboard (import it, or let provisioning pick it up)."""
    from vtguardian.dashboards.grafana import dashboard

    model = dashboard(state(ctx).settings.virustotal.per_day)
    if str(target) == "-":
        print_json(model, indent=True)
        return
    target.write_text(json_text(model, indent=True))
    out.print(f"dashboard written to {target}")
