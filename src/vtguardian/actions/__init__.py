"""Acting on verdicts: blocklist feeds for DNS filters and IDSs (and, later, direct blocks)."""
