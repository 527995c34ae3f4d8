#!/usr/bin/env python3
"""Prune at scale: peak memory and time of `coffer prune` on a repository of ~a million blobs.

Builds a synthetic repository (examples/synthetic_repo.rs: DATABASES databases x CHUNKS blobs,
two snapshots, the second with new data for every other database), forgets the first snapshot,
then measures `prune --dry-run`, `prune --grace 0s` (mark and sweep in one run) and `check`
(for comparison: it also loads the whole index and every tree). Reports peak RSS per command
and per blob. No peer tool prunes a MySQL backup repository, so this is an absolute measure.

Usage: bench/prune_scale.py [--databases 1000] [--chunks 700] [--out bench/results/prune-scale.json]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench passphrase"


def log(msg):
    print(f"[prune-scale {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def measured(cmd, env):
    """Run cmd; return (seconds, stdout)."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{err.decode()}")
    return seconds, out.decode()


def peak_rss(cmd, env):
    """Run cmd under wait4 and return (seconds, peak RSS MiB, stdout)."""
    start = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        pid = os.fork()
        if pid == 0:
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            os.execvpe(cmd[0], cmd, env)
        _, status, usage = os.wait4(pid, 0)
        seconds = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) not in (0, 3):
            sys.exit(f"{' '.join(cmd)} failed:\n{err.read().decode()}")
        return seconds, usage.ru_maxrss / 1024, out.read().decode()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--databases", type=int, default=1000)
    ap.add_argument("--chunks", type=int, default=700)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "prune-scale.json"))
    args = ap.parse_args()

    log("building coffer and the generator (release)")
    subprocess.run(["cargo", "build", "--release", "--bin", "coffer", "--example", "synthetic_repo"],
                   cwd=ROOT, check=True)
    coffer = str(ROOT / "target" / "release" / "coffer")
    generator = str(ROOT / "target" / "release" / "examples" / "synthetic_repo")
    env = dict(os.environ, COFFER_PASSWORD=PASSWORD)

    with tempfile.TemporaryDirectory(prefix="coffer-prune-scale-") as tmp:
        repo = str(Path(tmp) / "repo")
        env["COFFER_REPO"] = repo
        log(f"generating {args.databases} databases x {args.chunks} blobs, two snapshots")
        seconds, _ = measured([generator, repo, str(args.databases), str(args.chunks)], env)
        stats = json.loads(measured([coffer, "stats", "--json"], env)[1])
        packs = stats["packs"]
        blobs = args.databases * args.chunks * 3 // 2 + args.databases * 3
        log(f"generated in {seconds:.0f} s: {packs} packs, ~{blobs} blobs")
        measured([coffer, "forget", "--keep-last", "1"], env)
        results = {"databases": args.databases, "chunks": args.chunks, "blobs": blobs,
                   "packs": packs, "generate_s": round(seconds, 1)}
        for name, cmd in [
            ("check", [coffer, "check"]),
            ("prune_dry_run", [coffer, "prune", "--grace", "0s", "--dry-run", "--json"]),
            ("prune", [coffer, "prune", "--grace", "0s", "--json"]),
            ("check_after", [coffer, "check"]),
        ]:
            seconds, rss, out = peak_rss(cmd, env)
            entry = {"seconds": round(seconds, 1), "peak_rss_mib": round(rss, 1),
                     "bytes_per_blob": round(rss * 1024 * 1024 / blobs)}
            if name.startswith("prune"):
                report = json.loads(out)
                entry.update({k: report[k] for k in ("condemned_unused", "repacked", "copied_blobs",
                                                     "packs_deleted", "bytes_freed")})
            if name == "check_after" and "no problems" not in out:
                sys.exit(f"check after prune found problems:\n{out}")
            results[name] = entry
            log(f"{name}: {entry}")
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
