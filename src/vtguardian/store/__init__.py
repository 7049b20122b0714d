"""Store: every box of the pipeline reads and writes the database through here."""
