"""``vtguardian config`` and ``vtguardian db``: the configuration and the schema."""

from __future__ import annotations

import sys
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
