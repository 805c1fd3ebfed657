"""The recent predictions of each model, by request id: what `GET .../last` reads.

Concurrent requests never mix up each other's record: a prediction is built whole (its arrays
read-only) before it is added, under a lock, with its own request id. "last" means the
prediction that was *added* last, i.e. completed last; a client that needs its own prediction
asks for it by the request id its response carried. The `capacity` most recent are kept, so
memory is bounded whatever the traffic.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

from bptt.serve.inference import Prediction
from bptt.serve.limits import DEFAULT_KEEP


class RecentPredictions:
    """The last `capacity` predictions of one model (oldest dropped first)."""

    def __init__(self, capacity: int = DEFAULT_KEEP):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._records: OrderedDict[str, Prediction] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, prediction: Prediction) -> None:
        """Keep `prediction` as the last one."""
        with self._lock:
            self._records[prediction.request_id] = prediction
            self._records.move_to_end(prediction.request_id)
            while len(self._records) > self.capacity:
                self._records.popitem(last=False)

    def get(self, request_id: str | None = None) -> Prediction | None:
        """The prediction of `request_id` (None: the last one), or None if not kept."""
        with self._lock:
            if request_id is None:
                return next(reversed(self._records.values()), None)
            return self._records.get(request_id)
