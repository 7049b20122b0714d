"""The long-running commands: ``run`` (the whole service) and ``serve`` (the page and API)."""

from __future__ import annotations

from typing import Annotated

import typer

from vtguardian.cli.output import err, out, shown
from vtguardian.cli.root import open_store, state
from vtguardian.errors import ConfigError, UserError


def run(ctx: typer.Context) -> None:
    """The service: follow [[ingest.sources]], look up the queue within the quota, apply
    blocking (run.pihole_blocking, run.nftables) and serve the page, API and feeds.

    SIGTERM or Ctrl-C stores what was read, with its offsets, and exits; a restart
    resumes exactly where it stopped.
    """
    from vtguardian.daemon import run_daemon

    settings = state(ctx).settings
    report = run_daemon(settings, open_store(ctx), lambda line: err.print(shown(line)))
    t = report.ingested
    err.print(
        f"stopped: {t.lines} lines read, {t.new_iocs} new IoCs, "
        f"{report.lookups} VirusTotal requests"
    )
    if report.problems:
        raise UserError("; ".join(report.problems))


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

    settings = state(ctx).settings
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
    app = create_app(settings, open_store(ctx), public=public)
    url = base_url(host, port)
    out.print(f"vtguardian page on {url}" + ("?token=<web.token>" if public else ""))
    out.print(f"answering the Host names {', '.join(allowed_hosts(web))} (web.allowed_hosts)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
