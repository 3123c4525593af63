"""How long one fdatasync of a small record takes on this disk (not a test; figures go to docs/benchmarks.md).

Appends RECORD_BYTES bytes and calls fdatasync, COUNT times, in a file beside the spool's (the folder
given, /tmp by default), two ways:

- appending to a growing file, as the spool writes its segments today: each sync also writes the
  inode, because the file's size changed;
- overwriting a file written full of zeros beforehand (as PostgreSQL does with its WAL segments): the
  size does not change, so the sync writes only the data.

Prints p50/p90/p99 in µs for each, ROUNDS times, alternating.
Usage: python3 bench/fsync.py [FOLDER]   (env: COUNT=3000, RECORD_BYTES=600, ROUNDS=3)
"""

import os
import sys
import tempfile
import time

COUNT = int(os.environ.get("COUNT", "3000"))
RECORD_BYTES = int(os.environ.get("RECORD_BYTES", "600"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))


def measure(folder: str, prezeroed: bool) -> str:
    fd, path = tempfile.mkstemp(dir=folder, prefix="fsync-bench.")
    try:
        if prezeroed:
            os.write(fd, b"\0" * (COUNT * RECORD_BYTES + 4096))
            os.fsync(fd)
            os.lseek(fd, 0, os.SEEK_SET)
        record = b"x" * RECORD_BYTES
        took = []
        for _ in range(COUNT):
            os.write(fd, record)
            started = time.perf_counter()
            os.fdatasync(fd)
            took.append((time.perf_counter() - started) * 1e6)
        took.sort()
        pick = lambda q: took[min(len(took) - 1, int(q * len(took)))]
        return f"p50 {pick(0.5):.0f} µs, p90 {pick(0.9):.0f} µs, p99 {pick(0.99):.0f} µs"
    finally:
        os.close(fd)
        os.unlink(path)


def main() -> None:
    folder = sys.argv[1] if len(sys.argv) > 1 else "/tmp"
    print(f"fdatasync after each {RECORD_BYTES}-byte write, {COUNT} times, in {folder}")
    for round_ in range(1, ROUNDS + 1):
        print(f"round {round_}: growing file {measure(folder, False)}; pre-zeroed file {measure(folder, True)}")


if __name__ == "__main__":
    main()
