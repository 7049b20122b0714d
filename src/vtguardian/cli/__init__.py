"""The ``vtguardian`` command: thin, every command calls into a package.

One module per group of commands; :mod:`.root` holds the app, its options and
``main``, :mod:`.output` what every command prints with. This file puts the
commands on the app, in the order ``vtguardian --help`` lists them. Imports that
only a command needs stay inside it: ``vtguardian --help`` loads none of them.
"""

from __future__ import annotations

from vtguardian.cli import block, db, demo, ingest, investigate, jobs, lookups, service, tools
from vtguardian.cli.root import app, main

for _name, _command in (
    ("ioc", investigate.ioc),
    ("lookup", lookups.lookup),
    ("worker", lookups.worker),
    ("quota", lookups.quota),
    ("enrich", ingest.enrich),
    ("serve", service.serve),
    ("hunt", investigate.hunt),
    ("alerts", investigate.alerts),
    ("vt-emulator", tools.vt_emulator),
    ("ingest", ingest.ingest),
    ("run", service.run),
    ("demo", demo.demo),
):
    app.command(_name)(_command)

for _name, _group in (
    ("config", db.config_app),
    ("db", db.db_app),
    ("dashboard", tools.dashboard_app),
    ("flow", lookups.flow_app),
    ("block", block.block_app),
    ("job", jobs.job_app),
):
    app.add_typer(_group, name=_name)
del _name, _command, _group

__all__ = ["app", "main"]
