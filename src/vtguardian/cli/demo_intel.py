"""The demo's intelligence beyond engine counts, printed (values as text, never markup)."""

from __future__ import annotations

from rich.table import Table

from vtguardian.cli.output import out, shown, styled
from vtguardian.demo_intel import DemoIntel


def print_intel(intel: DemoIntel) -> None:
    """Fresh analyses, threat context and relationships, as the demo found them."""
    extra = intel.background_requests
    if extra:
        out.print(
            f"Beyond lookups: {sum(extra.values())} requests ("
            + ", ".join(f"{count} {outcome}" for outcome, count in extra.items())
            + "), within the same quota, behind alerts and new IoCs."
        )
    for item in intel.reanalyses:
        before = item.old_verdict or "-"
        after = item.new_verdict or item.status
        if item.kind == "submit":
            what = "URL unknown to VirusTotal submitted"
        else:
            when = f"{item.old_analysis_date:%Y-%m-%d}" if item.old_analysis_date else "long ago"
            what = f"stale analysis (last {when}) re-analysed"
        out.print(
            f"Fresh analysis: {shown(item.value)}: {what}, {item.polls} polls: ",
            styled(before),
            " -> ",
            styled(after),
            sep="",
        )
    table = Table(title="Threat context of the flagged IoCs")
    for column in ("IoC", "verdict", "threat categories", "family / label", "note"):
        table.add_column(column, overflow="fold")
    for flagged in intel.flagged:
        if not (flagged.threat_categories or flagged.families or flagged.young):
            continue
        label = [flagged.threat_label] if flagged.threat_label else []
        family = ", ".join([*flagged.families, *label][:3]) or "-"
        table.add_row(
            shown(flagged.value),
            styled(flagged.verdict),
            shown(", ".join(flagged.threat_categories) or "-"),
            shown(family),
            "young domain" if flagged.young else "",
        )
    out.print(table)
    for a, b, relation in intel.links:
        out.print(
            f"Related: {shown(a)} -> {shown(b)} ({shown(relation)}); your devices contacted both."
        )
    stale = len(intel.stale_shown_fresh)
    out.print(
        f"Analyses older than the maximum age shown as fresh: {stale}; site categories in "
        f"the attack-vector panels: {len(intel.site_categories_in_vectors)} "
        f"(threat categories there: {shown(', '.join(intel.vector_labels) or 'none')})."
    )
