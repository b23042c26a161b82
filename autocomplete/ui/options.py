"""What one command line asks for: its Settings, from the options that autocomplete.ui.args or Typer
(autocomplete.ui.cli) read. Both parsers end here, so they can't build it two ways; an option beats its environment
variable (the parsers read both), which beats the config file, which beats the default (autocomplete.settings)."""

from __future__ import annotations

from autocomplete import config, terminal
from autocomplete.errors import UsageError
from autocomplete.settings import OPTIONS, Settings


def from_options(prompt: str | None = None, **given) -> Settings:
    """The Settings a command line asks for, from its options by name (None, False or []: not given), checked: a
    bad value is a ValueError, options that don't go together a UsageError."""
    defaults, file = Settings(), config.load()
    values = {}
    for spec in OPTIONS:
        value = given.get(spec.dest)
        if value is None or value == []:
            value = getattr(defaults, spec.dest)
            value = file.get(spec.dest, value) if spec.in_config else value
            value = [value] if spec.multiple else value
        else:
            value = [spec.checked(v) for v in value] if spec.multiple else spec.checked(value)
        values[spec.dest] = value
    temperatures = values.pop("temperature")
    if len(temperatures) > 1 and not values["explain"]:
        raise UsageError("give one --temperature (several only with --explain, to compare them)")
    if values["suggest"] and values["explain"]:
        raise UsageError("--suggest and --explain don't go together")
    if given.get("words") is not None and not values["suggest"]:
        raise UsageError("--words sets the length of suggestions: use it with --suggest N")
    if given.get("port") is not None and not values["web"]:
        raise UsageError("--port sets where --web listens: use it with --web")
    if values["web"]:
        alone = [flag for flag, on in (("PROMPT", prompt is not None), ("--suggest", values["suggest"]),
                                       ("--explain", values["explain"]), ("--each-line", values["each_line"]),
                                       ("--interactive", values["interactive"]), ("--server", values["server"]),
                                       ("--json", values["json_lines"])) if on]
        if alone:
            raise UsageError(f"--web serves a page: it takes no {alone[0]} (the page asks for what it shows)")
    return Settings(**values, temperature=temperatures[0], temperatures=temperatures,
                    prompt=None if prompt is None else _valid_text(prompt))


def _valid_text(text: str) -> str:
    """A command-line argument as text: bytes that are not UTF-8 reach Python as lone surrogates, which no tokenizer,
    JSON writer or terminal takes; they become U+FFFD, said once (as for stdin)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        terminal.notice("PROMPT is not valid UTF-8: bytes that aren't were replaced with \ufffd")
        try:
            raw = text.encode("utf-8", "surrogateescape")  # the argument's own bytes back
        except UnicodeEncodeError:  # a surrogate that stands for no byte
            raw = text.encode("utf-8", "surrogatepass")
        return raw.decode("utf-8", errors="replace")
