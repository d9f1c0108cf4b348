"""redis-py check: runs a fixed script against a Redis-protocol server with redis-py's DEFAULT
options (redis-py 8 speaks RESP3: it sends HELLO 3, with AUTH when a password is given) and
prints one JSON object of what each step answered. Used by
test/integration/redis-clients.test.ts.

Usage: python3 redis_py_check.py HOST PORT PREFIX [PASSWORD]
"""

import json
import sys

import redis


def main() -> None:
    host, port, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    password = sys.argv[4] if len(sys.argv) > 4 else None
    r = redis.Redis(host=host, port=port, password=password)
    k = lambda s: f"{prefix}:{s}"  # noqa: E731
    out = {}

    hello = r.execute_command("HELLO")
    out["proto"] = hello[b"proto"] if isinstance(hello, dict) else f"not a map: {hello!r}"

    out["set"] = r.set(k("a"), "1") and r.set(k("b"), "2")
    out["get"] = r.get(k("a")).decode()
    out["getAbsent"] = r.get(k("absent"))
    out["mget"] = [v.decode() if v is not None else None for v in r.mget(k("a"), k("absent"), k("b"))]

    pipe = r.pipeline(transaction=False)
    for i in range(50):
        pipe.set(k(f"p{i:02d}"), str(i))
    pipe.get(k("p49"))
    out["pipelineLast"] = pipe.execute()[-1].decode()

    scanned = sorted(key.decode() for key in r.scan_iter(match=f"{prefix}:p*", count=7))
    out["scanned"] = len(scanned)
    out["scanFirst"] = scanned[0]

    tx = r.pipeline(transaction=True)
    tx.set(k("tx"), "t")
    tx.get(k("tx"))
    # redis-py answers SET's +OK as True.
    out["tx"] = ["OK" if v is True else v.decode() for v in tx.execute()]

    aborted = r.pipeline(transaction=True)
    aborted.set(k("aborted"), "t")
    aborted.incr(k("counter"))
    try:
        aborted.execute()
        out["txAbort"] = ""
    except redis.exceptions.RedisError as e:
        out["txAbort"] = f"{type(e).__name__}: {e}"
    out["txAbortApplied"] = r.exists(k("aborted"), k("counter"))

    try:
        r.setnx(k("a"), "x")
        out["setnx"] = ""
    except redis.exceptions.ResponseError as e:
        out["setnx"] = str(e)

    out["del"] = r.delete(k("a"), k("b"), k("absent"))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
