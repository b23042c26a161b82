"""`autocomplete --server start|stop|status` and the opt-in auto-start: the CLI's side of the warm server."""

from __future__ import annotations

import json
import time

from autocomplete import client, ui
from autocomplete.actions import Options


def manage(action: str, options: Options) -> int:
    key, idle_timeout = options.server_key(), options.idle_timeout
    shown = options.model or "the default model"
    if action == "start":
        if client.running(key):
            ui.notice(f"A server for {shown} is already running.")
            return 0
        with ui.status(f"Starting a server for {shown}…"):
            found = client.start(key, options.device, idle_timeout)
        ui.notice(f"Server ready: {found['model']} (pid {found['pid']}), "
                  + (f"exits after {idle_timeout:g} s unused." if idle_timeout else "runs until --server stop."))
        return 0
    if action == "stop":
        if client.stop(key):
            ui.notice(f"Stopped the server for {shown}.")
        else:
            ui.notice(f"No server for {shown} was running.")
        return 0
    found = client.status(key)
    if options.json_lines:
        print(json.dumps({"running": found is not None, **(found or {})}))
    elif found is None:
        print(f"No server for {shown} is running.")
    else:
        since = found["since"]
        print(f"{found['model']} on {found['device']}, pid {found['pid']}, up since {since}, "
              f"{found['requests']} requests served, idle timeout {found['idle_timeout']:g} s")
    return 0 if found is not None else 1


def ensure_running(options: Options) -> None:
    """AUTOCOMPLETE_AUTOSTART=1: start a server on first use, so every later call is warm."""
    key = options.server_key()
    if not client.running(key):
        started = time.perf_counter()
        with ui.status("Starting a background server (AUTOCOMPLETE_AUTOSTART=1)…"):
            client.start(key, options.device, options.idle_timeout)
        ui.notice(f"Started a background server in {time.perf_counter() - started:.1f} s; later calls are warm.")
