"""Fuzz the parsers that read what clients, peers and disks send (docs/security.md, Fuzzing).

Each target (``tests/support/fuzz_*.py``) takes one byte string and must end in a value or
the protocol's own typed error; anything else, or a broken property, is a crash. Targets run
one after another, each in a process of its own for ``--seconds``, with atheris
(coverage-guided libFuzzer, ``pip install atheris``) when it is installed, else with a
random mutator over the same seeds (``--engine random``). Printed per target: executions
run, executions per second, and any crash, whose input is saved under ``CRASH_DIR``
(``<target>-crash-<sha1>``) with the command that replays it. The coverage corpus grows
under ``CRASH_DIR/corpus/<target>``, so a second run continues where the first stopped.

    python scripts/fuzz.py --list
    python scripts/fuzz.py --seconds 120 --crash-dir fuzz-out [TARGET ...]
    python scripts/fuzz.py --reproduce fuzz-out/qipc_decode-crash-<sha1> qipc_decode
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import random
import re
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
if TYPE_CHECKING:
    from support.fuzz_core import Target

# The project's packages, instrumented for coverage when atheris imports them.
INSTRUMENTED = ["qipc", "tickerplant", "queries", "fix", "gateway", "tickdb", "support"]
MAX_LEN = 16 * 1024
_DONE = re.compile(r"Done (\d+) runs in (\d+) second")
_EXECUTED = re.compile(r"stat::number_of_executed_units: (\d+)")
_PULSE = re.compile(r"^#(\d+)\s", re.M)
_WRITTEN = re.compile(r"Test unit written to (\S+)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help="target names (default: all)")
    parser.add_argument("--seconds", type=float, default=60.0, help="per target")
    parser.add_argument("--crash-dir", type=Path, default=Path("fuzz-out"))
    parser.add_argument("--engine", choices=["atheris", "random"], default=None)
    parser.add_argument("--list", action="store_true", help="list the targets and exit")
    parser.add_argument("--reproduce", type=Path, help="run one saved input on one target")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(args.targets[0], args.seconds, args.crash_dir, args.engine)
    from support.fuzz_targets import TARGETS

    if args.list:
        for target in TARGETS.values():
            print(f"{target.name:20} {target.about}")
        return 0
    if args.reproduce is not None:
        if len(args.targets) != 1:
            parser.error("--reproduce needs exactly one target")
        return _reproduce(TARGETS[args.targets[0]].run, args.reproduce.read_bytes())
    names = args.targets or list(TARGETS)
    unknown = sorted(set(names) - set(TARGETS))
    if unknown:
        parser.error(f"unknown targets {unknown}; --list shows them")
    engine = args.engine or ("atheris" if _has_atheris() else "random")
    args.crash_dir.mkdir(parents=True, exist_ok=True)
    print(f"engine {engine}, {args.seconds:g} s per target, crashes under {args.crash_dir}")
    print(f"{'target':20} {'executions':>11} {'exec/s':>8}  result")
    crashed = 0
    for name in names:
        runs, seconds, crash = _run_child(name, args.seconds, args.crash_dir, engine)
        rate = runs / seconds if seconds else 0.0
        result = "ok" if crash is None else f"CRASH {crash}"
        print(f"{name:20} {runs:>11} {rate:>8.0f}  {result}", flush=True)
        if crash is not None:
            crashed += 1
            path = crash.split(" saved as ")[-1]
            print(f"{'':20} replay: python scripts/fuzz.py --reproduce {path} {name}")
    return 1 if crashed else 0


def _has_atheris() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


def _run_child(
    name: str, seconds: float, crash_dir: Path, engine: str
) -> tuple[int, float, str | None]:
    """Fuzz one target in a process of its own → (executions, seconds, crash or None)."""
    before = set(crash_dir.glob(f"{name}-*"))
    command = [sys.executable, __file__, "--child", name, "--seconds", str(seconds)]
    command += ["--crash-dir", str(crash_dir), "--engine", engine]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, errors="replace", check=False)
    elapsed = time.monotonic() - started
    log = done.stdout + done.stderr
    (crash_dir / f"{name}.log").write_text(log)
    runs = _executions(log)
    new = sorted(set(crash_dir.glob(f"{name}-*")) - before)
    if done.returncode == 0 and not new:
        return runs, min(elapsed, seconds) or elapsed, None
    what = _exception_line(log) or f"exit status {done.returncode}"
    saved = (
        f" saved as {new[0]}" if new else f" (no input saved; see {crash_dir / (name + '.log')})"
    )
    return runs, elapsed, what + saved


def _executions(log: str) -> int:
    for pattern in (_EXECUTED, _DONE):
        found = pattern.findall(log)
        if found:
            return int(found[-1] if isinstance(found[-1], str) else found[-1][0])
    pulses = _PULSE.findall(log)
    return int(pulses[-1]) if pulses else 0


def _exception_line(log: str) -> str | None:
    """The exception and where it was raised, from a Python traceback in the log."""
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last)"):
            frames = [ln.strip() for ln in lines[i + 1 :] if ln.startswith('  File "')]
            tail = next(
                (ln for ln in lines[i + 1 :] if ln and not ln.startswith(" ")), "unknown error"
            )
            where = frames[-1].split('"')[1].replace(str(ROOT) + "/", "") if frames else ""
            line_no = frames[-1].split(", line ")[-1].split(",")[0] if frames else ""
            return f"{tail} at {where}:{line_no}"
    if "ALARM: working on the last Unit" in log or "libFuzzer: timeout" in log:
        return "timeout"
    if "out-of-memory" in log:
        return "out of memory"
    return None


def _reproduce(run: Callable[[bytes], None], data: bytes) -> int:
    try:
        run(data)
    except Exception:
        traceback.print_exc()
        return 1
    print("no crash")
    return 0


# -- the child: one target, one engine ------------------------------------------------------


def _child(name: str, seconds: float, crash_dir: Path, engine: str) -> int:
    # Refusals are logged by the code under test; millions of lines would only slow it.
    logging.disable(logging.CRITICAL)
    if engine == "atheris":
        import atheris

        with atheris.instrument_imports(include=INSTRUMENTED):
            from support.fuzz_targets import TARGETS
        target = TARGETS[name]
        corpus = crash_dir / "corpus" / name
        corpus.mkdir(parents=True, exist_ok=True)
        for seed in target.seeds():
            (corpus / f"seed-{hashlib.sha1(seed).hexdigest()}").write_bytes(seed)
        flags = [
            f"-max_total_time={max(1, int(seconds))}",
            f"-artifact_prefix={crash_dir}/{name}-",
            f"-max_len={MAX_LEN}",
            "-timeout=60",
            "-rss_limit_mb=4096",
            "-print_final_stats=1",
        ]
        if target.tokens:
            dictionary = crash_dir / "corpus" / f"{name}.dict"
            dictionary.write_text("".join(f'"{_dict_escape(t)}"\n' for t in target.tokens))
            flags.append(f"-dict={dictionary}")
        atheris.Setup([sys.argv[0], *flags, str(corpus)], target.run)
        atheris.Fuzz()
        return 0
    from support.fuzz_targets import TARGETS

    return _random_engine(TARGETS[name], seconds, crash_dir)


def _dict_escape(token: bytes) -> str:
    return "".join(chr(b) if 0x20 <= b < 0x7F and b not in b'"\\' else f"\\x{b:02x}" for b in token)


def _random_engine(target: Target, seconds: float, crash_dir: Path) -> int:
    """Random edits of the seeds, without coverage feedback; stops at the first crash."""
    from support.fuzz_core import MUTATION_KINDS, mutate

    rng = random.Random(int.from_bytes(os.urandom(8), "little"))
    seeds = target.seeds()
    deadline = time.monotonic() + seconds
    runs = 0
    while time.monotonic() < deadline:
        ops = [
            (rng.randrange(MUTATION_KINDS), rng.randrange(1 << 16), rng.randrange(1 << 16))
            for _ in range(rng.randint(1, 8))
        ]
        data = mutate(rng.choice(seeds), ops, target.tokens)
        runs += 1
        try:
            target.run(data)
        except Exception:
            path = crash_dir / f"{target.name}-crash-{hashlib.sha1(data).hexdigest()}"
            path.write_bytes(data)
            traceback.print_exc()
            print(f"Test unit written to {path}\nstat::number_of_executed_units: {runs}")
            return 1
    print(f"Done {runs} runs in {int(seconds)} second(s)")
    return 0


if __name__ == "__main__":
    from stop_on_term import stop_on_term

    stop_on_term()
    sys.exit(main())
