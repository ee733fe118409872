"""The demo flow on PostgreSQL and on a local Spark standalone cluster, same run, same
sources: load, transform and test seconds per engine, and the marts' fingerprints compared.

    make bench-spark            # installs the spark extra, 20k orders
    .venv/bin/python -m bench.spark --orders 20000

The cluster is one master and one worker (1 core, 1 GiB) on 127.0.0.1, started and stopped
here (tests/spark/cluster.py). One shop database, one payments API and one landing folder
feed both warehouses, each with its own empty dlt working directory. Each `elt` step is a
subprocess timed from spawn to exit (bench/engines.py); its RSS is the driver's (the
executor's JVM belongs to the worker). Results: bench/README.md, "Spark".
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.engines import STEPS, elt, seed_sources, sources_env
from bench.shop_load import drop_database
from runtime.project import project_dir

SOURCE_DB, WAREHOUSE_DB = "bench_spark_shop", "bench_spark_wh"
sys.path.insert(0, str(project_dir() / "tests" / "spark"))


def marts(env: dict[str, str]) -> dict:
    """The marts' fingerprint, in its own process (for Spark: its own driver)."""
    done = subprocess.run(
        [sys.executable, "-m", "runtime.fingerprint", "marts"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=3600,
    )
    return json.loads(done.stdout)


def main(argv: list[str] | None = None) -> None:
    from cluster import local_cluster

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    args = parser.parse_args(argv)
    from demo.payments_api import PaymentsAPI

    server, shop_url = seed_sources(args.orders, SOURCE_DB, WAREHOUSE_DB)
    results: dict[str, dict] = {}
    prints: dict[str, dict] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        PaymentsAPI(shop_url, "bench-token") as api,
        local_cluster(Path(tmp) / "cluster") as cluster,
    ):
        root = Path(tmp)
        base = sources_env(shop_url, api, root)
        urls = {"postgres": server.url_for(WAREHOUSE_DB), "spark": cluster.url(root)}
        for engine, url in urls.items():
            env = {**base, "ELT_WAREHOUSE_URL": url, "ELT_PIPELINES_DIR": str(root / engine)}
            results[engine] = {step: elt(step, env) for step in STEPS}
            print(engine, json.dumps(results[engine]), flush=True)
            prints[engine] = marts(env)
    drop_database(server, WAREHOUSE_DB)
    drop_database(server, SOURCE_DB)
    same = prints["postgres"] == prints["spark"]
    print(f"\n{'step':<10} {'postgres s':>11} {'spark s':>9} {'ratio':>6}")
    for step in STEPS:
        pg, spark = results["postgres"][step]["seconds"], results["spark"][step]["seconds"]
        print(f"{step:<10} {pg:>11.1f} {spark:>9.1f} {spark / pg:>6.2f}")
    orders = prints["postgres"].get("fct_orders", {}).get("rows", 0)
    transform = results["spark"]["transform"]["seconds"]
    print(f"spark transform: {orders / transform:,.0f} fct_orders rows/s on 1 worker core")
    differences = [t for t in prints["postgres"] if prints["postgres"][t] != prints["spark"].get(t)]
    print("marts identical" if same else f"marts differ: {differences}")
    if args.json:
        args.json.write_text(json.dumps({"orders": args.orders, "results": results, "same": same}))


if __name__ == "__main__":
    main()
