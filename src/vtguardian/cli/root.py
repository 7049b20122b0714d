"""The root of the command line: the Typer app, its options, what every command
shares (the settings, the database, values from stdin) and ``main``.

Errors a user can meet are :class:`~vtguardian.errors.UserError`; ``main`` prints
them as one line and exits with their code, never with a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import HAS_RICH, TyperGroup

from vtguardian import __version__
from vtguardian.cli.output import err, out
from vtguardian.errors import UserError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from vtguardian.config import Settings


class _PlainHelp(TyperGroup):
    """Help texts are text: Rich would read ``[[ingest.sources]]`` in a docstring as
    markup and print ``[]``. Every help text of every command and option is escaped
    once the command tree is built, so ``--help`` prints it as written."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        _escape_help(self)


def _escape_help(command: Any) -> None:
    if HAS_RICH and getattr(command, "rich_markup_mode", None) == "rich":
        from rich.markup import escape

        for owner in (command, *command.params):
            if getattr(owner, "help", None):
                owner.help = escape(owner.help)
        if getattr(command, "short_help", None):
            command.short_help = escape(command.short_help)
    for sub in getattr(command, "commands", {}).values():
        _escape_help(sub)


app = typer.Typer(
    name="vtguardian",
    help=(
        "Turn your network's own DNS, IDS and flow logs into VirusTotal-backed threat "
        "intelligence: collect IoCs, look them up within your quota, store, show and block."
    ),
    cls=_PlainHelp,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


class State:
    """Per-invocation options from the top-level callback; settings load lazily."""

    def __init__(self, config_path: Path | None) -> None:
        self.config_path = config_path
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from vtguardian.config import load_settings  # pydantic: not for --help

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


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    assert isinstance(obj, State)
    return obj


def open_store(ctx: typer.Context) -> Engine:
    """The configured database, created or migrated to the current schema."""
    from vtguardian.store import migrate
    from vtguardian.store.engine import make_engine

    engine = make_engine(state(ctx).settings.database.url)
    if not migrate.status(engine).up_to_date:
        migrate.upgrade(engine)
    return engine


def with_stdin(values: list[str]) -> list[str]:
    """The values given, a '-' among them replaced by one value per line of stdin."""
    result: list[str] = []
    for value in values:
        if value == "-":
            result.extend(line.rstrip("\r\n") for line in sys.stdin)
        else:
            result.append(value)
    return result


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
    except Exception as exc:
        # SQLAlchemy is loaded by the commands that use a database, not for --help.
        from sqlalchemy.exc import DBAPIError

        if not isinstance(exc, DBAPIError):
            raise
        # e.g. a full disk: one line, and what was committed stays
        reason = " ".join(str(exc.orig if exc.orig is not None else exc).split())
        err.print(f"vtguardian: database error: {reason}", markup=False, highlight=False)
        sys.exit(3)
