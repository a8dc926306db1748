"""preStop hook of the callintent pod: wait until its live calls have ended, at most --max-wait seconds.

Kubernetes takes a terminating pod out of the Service's endpoints, so no new call reaches it; the
calls already open go on. This hook polls the pod's own /metrics (``callintent_live_sessions_active``,
summed over the BentoML workers) and returns when none is left, or at --max-wait (the longest a call
may last: ``limits.max_audio_seconds`` + ``limits.idle_timeout_seconds``). Then the kubelet sends
SIGTERM and the service gives any call still open its final event (serving/sessions.py install_drain).

Runs in the service image (Python + prometheus_client, which BentoML brings); mounted from the chart's
ConfigMap so the image needs no change.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.request

METRIC = "callintent_live_sessions_active"
#: /metrics unanswered this many times in a row: the server is gone, nothing left to wait for.
GONE_AFTER_FAILURES = 3


def open_calls(url: str, timeout: float) -> float | None:
    """Live calls the server reports now; None when /metrics does not answer."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            text = response.read().decode("utf-8")
    except OSError:
        return None
    for family in text_string_to_metric_families(text):
        if family.name == METRIC:
            return sum(sample.value for sample in family.samples)
    return 0.0  # no call has been counted in this process yet


def wait_for_calls(url: str, *, min_wait: float, max_wait: float, poll: float = 1.0, timeout: float = 2.0) -> str:
    """Block until no live call is open (after at least ``min_wait`` s) or ``max_wait`` s have passed.

    Returns:
        Why it returned: ``"no calls"``, ``"server gone"`` or ``"max wait"``.
    """
    start = time.monotonic()
    failures = 0
    while True:
        elapsed = time.monotonic() - start
        if elapsed >= max_wait:
            return "max wait"
        calls = open_calls(url, timeout)
        failures = failures + 1 if calls is None else 0
        if failures >= GONE_AFTER_FAILURES:
            return "server gone"
        if calls == 0 and elapsed >= min_wait:
            return "no calls"
        time.sleep(max(0.0, min(poll, max_wait - (time.monotonic() - start))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--min-wait", type=float, default=5.0,
                        help="wait at least this long (the endpoint removal reaches the proxies meanwhile)")
    parser.add_argument("--max-wait", type=float, required=True, help="wait at most this long")
    parser.add_argument("--poll", type=float, default=1.0)
    args = parser.parse_args(argv)
    start = time.monotonic()
    why = wait_for_calls(f"http://{args.host}:{args.port}/metrics", min_wait=args.min_wait, max_wait=args.max_wait,
                         poll=args.poll)
    print(f"prestop: {why} after {time.monotonic() - start:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
