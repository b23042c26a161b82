"""The config file: defaults a user sets once (their model, temperature, style, --api server…), in TOML at
<the user config dir>/autocomplete/config.toml (~/.config/autocomplete/config.toml on Linux; XDG_CONFIG_HOME
honoured) or wherever AUTOCOMPLETE_CONFIG points. An option beats its environment variable, which beats the file,
which beats the built-in default (autocomplete.ui.dispatch.from_options applies it).

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

# key -> (the TOML types it takes, the check on its value); keys are the options' own names, dashes or underscores.
KEYS = {
    "model": ((str,), None),
    "temperature": ((int, float), checks.check_temperature),
    "top_k": ((int,), checks.check_top_k),
    "top_p": ((int, float), checks.check_top_p),
    "max_tokens": ((int,), checks.check_max_tokens),
    "stop": ((str,), checks.check_stop),
    "style": ((str,), checks.check_style),
    "device": ((str,), checks.check_device),
    "precision": ((str,), checks.check_precision),
    "engine": ((str,), checks.check_engine),
    "api": ((str,), None),
    "idle_timeout": ((int, float), lambda v: v if v >= 0 else _fail(f"must be 0 or more, not {v}")),
}
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
        types, check = KEYS[name]
        if isinstance(value, bool) or not isinstance(value, types):
            raise UsageError(f"config {file}: {key}: must be a {_kind(types)}, not {value!r}")
        if float in types:
            value = float(value)  # `temperature = 0` is 0.0, as the option's is
        try:
            values[name] = check(value) if check else value
        except ValueError as error:
            raise UsageError(f"config {file}: {key}: {error}") from None
    return values


def _kind(types: tuple) -> str:
    return "number" if float in types else "whole number" if int in types else "string"


def _fail(message: str):
    raise ValueError(message)
