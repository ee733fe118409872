"""A Spark standalone cluster on 127.0.0.1 for tests and benchmarks: one master and one
worker started with `spark-class` from the pyspark wheel (it ships no sbin/ scripts),
bounded in cores and memory, stopped (process group killed, waited for) on exit."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Cluster:
    port: int
    webui_port: int

    @property
    def master(self) -> str:
        return f"spark://127.0.0.1:{self.port}"

    def url(self, root: Path) -> str:
        """ELT_WAREHOUSE_URL for a lake (and warehouse, metastore) under `root`."""
        return f"{self.master}?lake={root / 'lake'}&webui={self.webui_port}"

    def alive_workers(self) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.webui_port}/json/", timeout=5) as r:
            return int(json.load(r).get("aliveworkers", 0))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


@contextlib.contextmanager
def local_cluster(
    workdir: Path, *, cores: int = 2, memory: str = "1g", timeout: float = 300
) -> Iterator[Cluster]:
    """A master and one worker (`cores`, `memory`) until the block ends; logs in `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(port=free_port(), webui_port=free_port())
    env = {
        **os.environ,
        "SPARK_HOME": str(spark_home()),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_WORKER_DIR": str(workdir / "work"),
        "SPARK_DAEMON_MEMORY": "256m",
        "SPARK_LOG_DIR": str(workdir),
    }
    spark_class = str(spark_home() / "bin" / "spark-class")
    commands = [
        [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
         "--port", str(cluster.port), "--webui-port", str(cluster.webui_port)],
        [spark_class, "org.apache.spark.deploy.worker.Worker", "--cores", str(cores), "--memory",
         memory, "--host", "127.0.0.1", "--webui-port", str(free_port()), cluster.master],
    ]  # fmt: skip
    processes: list[subprocess.Popen] = []
    try:
        for name, command in zip(("master", "worker"), commands, strict=True):
            log = (workdir / f"{name}.log").open("wb")
            processes.append(
                subprocess.Popen(command, env=env, stdout=log, stderr=log, start_new_session=True)
            )
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError, ValueError):
                if cluster.alive_workers() >= 1:
                    break
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                raise RuntimeError(f"Spark cluster did not start; see {workdir}/*.log")
            time.sleep(1)
        yield cluster
    finally:
        for process in reversed(processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(processes):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
