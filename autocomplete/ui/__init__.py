"""The command line, the REPL and what they show: autocomplete.ui.cli reads the arguments, dispatch runs them."""
