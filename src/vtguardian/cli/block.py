"""``vtguardian block``: blocking at Pi-hole and at the firewall."""

from __future__ import annotations

from typing import Annotated

import typer

from vtguardian.cli.output import err, out, print_json_lines, shown
from vtguardian.cli.root import open_store, state

block_app = typer.Typer(help="Blocking at Pi-hole and the firewall.", no_args_is_help=True)


@block_app.command("sync")
def block_sync(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show and record what would change; touch nothing.")
    ] = False,
) -> None:
    """Make Pi-hole's exact deny list match the malicious verdicts, then reload its lists."""
    from vtguardian.actions.pihole import sync_gravity

    settings = state(ctx).settings
    if dry_run:
        settings = settings.model_copy(
            update={"pihole": settings.pihole.model_copy(update={"dry_run": True})}
        )
    result = sync_gravity(open_store(ctx), settings)
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

    settings = state(ctx).settings
    result = apply_nftables(open_store(ctx), settings, check_only=check)
    status = "loaded" if result.applied else "checked, not loaded"
    out.print(
        f"{len(result.blocked)} addresses in {settings.nftables.script} ({status}); "
        f"+{len(result.added)} -{len(result.removed)}"
    )
    if result.followed:
        out.print(
            f"{len(result.followed)} of them follow a malicious domain that resolved to them "
            "here (nftables.resolution_days)"
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

    settings = state(ctx).settings
    engine = open_store(ctx)
    chosen = record_manual(engine, settings, domains, block)
    result = sync_gravity(engine, settings)
    verb = "blocked" if block else "unblocked"
    out.print(f"{verb} by you: {shown(', '.join(chosen))}")
    if result.added or result.removed:
        out.print(f"Pi-hole: +{len(result.added)} -{len(result.removed)}")


@block_app.command("list")
def block_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per action.")] = False,
) -> None:
    """Recent blocks and unblocks with their reason and expiry."""
    from vtguardian.store.recent import recent_actions

    items = [
        {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}
        for row in recent_actions(open_store(ctx), 100)
    ]
    if as_json:
        print_json_lines(items)
        return
    for item in items:
        out.print(
            f"{item['created_at'][:16]}  {item['action']:7s} {shown(item['value'])}  "
            f"({shown(item['reason'])}{', dry run' if item['dry_run'] else ''})"
        )
