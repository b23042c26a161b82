"""The config file: defaults a user sets once (their model, temperature, style, --api server…), in TOML at
<the user config dir>/autocomplete/config.toml (~/.config/autocomplete/config.toml on Linux; XDG_CONFIG_HOME
honoured) or wherever AUTOCOMPLETE_CONFIG points. An option beats its environment variable, which beats the file,
which beats the built-in default (autocomplete.ui.options.from_options applies it).

    model = "smollm2-135m"
    temperature = 0.5
    api = "http://localhost:8080/v1"

Never an API key: a config file is copied, synced and shared; the key stays in AUTOCOMPLETE_API_KEY.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from autocomplete import settings as checks
from autocomplete.errors import UsageError

# The options the file may set (autocomplete.settings: in_config), by their own names, dashes or underscores.
KEYS = tuple(spec.dest for spec in checks.OPTIONS if spec.in_config)
_SECRETS = ("api_key", "key", "token", "password")


def path() -> Path:
    explicit = os.environ.get("AUTOCOMPLETE_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("autocomplete", appauthor=False)) / "config.toml"


def load() -> dict:
    """The file's settings, checked, by option name (top_k, not top-k); {} when there is no file. Any problem is
    one usage error naming the file and the key."""
    return _read(path())


@cache  # once per process and file: the REPL and --each-line build settings more than once
def _read(file: Path) -> dict:
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise UsageError(f"config {file}: {error.strerror or error}") from None
    import tomllib

    try:
        table = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise UsageError(f"config {file}: not valid TOML ({error})") from None
    except RecursionError:  # tomllib parses nested arrays by recursion, without a limit of its own
        raise UsageError(f"config {file}: not valid TOML (nested too deeply)") from None
    values = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name in _SECRETS:
            raise UsageError(f"config {file}: {key}: never keep an API key in a file; set AUTOCOMPLETE_API_KEY")
        if name not in KEYS:
            import difflib

            close = difflib.get_close_matches(name, KEYS, n=1)
            hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(KEYS)}"
            raise UsageError(f"config {file}: unknown key {key!r} ({hint})")
        kind = checks.OPTION[name].kind
        if not checks.accepts(name, value):
            raise UsageError(f"config {file}: {key}: must be a {_KIND.get(kind, 'string')}, not {value!r}")
        if kind is float:
            value = float(value)  # `temperature = 0` is 0.0, as the option's is
        try:
            values[name] = checks.OPTION[name].checked(value)
        except ValueError as error:
            raise UsageError(f"config {file}: {key}: {error}") from None
    return values


_KIND = {float: "number", int: "whole number"}
