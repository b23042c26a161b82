from autocomplete.cli import run

raise SystemExit(run())
