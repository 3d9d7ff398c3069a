"""gunicorn settings file (`-c`) for the bench: each worker, once its app is loaded,
leaves a file named after its pid in BENCH_READY_DIR, so a run starts when every
worker can answer, not while one is still importing its app."""

import os
from pathlib import Path


def post_worker_init(worker) -> None:
    Path(os.environ["BENCH_READY_DIR"], str(worker.pid)).touch()
