"""Calls released together on threads of their own: how the concurrency tests make a race happen."""

import threading
from concurrent.futures import ThreadPoolExecutor


def together(*calls, wait: float):
    """Run the calls on their own threads, released at once by a barrier; their results
    in order. ``wait`` bounds, in seconds, the barrier and each result."""
    barrier = threading.Barrier(len(calls), timeout=wait)

    def run(call):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(run, call) for call in calls]
        return [future.result(timeout=wait) for future in futures]
