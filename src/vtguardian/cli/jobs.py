"""``vtguardian job ...``: list, show, start, stop, status and the events of jobs.

Start and stop set the job's flag in the database; ``vtguardian run`` follows it at
its next round, wherever it was set (here, the API or the page). Every value from an
event is printed as text (``shown``), never as markup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from vtguardian.cli.output import out, print_json, print_json_lines, shown, styled
from vtguardian.cli.root import open_store, state

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from vtguardian.config import Settings

job_app = typer.Typer(
    help="Alert triage jobs: an input, IoC fields, a flow, outputs ([[jobs]]).",
    no_args_is_help=True,
)

JobId = Annotated[str, typer.Argument(help="The job's id.", show_default=False)]
Json = Annotated[bool, typer.Option("--json", help="JSON instead of a table.")]


def _open(ctx: typer.Context) -> tuple[Settings, Engine]:
    from vtguardian.jobs.runner import sync_config_jobs

    settings = state(ctx).settings
    engine = open_store(ctx)
    sync_config_jobs(engine, settings)
    return settings, engine


def _status(ctx: typer.Context, job_id: str | None = None) -> list[dict[str, Any]]:
    from vtguardian.jobs.service import status

    settings, engine = _open(ctx)
    return status(engine, settings, job_id)


def _state(job: dict[str, Any]) -> str:
    reason = f" ({job['reason']})" if job.get("reason") else ""
    wanted = "" if job["enabled"] or job["state"] == "stopped" else " (stopping)"
    return shown(job["state"] + reason + wanted)


@job_app.command("list")
def list_jobs(ctx: typer.Context, as_json: Json = False) -> None:
    """Every job with its state, counts and lag."""
    jobs = _status(ctx)
    if as_json:
        print_json(jobs)
        return
    if not jobs:
        out.print("No jobs: add a [[jobs]] entry to the config, or POST /api/v1/jobs.")
        return
    table = Table()
    for column in ("id", "title", "input", "enabled", "state", "in", "stored", "malicious",
                   "pending", "lag"):  # fmt: skip
        table.add_column(column, overflow="fold")
    for job in jobs:
        source = job["input"]["type"] + (f" {job['input']['path']}" if job["input"]["path"] else "")
        table.add_row(
            shown(job["id"]), shown(job["title"]), shown(source), "yes" if job["enabled"] else "no",
            _state(job), str(job["events_in"]), str(job["stored"]), str(job["malicious"]),
            str(job["pending"]), f"{job['lag_bytes']} B",
        )  # fmt: skip
    out.print(table)


@job_app.command("show")
def show(ctx: typer.Context, job_id: JobId) -> None:
    """One job in full (JSON): definition, state, counts and its flow."""
    print_json(_status(ctx, job_id)[0], indent=True)


@job_app.command("status")
def status(ctx: typer.Context, job_id: Annotated[str | None, typer.Argument()] = None) -> None:
    """State (running, stopped, failed with its reason), counts and lag; one line a job."""
    for job in _status(ctx, job_id):
        out.print(
            f"{shown(job['id'])}: {_state(job)}; events in {job['events_in']}, "
            f"enriched {job['enriched']}, malicious {job['malicious']}, "
            f"pending {job['pending']}, lag {job['lag_bytes']} bytes"
        )


def _set(ctx: typer.Context, job_id: str, enabled: bool) -> None:
    from vtguardian.jobs.service import set_enabled

    _settings, engine = _open(ctx)
    set_enabled(engine, job_id, enabled)
    verb = "starts" if enabled else "stops"
    out.print(f"{shown(job_id)}: {verb} at the next round of `vtguardian run`")


@job_app.command("start")
def start(ctx: typer.Context, job_id: JobId) -> None:
    """Enable a job: `vtguardian run` runs it (kept across restarts)."""
    _set(ctx, job_id, True)


@job_app.command("stop")
def stop(ctx: typer.Context, job_id: JobId) -> None:
    """Disable a job: `vtguardian run` stops it; its events stay."""
    _set(ctx, job_id, False)


@job_app.command("events")
def events(
    ctx: typer.Context,
    job_id: JobId,
    malicious: Annotated[
        bool | None, typer.Option("--malicious/--not-malicious", help="is_malicious.")
    ] = None,
    result: Annotated[
        str | None, typer.Option(help="Global result (malicious, pending ...).")
    ] = None,
    ioc: Annotated[str | None, typer.Option(help="Events carrying this IoC.")] = None,
    field: Annotated[str | None, typer.Option(help="Events with an IoC in this field.")] = None,
    since: Annotated[str | None, typer.Option(help="Received at or after (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Received at or before (ISO 8601).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: Json = False,
) -> None:
    """The job's stored events, newest first, with their result and IoCs."""
    from vtguardian.iocs import Classifier
    from vtguardian.jobs.service import events as find

    settings, engine = _open(ctx)
    items = find(
        engine, settings, Classifier.from_settings(settings), job_id, is_malicious=malicious,
        result=result, ioc=ioc, field=field, since=since, until=until, limit=limit,
    )  # fmt: skip
    if as_json:
        print_json_lines(items)
        return
    table = Table()
    for column in ("#", "received", "result", "event", "IoCs"):
        table.add_column(column, overflow="fold")
    for item in items:
        iocs = ", ".join(f"{i['field']}={i['value']} ({i['state']})" for i in item["iocs"])
        table.add_row(
            str(item["seq"]), item["received_at"], styled(item["result"]),
            shown(item["summary"]), shown(iocs),
        )  # fmt: skip
    out.print(table)
