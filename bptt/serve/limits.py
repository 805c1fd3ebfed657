"""What the service bounds, so that memory and time per request are bounded whatever the traffic.

Kept apart from the modules that import FastAPI or pydantic so that `bptt-serve --help` and its
defaults need neither.
"""

#: Rows (MLP) or sequences (RNN) in one prediction request.
MAX_BATCH = 1024
#: Time steps of one RNN sequence.
MAX_STEPS = 10_000
#: Request bodies over this many bytes get 413 (`bptt-serve --max-body-bytes`).
DEFAULT_MAX_BODY_BYTES = 2 ** 20
#: Recent predictions kept per model for `GET .../last?request_id=` (`bptt-serve --keep`).
DEFAULT_KEEP = 32
