"""Looking IoCs up: ``lookup``, ``worker``, ``quota`` and ``flow show``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from vtguardian.cli.output import err, out, print_json, print_json_lines, shown, styled
from vtguardian.cli.root import open_store, state, with_stdin
from vtguardian.clock import iso_z

flow_app = typer.Typer(help="The providers asked for a verdict, in order.", no_args_is_help=True)

#: The outcomes of ``lookup_stats`` that ``flow show`` counts per provider.
FLOW_OUTCOMES = ("answer", "decision", "error")


def lookup(
    ctx: typer.Context,
    values: Annotated[list[str], typer.Argument(help="Domains, IPs, URLs or file hashes.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per value.")] = False,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Ask VirusTotal even when the cache is fresh.")
    ] = False,
) -> None:
    """Look values up: from the cache when fresh, else from VirusTotal within the quota.

    Private and local values are never sent; they are listed with the reason.
    """
    import asyncio

    from vtguardian.intel.lookup import LookupService

    service = LookupService(state(ctx).settings, open_store(ctx))

    def waiting(seconds: float) -> None:
        err.print(f"waiting {seconds:.0f} s for the VirusTotal quota")

    results = asyncio.run(service.lookup_values(with_stdin(values), refresh, waiting))
    if as_json:
        print_json_lines(result.as_dict() for result in results)
        return
    from rich.table import Table

    table = Table()
    for column in (
        "type",
        "value",
        "verdict",
        "malicious/total",
        "ratio",
        "last analysis",
        "source",
        "flagged by",
    ):
        table.add_column(column, overflow="fold")
    for r in results:
        if not r.eligible:
            table.add_row(
                r.type or "-",
                shown(r.value or r.input),
                Text("not sent", style="dim"),
                "",
                "",
                "",
                "",
                shown(r.reason or ""),
            )
            continue
        table.add_row(
            r.type or "",
            shown(r.value or ""),
            styled(r.verdict),
            f"{r.malicious}/{r.total}" if r.total is not None else "-",
            f"{r.ratio:.1%}" if r.ratio is not None else "-",
            r.last_analysis_date.strftime("%Y-%m-%d %H:%M") if r.last_analysis_date else "-",
            r.source or "-",
            shown(
                ", ".join(r.engines[:5]) + (" …" if len(r.engines) > 5 else "") or (r.error or "")
            ),
        )
    out.print(table)


def worker(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="Exit when the queue is empty.")] = False,
    max_requests: Annotated[
        int | None, typer.Option("--max-requests", min=1, help="Stop after this many requests.")
    ] = None,
) -> None:
    """Drain the lookup queue, sharing the VirusTotal quota with every other worker."""
    import asyncio

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from vtguardian.intel.lookup import LookupService
    from vtguardian.store import queue

    engine = open_store(ctx)
    service = LookupService(state(ctx).settings, engine)
    with engine.connect() as connection:
        start = queue.queue_length(connection)
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} answered"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=False) as progress:
        task = progress.add_task("VirusTotal lookups", total=max(start, 1))

        def update(report, remaining: int) -> None:
            answered = report.found + report.not_found
            progress.update(task, completed=answered, total=max(answered + remaining, 1))

        result = asyncio.run(service.run_worker(once, max_requests, update))
    out.print(
        f"{result.requests} requests: {result.found} found, {result.not_found} unknown to "
        f"VirusTotal, {result.errors} errors (retried later), "
        f"{result.quota_refusals} quota refusals"
    )


def quota(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the VirusTotal requests used and left per window, and the queue length."""
    from vtguardian.intel.lookup import budget_from
    from vtguardian.quota import QuotaScheduler
    from vtguardian.store import queue

    engine = open_store(ctx)
    scheduler = QuotaScheduler(engine, budget_from(state(ctx).settings))
    usage = scheduler.usage()
    with engine.connect() as connection:
        length = queue.queue_length(connection)
    limits = {
        "minute": usage.budget.per_minute,
        "day": usage.budget.per_day,
        "month": usage.budget.per_month,
    }
    used = {"minute": usage.minute, "day": usage.day, "month": usage.month}
    remaining = usage.remaining()
    if as_json:
        windows = {
            w: {"used": used[w], "limit": limits[w], "remaining": remaining[w]} for w in limits
        }
        print_json({"windows": windows, "queue": length, "paused_until": iso_z(usage.paused_until)})
        return
    from rich.table import Table

    table = Table(title="VirusTotal quota")
    for column in ("window", "used", "limit", "remaining"):
        table.add_column(column)
    for window in limits:
        table.add_row(window, str(used[window]), str(limits[window]), str(remaining[window]))
    out.print(table)
    out.print(f"queue: {length} IoCs waiting")
    if usage.paused_until:
        out.print(f"paused after a quota refusal until {usage.paused_until:%H:%M:%S} UTC")


@flow_app.command("show")
def flow_show(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print the flow (order, enabled) with each provider's answers, decisions and errors."""
    from vtguardian.store.stats import outcome_counts

    settings = state(ctx).settings
    with open_store(ctx).connect() as connection:
        counts = outcome_counts(connection, FLOW_OUTCOMES)
    steps = [
        {
            "position": n,
            "provider": step.provider,
            "enabled": step.enabled,
            **{k: counts.get((step.provider, k), 0) for k in FLOW_OUTCOMES},
        }
        for n, step in enumerate(settings.flow, 1)
    ]
    if as_json:
        print_json(steps)
        return
    from rich.table import Table

    table = Table(title="Flow: asked in order, the first confident answer decides")
    for column in ("#", "provider", "enabled", "answers", "decisions", "errors"):
        table.add_column(column)
    for step in steps:
        table.add_row(
            str(step["position"]),
            step["provider"],
            "yes" if step["enabled"] else Text("no", style="dim"),
            str(step["answer"]),
            str(step["decision"]),
            str(step["error"]),
        )
    out.print(table)
