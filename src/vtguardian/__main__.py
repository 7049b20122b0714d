"""``python -m vtguardian`` runs the same CLI as the console script."""

from vtguardian.cli import main

main()
