"""Reading telemetry: ``ingest`` (logs into the database) and ``enrich`` (NDJSON events)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from vtguardian.cli.output import err, out, print_json
from vtguardian.cli.root import open_store, state
from vtguardian.errors import InvalidInput, UserError


def ingest(
    ctx: typer.Context,
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            "-s",
            help="pihole-ftl, pihole-log, dnsmasq, suricata, zeek, ecs or plain.",
        ),
    ] = None,
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Log files (or pihole-FTL.db); none: the [[ingest.sources]] of the config."
        ),
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep reading new lines, like tail -F.")
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print {lines, events, new_iocs, hits, skipped_private, invalid, errors, held}.",
        ),
    ] = False,
    field: Annotated[
        list[str] | None,
        typer.Option("--field", help="ecs: an event field holding IoCs (repeatable)."),
    ] = None,
    flows: Annotated[
        bool, typer.Option("--flows", help="suricata: also take flow destination IPs.")
    ] = False,
) -> None:
    """Read telemetry into hourly sightings and queue new IoCs for lookup.

    Resumes where the last run stopped; bad lines are counted, recorded with
    their offset and skipped. Private and local values are counted, never stored
    as IoCs and never queued.
    """
    import signal
    import threading

    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    from vtguardian.config import SOURCES, FollowedSource
    from vtguardian.ingest.run import IngestOptions, ingest
    from vtguardian.iocs import Classifier

    settings = state(ctx).settings
    if paths:
        if source not in SOURCES:
            raise InvalidInput(f"--source: choose one of {', '.join(SOURCES)}")
        jobs = [
            FollowedSource(source=source, path=str(p), fields=field or [], flows=flows)
            for p in paths
        ]
    elif settings.ingest.sources:
        jobs = list(settings.ingest.sources)
    else:
        raise InvalidInput("give --source and files, or list [[ingest.sources]] in the config")
    engine = open_store(ctx)
    classifier = Classifier.from_settings(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sizes = [Path(job.path).stat().st_size for job in jobs if Path(job.path).is_file()]
    total = sum(sizes) if not follow else None
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, disable=as_json or follow) as progress:
        task = progress.add_task("ingesting", total=total)
        try:
            totals = ingest(
                engine,
                classifier,
                jobs,
                IngestOptions.from_settings(settings),
                follow=follow,
                stop=stop,
                on_progress=lambda done: progress.advance(task, done),
            )
        except KeyboardInterrupt:
            raise UserError("interrupted; everything read so far is stored") from None
    if as_json:
        print_json(totals.as_dict())
        return
    t = totals
    out.print(
        f"{t.lines} lines, {t.events} events: {t.hits} IoC hits, {t.new_iocs} new IoCs; "
        f"{t.skipped_private} private/local skipped, {t.invalid} invalid values, "
        f"{t.errors} bad lines recorded"
    )
    if t.held:
        out.print(
            f"{t.held} unfinished last line(s) held back: the file is still being written; "
            "the next ingest (or --follow) reads it whole"
        )


def enrich(
    ctx: typer.Context,
    source: Annotated[
        str, typer.Option("--in", help="NDJSON events: a file or '-' (stdin).")
    ] = "-",
    target: Annotated[str, typer.Option("--out", help="Where to write: a file or '-'.")] = "-",
    field: Annotated[
        list[str] | None,
        typer.Option("--field", help="Event field holding IoCs (repeatable; ECS defaults)."),
    ] = None,
) -> None:
    """Add threat.enrichments[] and vtguardian.is_malicious / ioc.global.result to events.

    Uses only the cache, the allowlist and local feeds: unknown IoCs are queued for
    the worker and marked pending, never waited on.
    """
    from vtguardian.intel.cache_use import CacheUse
    from vtguardian.intel.enrich import DEFAULT_FIELDS, Enricher
    from vtguardian.intel.flow import VIRUSTOTAL, Flow
    from vtguardian.iocs import Classifier

    settings = state(ctx).settings
    classifier = Classifier.from_settings(settings)
    engine = open_store(ctx)
    cache_use = CacheUse(engine, VIRUSTOTAL, background=False)
    enricher = Enricher(
        engine,
        classifier,
        Flow(settings, classifier),
        field or DEFAULT_FIELDS,
        cache_use=cache_use,
    )
    reader = sys.stdin.buffer if source == "-" else _open_input(source)
    writer = sys.stdout.buffer if target == "-" else open(target, "wb")  # noqa: SIM115
    try:
        writer.writelines(enricher.enrich_lines(reader))
    finally:
        if writer is not sys.stdout.buffer:
            writer.close()
        cache_use.flush()  # the hits of the whole run in one write; a failure only warns
    stats = enricher.stats
    err.print(
        f"{stats.events} events, {stats.enriched} enriched, {stats.queued} IoCs queued for "
        f"lookup, {stats.skipped} lines that were not JSON objects skipped"
    )


def _open_input(path: str):
    try:
        return open(path, "rb")
    except OSError as exc:
        raise InvalidInput(f"--in {path}: {exc.strerror}") from None
