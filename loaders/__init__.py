"""dlt sources, one sub-package each, and the one function that runs a pipeline for them.

Importing this package is cheap: dlt (~2.5 s) is imported only when a source is built.
"""

from __future__ import annotations

# source name -> "module:function" of its @dlt.source; the raw dataset is raw_<name>
SOURCES: dict[str, str] = {
    "shop": "loaders.shop:shop",
    "payments": "loaders.payments:payments",
    "marketing": "loaders.marketing:marketing",
}


def dataset_name(source: str) -> str:
    return f"raw_{source}"
