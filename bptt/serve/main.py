"""`bptt-serve`: serve bptt checkpoints over HTTP with uvicorn (one worker).

    bptt-bench --task iris --save models/iris           # a checkpoint to serve
    bptt-serve models/iris --port 8000                  # or: bptt-serve models (every one in it)
    curl -s localhost:8000/v1/models/iris/predict -d '{"inputs": [[5.1, 3.5, 1.4, 0.2]]}'

Every checkpoint is loaded, and checked, before the server starts: a directory that is not one
ends with one `Error:` line and exit code 2, never a traceback.
"""
from __future__ import annotations

from pathlib import Path

import click

from bptt.cli.main import BadInput
from bptt.serve.limits import DEFAULT_KEEP, DEFAULT_MAX_BODY_BYTES
from bptt.serve.telemetry import DEFAULT_BACKUPS, DEFAULT_MAX_BYTES


@click.command()
@click.argument("directories", nargs=-1, required=True,
                type=click.Path(path_type=Path, file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 for every interface, as in a container).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--log-file", default=Path("bptt-serve-requests.jsonl"), show_default=True,
              type=click.Path(path_type=Path, dir_okay=False),
              help="One JSON line per request; rotated by size.")
@click.option("--log-max-bytes", default=DEFAULT_MAX_BYTES, show_default=True,
              type=click.IntRange(min=1), help="Rotate the log when it reaches this size.")
@click.option("--log-backups", default=DEFAULT_BACKUPS, show_default=True,
              type=click.IntRange(min=1), help="Rotated logs kept (.1 is the newest).")
@click.option("--max-body-bytes", default=DEFAULT_MAX_BODY_BYTES, show_default=True,
              type=click.IntRange(min=1), help="Larger request bodies get 413.")
@click.option("--keep", default=DEFAULT_KEEP, show_default=True, type=click.IntRange(min=1),
              help="Recent predictions kept per model for GET .../last?request_id=.")
def main(directories, host, port, log_file, log_max_bytes, log_backups, max_body_bytes,
         keep) -> None:
    """Serve the checkpoints in DIRECTORIES (each a `bptt-bench --save` directory, or a
    directory of them) until interrupted."""
    try:
        import uvicorn
    except ImportError as error:
        raise BadInput(f"bptt-serve needs the serve extra ({error.name} is not installed): "
                       f"pip install 'bptt[serve]'") from None
    app = build_app(directories, log_file, log_max_bytes, log_backups, max_body_bytes, keep)
    click.echo(f"bptt-serve: {', '.join(app.models)} on http://{host}:{port} "
               f"(log: {log_file})", err=True)
    # The telemetry log replaces uvicorn's access log (one line per request, not two).
    uvicorn.run(app, host=host, port=port, workers=1, log_level="warning", access_log=False)


def build_app(directories, log_file: Path, log_max_bytes: int = DEFAULT_MAX_BYTES,
              log_backups: int = DEFAULT_BACKUPS, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
              keep: int = DEFAULT_KEEP):
    """The app `main` serves; bad directories or log path are a BadInput."""
    try:
        from bptt.serve.app import create_app
    except ImportError as error:
        raise BadInput(f"bptt-serve needs the serve extra ({error.name} is not installed): "
                       f"pip install 'bptt[serve]'") from None
    from bptt.serve.checkpoints import CheckpointError, find_checkpoints
    from bptt.serve.telemetry import RequestLog

    try:
        models = find_checkpoints(directories)
    except CheckpointError as error:
        raise BadInput(str(error)) from None
    try:
        log = RequestLog(log_file, log_max_bytes, log_backups)
    except OSError as error:
        raise BadInput(f"cannot write the request log {log_file}: "
                       f"{error.strerror or error}") from None
    return create_app(models, log, max_body_bytes=max_body_bytes, keep=keep)
