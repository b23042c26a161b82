"""`autocomplete --server start|stop|status` and the opt-in auto-start: the CLI's side of the warm server."""

from __future__ import annotations

import json
import time

from autocomplete import terminal
from autocomplete.serve import client
from autocomplete.settings import Settings


def manage(action: str, settings: Settings) -> int:
    where, idle_timeout = settings.placement(), settings.idle_timeout
    shown = _shown(settings)
    if action == "start":
        if client.running(*where):
            terminal.notice(f"A server for {shown} is already running.")
            return 0
        with terminal.status(f"Starting a server for {shown}…"):
            found = client.start(*where, idle_timeout=idle_timeout)
        terminal.notice(f"Server ready: {found['model']} (pid {found['pid']}), "
                  + (f"exits after {idle_timeout:g} s unused." if idle_timeout else "runs until --server stop."))
        return 0
    if action == "stop":
        if client.stop(*where):
            terminal.notice(f"Stopped the server for {shown}.")
        else:
            terminal.notice(f"No server for {shown} was running.")
        return 0
    found = client.status(*where)
    if settings.json_lines:
        print(json.dumps({"running": found is not None, **(found or {})}))
    elif found is None:
        print(terminal.visible(f"No server for {shown} is running."))
    else:
        since = found["since"]
        print(terminal.visible(f"{found['model']} on {found['device']} ({found['precision']}, {found['engine']}), "
                               f"pid {found['pid']}, up since {since}, {found['requests']} requests served, "
                               f"idle timeout {found['idle_timeout']:g} s"))
    return 0 if found is not None else 1


def ensure_running(settings: Settings) -> None:
    """AUTOCOMPLETE_AUTOSTART=1: start a server on first use, so every later call is warm."""
    where = settings.placement()
    if not client.running(*where):
        started = time.perf_counter()
        with terminal.status("Starting a background server (AUTOCOMPLETE_AUTOSTART=1)…"):
            client.start(*where, idle_timeout=settings.idle_timeout)
        terminal.notice(f"Started a background server in {time.perf_counter() - started:.1f} s; later calls are warm.")


def _shown(settings: Settings) -> str:
    """The model, and the device, precision and engine when they were asked for."""
    asked = [settings.device] if settings.device != "auto" else []
    asked += [settings.precision] if settings.precision != "auto" else []
    asked += [settings.engine] if settings.engine != "auto" else []
    return (settings.model or "the default model") + (f" ({', '.join(asked)})" if asked else "")
