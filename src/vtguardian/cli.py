"""The ``vtguardian`` command: thin, every command calls into a package.

Errors a user can meet are :class:`~vtguardian.errors.UserError`; ``main`` prints
them as one line and exits with their code, never with a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console

from vtguardian import __version__
from vtguardian.config import Settings, load_settings, settings_for_display
from vtguardian.errors import UserError

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

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)


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


@app.command("demo")
def demo(
    folder: Annotated[
        Path,
        typer.Option("--dir", help="Where to put the demo database.", show_default=True),
    ] = Path("vtguardian-demo"),
) -> None:
    """Offline walkthrough, no API key needed: classify sample indicators, store them."""
    from rich.table import Table

    from vtguardian.walkthrough import run_walkthrough

    result = run_walkthrough(folder)
    table = Table(title="What vtguardian would look up, and what stays private")
    for column in ("input", "type", "normalised", "look up?", "why not"):
        table.add_column(column, overflow="fold")
    for item in result.results:
        table.add_row(
            item.input,
            item.type.value if item.type else "-",
            item.value or "-",
            "[green]yes[/]" if item.eligible else "[red]no[/]",
            item.reason or "",
        )
    out.print(table)
    out.print(
        f"{result.stored} indicators stored as sightings in {result.database}; "
        f"{len(result.results) - result.stored} kept private or rejected."
    )


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
