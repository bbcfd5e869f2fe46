"""Shared check runner for the client-compatibility scripts.

Each check runs on its own: a failure prints FAIL with its message and the
script's line, and the run goes on. `finish()` prints the closing line
"N passed, M failed" and exits 1 if anything failed.
"""

import sys
import traceback

_counts = {"passed": 0, "failed": 0}


def check(name, fn):
    """Run one check; report PASS/FAIL with the failure message and carry on."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - every failure is reported, never fatal
        _counts["failed"] += 1
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename != __file__]
        where = f" (line {frames[-1].lineno})" if frames else ""
        print(f"FAIL {name}: {type(e).__name__}: {msg[:400]}{where}", flush=True)
        return False
    _counts["passed"] += 1
    print(f"PASS {name}", flush=True)
    return True


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def expect_eq(got, want, what, ctx=None):
    if got != want:
        extra = f"; response: {str(ctx)[:200]}" if ctx is not None else ""
        raise AssertionError(f"{what}: expected {want!r}, got {got!r}{extra}")


def body_of(resp):
    """The JSON body of an httpx response, or its text."""
    try:
        return resp.json()
    except Exception:  # noqa: BLE001
        return resp.text


def aborted(e):
    """Counts an unexpected error outside any check as a failure."""
    _counts["failed"] += 1
    print(f"FAIL script aborted: {type(e).__name__}: {e}", flush=True)


def finish():
    print(f"{_counts['passed']} passed, {_counts['failed']} failed")
    sys.exit(1 if _counts["failed"] else 0)
