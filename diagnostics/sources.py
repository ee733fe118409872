"""Which sources are configured and of which kind: the one place that decides.

A source is anything registered in `loaders.SOURCES` or configured under
`[sources.<name>]`. Its kind picks the connectivity check and the settings it needs:

1. `kind = "postgres" | "rest" | "files"` in `[sources.<name>]`, when set;
2. else what the registered source module builds on (dlt's sql_database, rest_api or
   filesystem), read from its text: importing it would import dlt;
3. else the configuration keys present.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any

from loaders import SOURCES, dataset_name

KINDS = ("postgres", "rest", "files")

# (kind, words in the registered module's source text that reveal it)
MODULE_MARKERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("rest", ("rest_api", "RESTClient", "rest_client")),
    ("files", ("dlt.sources.filesystem", "readers(", "filesystem(")),
    ("postgres", ("sql_database", "sql_table")),
)

# (kind, configuration keys that reveal it), first match wins
CONFIG_MARKERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("rest", ("base_url",)),
    ("files", ("bucket_url", "landing_dir", "landing_path")),
    ("postgres", ("credentials", "tables")),
)

# the settings each kind's checks read, in order of preference
SETTINGS: dict[str, dict[str, tuple[str, ...]]] = {
    "postgres": {"credentials": ("credentials",), "tables": ("tables",), "schema": ("schema",)},
    "rest": {
        "base_url": ("base_url",),
        "token": ("token", "api_key", "access_token", "credentials.token", "auth.token"),
        "probe_path": ("doctor_path", "health_path"),
        "endpoints": ("endpoints", "resources"),
    },
    "files": {
        "folder": ("bucket_url", "landing_dir", "landing_path"),
        "glob": ("file_glob", "glob"),
    },
}

# settings a source cannot work without (the postgres credentials may default to the demo)
REQUIRED: dict[str, tuple[str, ...]] = {
    "postgres": ("tables",),
    "rest": ("base_url", "token"),
    "files": ("folder",),
}


@dataclass
class SourceSpec:
    name: str
    kind: str | None  # None: could not tell
    registered: bool
    config: dict[str, Any] = field(default_factory=dict, repr=False)  # may hold secrets
    kind_from: str = ""

    @property
    def dataset(self) -> str:
        return dataset_name(self.name)

    def setting(self, key: str) -> Any:
        """The first configured of the names `key` goes by for this kind, or None."""
        for path in SETTINGS.get(self.kind or "", {}).get(key, (key,)):
            node: Any = self.config
            for part in path.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if node not in (None, ""):
                return node
        return None

    def missing(self) -> list[str]:
        return [key for key in REQUIRED.get(self.kind or "", ()) if self.setting(key) is None]


def _module_text(target: str) -> str:
    module = target.split(":")[0]
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return ""
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return ""
    try:
        with open(spec.origin, encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return ""


def kind_of(
    name: str, config: dict[str, Any], registered: dict[str, str]
) -> tuple[str | None, str]:
    """The kind of source `name` and what told it ("config kind", "module", "config keys")."""
    explicit = config.get("kind")
    if isinstance(explicit, str) and explicit in KINDS:
        return explicit, "config kind"
    if name in registered:
        text = _module_text(registered[name])
        for kind, words in MODULE_MARKERS:
            if any(word in text for word in words):
                return kind, "module"
    for kind, keys in CONFIG_MARKERS:
        if any(key in config for key in keys):
            return kind, "config keys"
    return None, ""


def configured_sources(
    config_sources: dict[str, dict[str, Any]], registered: dict[str, str] | None = None
) -> list[SourceSpec]:
    """Registered sources first (in registration order), then configured-only ones."""
    registered = SOURCES if registered is None else registered
    names = list(registered) + sorted(n for n in config_sources if n not in registered)
    specs = []
    for name in names:
        config = config_sources.get(name, {})
        kind, kind_from = kind_of(name, config, registered)
        specs.append(
            SourceSpec(
                name=name,
                kind=kind,
                registered=name in registered,
                config=config,
                kind_from=kind_from,
            )
        )
    return specs
