"""``vtguardian config`` and ``vtguardian db``: the configuration and the schema."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from vtguardian.cli.output import out, print_json
from vtguardian.cli.root import state

config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
db_app = typer.Typer(help="Create, migrate and inspect the database.", no_args_is_help=True)


@config_app.command("show")
def config_show(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of TOML.")] = False,
) -> None:
    """Print the effective configuration (file + environment + defaults), API key masked."""
    from vtguardian.config import settings_for_display

    data = settings_for_display(state(ctx).settings)
    if as_json:
        print_json(data, indent=True)
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


@db_app.command("upgrade")
def db_upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Create the schema or migrate it to the latest revision (safe to repeat)."""
    from vtguardian.store import migrate
    from vtguardian.store.engine import make_engine

    engine = make_engine(state(ctx).settings.database.url)
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

    engine = make_engine(state(ctx).settings.database.url)
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

    engine = make_engine(state(ctx).settings.database.url)
    database = grant_readonly(engine, user, password, host)
    out.print(f"{user}@{host} can now read (and only read) database {database}")


@db_app.command("status")
def db_status(ctx: typer.Context) -> None:
    """Say which schema revision the database is at and whether it is current."""
    from vtguardian.store import migrate
    from vtguardian.store.engine import describe_url, make_engine

    url = state(ctx).settings.database.url
    status = migrate.status(make_engine(url))
    note = "up to date" if status.up_to_date else "run 'vtguardian db upgrade'"
    out.print(
        f"database {describe_url(url)}: revision {status.current or 'none'} "
        f"(latest {status.head}, {note})"
    )
    if not status.up_to_date:
        raise typer.Exit(1)


@db_app.command("prune")
def db_prune(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only say what would be removed.")
    ] = False,
    vacuum: Annotated[
        bool,
        typer.Option(
            "--vacuum",
            help="SQLite created before incremental vacuum: convert it once (a full VACUUM).",
        ),
    ] = False,
) -> None:
    """Remove what [retention] says has had its time, in small transactions."""
    from vtguardian.cli.root import open_store
    from vtguardian.clock import utcnow
    from vtguardian.store import retention

    settings = state(ctx).settings
    engine = open_store(ctx)
    now = utcnow()
    if dry_run:
        with engine.connect() as connection:
            planned = retention.plan(connection, settings.retention, now)
        for kind, count in planned.items():
            out.print(f"{kind}: {count:,} rows would be removed")
        out.print(f"total: {sum(planned.values()):,} rows (dry run: nothing removed)")
        return
    if vacuum:
        retention.enable_incremental_vacuum(engine)
    result = retention.prune(engine, settings.retention, now)
    for kind, count in result.removed.items():
        out.print(f"{kind}: {count:,} rows removed")
    out.print(f"total: {sum(result.removed.values()):,} rows in {result.seconds:.1f} s")
    if result.file_bytes_before is not None and result.file_bytes_after is not None:
        out.print(
            f"database file: {result.file_bytes_before / 1e6:,.1f} MB before, "
            f"{result.file_bytes_after / 1e6:,.1f} MB after"
        )
    if result.vacuum_off:
        out.print(
            "the file keeps its freed pages for reuse (auto_vacuum is off): "
            "run 'vtguardian db prune --vacuum' once to let it shrink"
        )


@db_app.command("stats")
def db_stats(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Rows and bytes per table, oldest and newest data, what retention removes next."""
    from vtguardian.cli.root import open_store
    from vtguardian.clock import iso_z, utcnow
    from vtguardian.store import retention
    from vtguardian.store.footprint import file_bytes, table_sizes

    settings = state(ctx).settings
    engine = open_store(ctx)
    with engine.connect() as connection:
        tables = table_sizes(connection, exact=True)
        total = file_bytes(connection)
        planned = retention.plan(connection, settings.retention, utcnow())
        last = retention.last_run(connection)
    if as_json:
        print_json(
            {
                "bytes": total,
                "tables": [
                    {
                        "table": t.table,
                        "rows": t.rows,
                        "bytes": t.bytes,
                        "oldest": iso_z(t.oldest),
                        "newest": iso_z(t.newest),
                    }
                    for t in tables
                ],
                "retention": {"last_prune": iso_z(last), "next_prune_removes": planned},
            },
            indent=True,
        )
        return
    from rich.table import Table

    table = Table("table", "rows", "MB", "oldest", "newest")
    for t in tables:
        table.add_row(
            t.table,
            f"{t.rows:,}",
            "-" if t.bytes is None else f"{t.bytes / 1e6:,.2f}",
            iso_z(t.oldest) or "-",
            iso_z(t.newest) or "-",
        )
    out.print(table)
    out.print(f"database: {total / 1e6:,.1f} MB")
    out.print(f"last prune: {iso_z(last) or 'never'}")
    due = {kind: count for kind, count in planned.items() if count}
    out.print(
        "next prune removes: "
        + (", ".join(f"{kind} {count:,}" for kind, count in due.items()) or "nothing")
    )


@db_app.command("backup")
def db_backup(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Where to write the copy.")],
) -> None:
    """Copy a SQLite database consistently while 'run' writes (the online backup API)."""
    from vtguardian.store.backup import backup_sqlite
    from vtguardian.store.engine import make_engine

    engine = make_engine(state(ctx).settings.database.url)
    size = backup_sqlite(engine, file)
    out.print(f"backed up to {file} ({size / 1e6:,.1f} MB)")
