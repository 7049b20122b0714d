"""The ``vtguardian`` command: thin, every command calls into a package.

Errors a user can meet are :class:`~vtguardian.errors.UserError`; ``main`` prints
them as one line and exits with their code, never with a traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.text import Text
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from vtguardian import __version__
from vtguardian.clock import iso_z
from vtguardian.config import Settings, load_settings, settings_for_display
from vtguardian.errors import ConfigError, InvalidInput, UserError

app = typer.Typer(
    name="vtguardian",
    help=(
        "Turn your network's own DNS, IDS and flow logs into VirusTotal-backed threat "
        "intelligence: collect IoCs, look them up within your quota, store, show and block."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
db_app = typer.Typer(help="Create, migrate and inspect the database.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")

# Everything printed may hold values from traffic (a URL path, a device name): no Rich
# markup or emoji codes are read from it, and control characters are made visible
# (``shown``) before they reach the terminal.
out = Console(soft_wrap=True, highlight=False, markup=False, emoji=False)
err = Console(stderr=True, soft_wrap=True, highlight=False, markup=False, emoji=False)


def shown(value: object) -> str:
    """A value from data as terminal text: control and format characters (escape
    sequences, bidi overrides) are printed as their ``\\x1b`` / ``\\u202e`` escapes."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text
    )


class State:
    """Per-invocation options from the top-level callback; settings load lazily."""

    def __init__(self, config_path: Path | None) -> None:
        self.config_path = config_path
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_path)
        return self._settings


def _version(value: bool) -> None:
    if value:
        out.print(f"vtguardian {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Configuration file (default: $VTGUARDIAN_CONFIG, else ./vtguardian.toml).",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    ctx.obj = State(config)


def _state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    assert isinstance(obj, State)
    return obj


@config_app.command("show")
def config_show(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of TOML.")] = False,
) -> None:
    """Print the effective configuration (file + environment + defaults), API key masked."""
    data = settings_for_display(_state(ctx).settings)
    if as_json:
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    import tomli_w

    # TOML has no null: unset values are left out, exactly as in a config file.
    cleaned = {
        section: {key: value for key, value in values.items() if value is not None}
        if isinstance(values, dict)
        else values
        for section, values in data.items()
    }
    sys.stdout.write(tomli_w.dumps(cleaned))


@app.command("ioc")
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

    classifier = Classifier.from_settings(_state(ctx).settings)
    for value in _expand_stdin(values):
        result = classifier.classify(value)
        sys.stdout.write(orjson.dumps(result.as_dict()).decode() + "\n")


def _expand_stdin(values: list[str]) -> list[str]:
    result: list[str] = []
    for value in values:
        if value == "-":
            result.extend(line.rstrip("\r\n") for line in sys.stdin)
        else:
            result.append(value)
    return result


@db_app.command("upgrade")
def db_upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Create the schema or migrate it to the latest revision (safe to repeat)."""
    from vtguardian.store import migrate
    from vtguardian.store.engine import make_engine

    engine = make_engine(_state(ctx).settings.database.url)
    before = migrate.status(engine)
    after = migrate.upgrade(engine, revision)
    if before.current == after.current:
        out.print(f"database already at revision {after.current}")
    else:
        out.print(f"database migrated from {before.current or 'empty'} to {after.current}")


@db_app.command("downgrade")
def db_downgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. -1 or base.")],
) -> None:
    """Migrate the schema back to an earlier revision ('base' drops every table)."""
    from vtguardian.store import migrate
    from vtguardian.store.engine import make_engine

    engine = make_engine(_state(ctx).settings.database.url)
    after = migrate.downgrade(engine, revision)
    out.print(f"database now at revision {after.current or 'base (empty)'}")


@db_app.command("grant-readonly")
def db_grant_readonly(
    ctx: typer.Context,
    user: Annotated[str, typer.Option("--user", help="The account Grafana logs in with.")],
    password: Annotated[
        str,
        typer.Option("--password", prompt=True, hide_input=True, help="Its password."),
    ],
    host: Annotated[str, typer.Option("--host", help="Where it may connect from.")] = "%",
) -> None:
    """Create (or update) a MariaDB/MySQL account that can only SELECT from this database."""
    from vtguardian.store.engine import make_engine
    from vtguardian.store.readonly import grant_readonly

    engine = make_engine(_state(ctx).settings.database.url)
    database = grant_readonly(engine, user, password, host)
    out.print(f"{user}@{host} can now read (and only read) database {database}")


@db_app.command("status")
def db_status(ctx: typer.Context) -> None:
    """Say which schema revision the database is at and whether it is current."""
    from vtguardian.store import migrate
    from vtguardian.store.engine import describe_url, make_engine

    url = _state(ctx).settings.database.url
    state = migrate.status(make_engine(url))
    note = "up to date" if state.up_to_date else "run 'vtguardian db upgrade'"
    out.print(
        f"database {describe_url(url)}: revision {state.current or 'none'} "
        f"(latest {state.head}, {note})"
    )
    if not state.up_to_date:
        raise typer.Exit(1)


def _open_store(ctx: typer.Context) -> Engine:
    """The configured database, created or migrated to the current schema."""
    from vtguardian.store import migrate
    from vtguardian.store.engine import make_engine

    engine = make_engine(_state(ctx).settings.database.url)
    if not migrate.status(engine).up_to_date:
        migrate.upgrade(engine)
    return engine


@app.command("lookup")
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

    service = LookupService(_state(ctx).settings, _open_store(ctx))

    def waiting(seconds: float) -> None:
        err.print(f"waiting {seconds:.0f} s for the VirusTotal quota")

    results = asyncio.run(service.lookup_values(_expand_stdin(values), refresh, waiting))
    if as_json:
        for result in results:
            sys.stdout.write(orjson.dumps(result.as_dict()).decode() + "\n")
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
            _styled(r.verdict),
            f"{r.malicious}/{r.total}" if r.total is not None else "-",
            f"{r.ratio:.1%}" if r.ratio is not None else "-",
            r.last_analysis_date.strftime("%Y-%m-%d %H:%M") if r.last_analysis_date else "-",
            r.source or "-",
            shown(
                ", ".join(r.engines[:5]) + (" …" if len(r.engines) > 5 else "") or (r.error or "")
            ),
        )
    out.print(table)


def _styled(verdict: str | None) -> Text:
    colour = {"malicious": "bold red", "suspicious": "yellow", "harmless": "green"}.get(
        verdict or ""
    )
    return Text(shown(verdict or "-"), style=colour or "")


@app.command("worker")
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

    engine = _open_store(ctx)
    service = LookupService(_state(ctx).settings, engine)
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


@app.command("quota")
def quota(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the VirusTotal requests used and left per window, and the queue length."""
    from vtguardian.intel.lookup import budget_from
    from vtguardian.quota import QuotaScheduler
    from vtguardian.store import queue

    engine = _open_store(ctx)
    scheduler = QuotaScheduler(engine, budget_from(_state(ctx).settings))
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
        data = {
            "windows": {
                w: {"used": used[w], "limit": limits[w], "remaining": remaining[w]} for w in limits
            },
            "queue": length,
            "paused_until": iso_z(usage.paused_until),
        }
        sys.stdout.write(orjson.dumps(data).decode() + "\n")
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


dashboard_app = typer.Typer(help="The Grafana dashboard virus_total.json.", no_args_is_help=True)
app.add_typer(dashboard_app, name="dashboard")


@dashboard_app.command("export")
def dashboard_export(
    ctx: typer.Context,
    target: Annotated[
        Path, typer.Option("--out", help="Where to write the dashboard ('-' for stdout).")
    ] = Path("virus_total.json"),
) -> None:
    """Write the Grafana dashboard (import it, or let provisioning pick it up)."""
    from vtguardian.dashboards.grafana import dashboard

    budget = _state(ctx).settings.virustotal.per_day
    text = orjson.dumps(dashboard(budget), option=orjson.OPT_INDENT_2).decode() + "\n"
    if str(target) == "-":
        sys.stdout.write(text)
        return
    target.write_text(text)
    out.print(f"dashboard written to {target}")


flow_app = typer.Typer(help="The providers asked for a verdict, in order.", no_args_is_help=True)
app.add_typer(flow_app, name="flow")


@flow_app.command("show")
def flow_show(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print the flow (order, enabled) with each provider's answers, decisions and errors."""
    from sqlalchemy import func, select

    from vtguardian.store.schema import lookup_stats

    settings = _state(ctx).settings
    engine = _open_store(ctx)
    with engine.connect() as connection:
        rows = connection.execute(
            select(lookup_stats.c.provider, lookup_stats.c.outcome, func.sum(lookup_stats.c.count))
            .where(lookup_stats.c.outcome.in_(["answer", "decision", "error"]))
            .group_by(lookup_stats.c.provider, lookup_stats.c.outcome)
        ).all()
    counts = {(provider, outcome): int(total) for provider, outcome, total in rows}
    steps = [
        {
            "position": n,
            "provider": step.provider,
            "enabled": step.enabled,
            **{k: counts.get((step.provider, k), 0) for k in ("answer", "decision", "error")},
        }
        for n, step in enumerate(settings.flow, 1)
    ]
    if as_json:
        sys.stdout.write(orjson.dumps(steps).decode() + "\n")
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


@app.command("enrich")
def enrich_command(
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

    settings = _state(ctx).settings
    classifier = Classifier.from_settings(settings)
    engine = _open_store(ctx)
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


@app.command("serve")
def serve(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option("--host", help="Address to bind (web.host, 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (web.port, 8080).")] = None,
) -> None:
    """Serve the built-in page, the REST API, the blocklist feeds and /metrics."""
    import uvicorn

    from vtguardian.web.app import create_app
    from vtguardian.web.security import allowed_hosts, base_url, is_loopback

    settings = _state(ctx).settings
    host = host or settings.web.host
    port = port or settings.web.port
    # The app answers only the Host names of the address it is really bound to.
    web = settings.web.model_copy(update={"host": host, "port": port})
    settings = settings.model_copy(update={"web": web})
    public = not is_loopback(host)
    if public and settings.web.token is None:
        raise ConfigError(
            f"refusing to serve on {host} without web.token: set VTGUARDIAN_WEB__TOKEN "
            "(every request from another machine must carry it)"
        )
    app_ = create_app(settings, _open_store(ctx), public=public)
    url = base_url(host, port)
    out.print(f"vtguardian page on {url}" + ("?token=<web.token>" if public else ""))
    out.print(f"answering the Host names {', '.join(allowed_hosts(web))} (web.allowed_hosts)")
    uvicorn.run(app_, host=host, port=port, log_level="warning")


block_app = typer.Typer(help="Blocking at Pi-hole and the firewall.", no_args_is_help=True)
app.add_typer(block_app, name="block")


@block_app.command("sync")
def block_sync(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show and record what would change; touch nothing.")
    ] = False,
) -> None:
    """Make Pi-hole's exact deny list match the malicious verdicts, then reload its lists."""
    from vtguardian.actions.pihole import sync_gravity

    settings = _state(ctx).settings
    if dry_run:
        settings = settings.model_copy(
            update={"pihole": settings.pihole.model_copy(update={"dry_run": True})}
        )
    result = sync_gravity(_open_store(ctx), settings)
    mode = "would block" if result.dry_run else "blocked"
    out.print(f"{mode} {len(result.added)}, unblocked {len(result.removed)}")
    for domain in result.added:
        out.print(f"  + {shown(domain)}")
    for domain in result.removed:
        out.print(f"  - {shown(domain)}")
    if result.held:
        err.print(
            f"circuit breaker: {len(result.held)} more malicious domains held back for review "
            f"(pihole.max_new_blocks_per_hour): {shown(', '.join(result.held[:10]))}"
        )


@block_app.command("firewall")
def block_firewall(
    ctx: typer.Context,
    check: Annotated[
        bool, typer.Option("--check", help="Write the script and let `nft -c` check it only.")
    ] = False,
) -> None:
    """Load malicious addresses into the nftables sets vtguardian_block4/6 (`nft -f`)."""
    from vtguardian.actions.nftables import apply_nftables

    settings = _state(ctx).settings
    result = apply_nftables(_open_store(ctx), settings, check_only=check)
    state = "loaded" if result.applied else "checked, not loaded"
    out.print(
        f"{len(result.blocked)} addresses in {settings.nftables.script} ({state}); "
        f"+{len(result.added)} -{len(result.removed)}"
    )
    if result.held:
        err.print(
            f"circuit breaker: {len(result.held)} more addresses held back for review "
            f"(nftables.max_new_blocks_per_hour): {shown(', '.join(result.held[:10]))}"
        )


@block_app.command("add")
def block_add(
    ctx: typer.Context,
    domains: Annotated[list[str], typer.Argument(help="Domains to block at Pi-hole.")],
) -> None:
    """Block domains yourself, whatever their verdict (for pihole.block_days), then sync.

    The circuit breaker does not hold these back; the allowlist still wins.
    """
    _manual_block(ctx, domains, block=True)


@block_app.command("remove")
def block_remove(
    ctx: typer.Context,
    domains: Annotated[list[str], typer.Argument(help="Domains to unblock at Pi-hole.")],
) -> None:
    """Unblock domains and keep them unblocked, whatever their verdict, then sync.

    `vtguardian block add` undoes this.
    """
    _manual_block(ctx, domains, block=False)


def _manual_block(ctx: typer.Context, domains: list[str], block: bool) -> None:
    from vtguardian.actions.pihole import record_manual, sync_gravity

    settings = _state(ctx).settings
    engine = _open_store(ctx)
    chosen = record_manual(engine, settings, domains, block)
    result = sync_gravity(engine, settings)
    verb = "blocked" if block else "unblocked"
    out.print(f"{verb} by you: {', '.join(chosen)}")
    if result.added or result.removed:
        out.print(f"Pi-hole: +{len(result.added)} -{len(result.removed)}")


@block_app.command("list")
def block_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per action.")] = False,
) -> None:
    """Recent blocks and unblocks with their reason and expiry."""
    from vtguardian.store.recent import recent_with_ioc
    from vtguardian.store.schema import actions

    rows = recent_with_ioc(_open_store(ctx), actions, 100)
    for row in rows:
        item = {
            k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row._mapping.items()
        }
        if as_json:
            sys.stdout.write(orjson.dumps(item).decode() + "\n")
        else:
            out.print(
                f"{item['created_at'][:16]}  {item['action']:7s} {item['value']}  "
                f"({item['reason']}{', dry run' if item['dry_run'] else ''})"
            )


@app.command("hunt")
def hunt_command(
    ctx: typer.Context,
    value: Annotated[str, typer.Argument(help="A domain (subdomains included), IP, URL or hash.")],
    days: Annotated[float, typer.Option("--days", min=0, help="How far back to look.")] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per client.")] = False,
) -> None:
    """Which devices contacted an IoC (or anything under a domain), first/last seen, hits."""
    from vtguardian.intel.hunt import hunt

    contacts = hunt(_open_store(ctx), value, days)
    if as_json:
        for contact in contacts:
            sys.stdout.write(orjson.dumps(contact.as_dict()).decode() + "\n")
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


@app.command("alerts")
def alerts_command(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many, newest first.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per alert.")] = False,
) -> None:
    """Recent alerts: IoCs your devices contacted that became malicious or suspicious."""
    from vtguardian.intel.alerts import alert_payload
    from vtguardian.store.recent import recent_with_ioc
    from vtguardian.store.schema import alerts

    payloads = [alert_payload(row) for row in recent_with_ioc(_open_store(ctx), alerts, limit)]
    if as_json:
        for payload in payloads:
            sys.stdout.write(orjson.dumps(payload).decode() + "\n")
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
            _styled(p["verdict"]),
            ratio,
            shown(devices),
        )
    out.print(table)


@app.command("vt-emulator")
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
    out.print(f"VirusTotal emulator on http://127.0.0.1:{port} (keys: {len(emulator.keys)})")
    serve_forever(emulator, port)


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


@app.command("ingest")
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
            help="Print {lines, events, iocs, sightings, skipped_private, invalid, errors, held}.",
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

    settings = _state(ctx).settings
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
    engine = _open_store(ctx)
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
        sys.stdout.write(orjson.dumps(totals.as_dict()).decode() + "\n")
        return
    t = totals
    out.print(
        f"{t.lines} lines, {t.events} events: {t.iocs} IoCs, {t.sightings} sightings; "
        f"{t.skipped_private} private/local skipped, {t.invalid} invalid values, "
        f"{t.errors} bad lines recorded"
    )
    if t.held:
        out.print(
            f"{t.held} unfinished last line(s) held back: the file is still being written; "
            "the next ingest (or --follow) reads it whole"
        )


@app.command("run")
def run_command(ctx: typer.Context) -> None:
    """The service: follow [[ingest.sources]], look up the queue within the quota, apply
    blocking (run.pihole_blocking, run.nftables) and serve the page, API and feeds.

    SIGTERM or Ctrl-C stores what was read, with its offsets, and exits; a restart
    resumes exactly where it stopped.
    """
    from vtguardian.daemon import run_daemon

    settings = _state(ctx).settings
    report = run_daemon(settings, _open_store(ctx), lambda line: err.print(shown(line)))
    t = report.ingested
    err.print(f"stopped: {t.lines} lines read, {t.iocs} IoCs, {report.lookups} VirusTotal requests")
    if report.problems:
        raise UserError("; ".join(report.problems))


@app.command("demo")
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
        f"Ingested {t.lines} log lines: {t.iocs} IoCs in {t.sightings} sightings; "
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
            _styled(verdict),
            f"{ratio:.1%}" if ratio is not None else "-",
            shown(devices),
        )
    out.print(table)
    if len(result.findings) > len(listed):
        out.print(f"... and {len(result.findings) - len(listed)} more in the database.")
    out.print(
        f"Pi-hole (dry run on the demo {result.gravity.name}): would block "
        + (shown(", ".join(result.would_block)) or "nothing")
        + "; suspicious and allowlisted domains are never blocked."
    )
    out.print(f"Database: {result.database}")
    if serve_page:
        _serve_demo(result.database, port)


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


def main() -> None:
    """Console entry point: user errors become one line on stderr and an exit code."""
    try:
        app()
    except UserError as exc:
        err.print(f"vtguardian: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("vtguardian: interrupted", markup=False, highlight=False)
        sys.exit(130)
    except DBAPIError as exc:  # e.g. a full disk: one line, and what was committed stays
        reason = " ".join(str(exc.orig if exc.orig is not None else exc).split())
        err.print(f"vtguardian: database error: {reason}", markup=False, highlight=False)
        sys.exit(3)
