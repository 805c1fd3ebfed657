"""bptt-serve: bptt checkpoints behind FastAPI, with the cached activations of every prediction.

`checkpoints` finds and loads checkpoint directories (safetensors only, names never paths);
`inference` predicts and runs the backward sweep; `schemas` validates requests; `records`
keeps each model's recent predictions; `telemetry` is the ASGI middleware (log and counters);
`limits` the bounds; `app` has the routes, `main` the `bptt-serve` command, `process` runs it
as a child process (tests, load scripts). FastAPI and uvicorn (the `serve` extra)
are imported only by `app` and `main`.
"""
