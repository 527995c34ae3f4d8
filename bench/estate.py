#!/usr/bin/env python3
"""Restoring a whole estate (issue 21): `coffer restore --all` against myloader, on the same
studies, the same server and the same number of connections, in the same run.

Starts a private MariaDB, generates an EDC estate (bench/generate.py), takes a coffer backup and a
mydumper dump of it, drops the studies, then restores them all:
  1. myloader (`-o -e`: overwrite, write the binary log, as coffer does), databases under their
     own names;
  2. `coffer restore --all` into the same names (checked equal to the originals by CHECKSUM TABLE);
  3. the same restore killed half way and repeated: the time the repeat takes to finish;
  4. one small study and the median study restored alone under another name (median of 5):
     `coffer restore --db` against `myloader -s DB -B NEW` (the fixed cost per command);
and for a second estate of many small schemas the same two restores, as schemas per second.
Wall time, schemas/s and peak RSS for each; compare the ratios, not the seconds.

Usage: bench/estate.py [--databases 200] [--scale 0.5] [--schemas 2000] [--jobs 4]
                       [--out bench/results/estate-latest.json]
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as common  # noqa: E402  (the shared helpers of bench/run.py)

ROOT = common.ROOT


def checksums(bench, prefix):
    rows = bench.sql(
        "SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) FROM information_schema.TABLES "
        f"WHERE TABLE_SCHEMA LIKE '{prefix}%' AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1").split()
    sums = {}
    for i in range(0, len(rows), 200):
        out = bench.sql("CHECKSUM TABLE " + ", ".join(f"`{r.replace('.', '`.`')}`" for r in rows[i:i + 200]))
        for line in out.splitlines():
            name, value = line.split("\t")
            sums[name] = value
    return sums


def drop_all(bench, prefix):
    for db in bench.databases(prefix):
        bench.sql(f"DROP DATABASE `{db}`")


def estate_round(bench, args, prefix, repo, env, label):
    """Both restores of the studies `prefix*`; returns the figures."""
    coffer = str(bench.coffer)
    url = bench.mysql_url()
    dump = bench.work / f"mydumper-{prefix}"
    result = {"schemas": len(bench.databases(prefix))}
    common.log(f"{label}: backup and dump of {result['schemas']} schemas")
    result["coffer_backup"] = bench.coffer_backup(repo, prefix)
    result["mydumper"] = bench.mydumper(dump, prefix, True)
    reference = checksums(bench, prefix)
    drop_all(bench, prefix)

    common.log(f"{label}: myloader")
    result["myloader"] = common.timed(["myloader", f"--socket={bench.socket}", "--user=root", "-d", str(dump),
                                       "-o", "-e", "-t", str(args.jobs)])
    assert checksums(bench, prefix) == reference, "myloader's restore differs"
    drop_all(bench, prefix)

    common.log(f"{label}: coffer restore --all")
    result["coffer_restore_all"] = common.timed([coffer, "restore", "--mysql", url, "--include", f"{prefix}*",
                                                 "--jobs", str(args.jobs)], env=env)
    assert checksums(bench, prefix) == reference, "coffer's restore differs"
    drop_all(bench, prefix)

    # Killed half way (by the number of schemas present), then repeated.
    common.log(f"{label}: coffer restore --all, killed half way and repeated")
    child = subprocess.Popen([coffer, "restore", "--mysql", url, "--include", f"{prefix}*", "--jobs", str(args.jobs)],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    half = result["schemas"] // 2
    while child.poll() is None and len(bench.databases(prefix)) < half:
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    result["killed_with_schemas_present"] = len(bench.databases(prefix))
    result["coffer_resume"] = common.timed([coffer, "restore", "--mysql", url, "--include", f"{prefix}*",
                                            "--jobs", str(args.jobs)], env=env)
    assert checksums(bench, prefix) == reference, "the resumed restore differs"
    for tool in ("myloader", "coffer_restore_all"):
        result[tool]["schemas_per_s"] = round(result["schemas"] / result[tool]["wall_s"], 1)
    result["ratio_coffer_to_myloader"] = round(result["coffer_restore_all"]["wall_s"] / result["myloader"]["wall_s"], 2)
    return result


def sizes(bench, prefix):
    """Each database's data bytes, smallest first."""
    rows = bench.sql("SELECT TABLE_SCHEMA, SUM(DATA_LENGTH + INDEX_LENGTH) FROM information_schema.TABLES "
                     f"WHERE TABLE_SCHEMA LIKE '{prefix}%' GROUP BY 1 ORDER BY 2, 1")
    return [(line.split("\t")[0], int(line.split("\t")[1])) for line in rows.splitlines() if line.strip()]


def one_study(bench, args, prefix, repo, env):
    """The smallest and the median study, each restored alone by both tools (median of 5)."""
    coffer = str(bench.coffer)
    url = bench.mysql_url()
    dump = bench.work / f"mydumper-{prefix}"
    ordered = sizes(bench, prefix)
    picks = {"smallest": ordered[0][0], "median": ordered[len(ordered) // 2][0]}
    result = {}
    for label, db in picks.items():
        reference = checksums(bench, db)
        ours = {k.replace(db, "r1_", 1): v for k, v in reference.items()}

        def coffer_once():
            bench.sql("DROP DATABASE IF EXISTS r1_")
            return common.timed([coffer, "restore", "--mysql", url, "--db", db, "--into", "r1_",
                                 "--jobs", str(args.jobs)], env=env)

        def myloader_once():
            bench.sql("DROP DATABASE IF EXISTS r1_")
            return common.timed(["myloader", f"--socket={bench.socket}", "--user=root", "-d", str(dump),
                                 "-s", db, "-B", "r1_", "-o", "-e", "-t", str(args.jobs)])

        common.log(f"one study ({label}, {db}): coffer restore --db, myloader -s")
        figures = {"database": db, "coffer_restore_db": common.median(coffer_once)}
        assert checksums(bench, "r1_") == ours, "coffer's one-study restore differs"
        figures["myloader"] = common.median(myloader_once)
        assert checksums(bench, "r1_") == ours, "myloader's one-study restore differs"
        bench.sql("DROP DATABASE IF EXISTS r1_")
        figures["ratio_coffer_to_myloader"] = round(
            figures["coffer_restore_db"]["wall_s"] / figures["myloader"]["wall_s"], 2)
        result[label] = figures
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--databases", type=int, default=200, help="studies of the first estate (Pareto sizes; 0: none)")
    ap.add_argument("--scale", type=float, default=0.5)
    ap.add_argument("--schemas", type=int, default=2000, help="small schemas of the second estate (0: none)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "estate-latest.json"))
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    bench = common.Bench(args)
    results = {"parameters": vars(args), "machine": common.machine()}
    try:
        bench.start()
        repo = bench.work / "repo"
        env = bench.coffer_env(repo)
        bench.coffer_init(repo)
        if args.databases:
            common.log(f"generating {args.databases} studies")
            bench.generate("study_", args.databases, args.scale)
            results["studies"] = estate_round(bench, args, "study_", repo, env, "studies")
            results["one_study"] = one_study(bench, args, "study_", repo, env)
        if args.schemas:
            common.log(f"generating {args.schemas} small schemas")
            bench.generate("tiny_", args.schemas, 0.02)
            results["small_schemas"] = estate_round(bench, args, "tiny_", repo, env, "small schemas")
    finally:
        bench.stop()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    for key in ("studies", "small_schemas"):
        if key not in results:
            continue
        r = results[key]
        print(f"{key}: {r['schemas']} schemas; myloader {r['myloader']['wall_s']} s ({r['myloader']['schemas_per_s']}/s, "
              f"peak {r['myloader']['peak_mib']} MiB); coffer restore --all {r['coffer_restore_all']['wall_s']} s "
              f"({r['coffer_restore_all']['schemas_per_s']}/s, peak {r['coffer_restore_all']['peak_mib']} MiB), "
              f"x{r['ratio_coffer_to_myloader']}; killed with {r['killed_with_schemas_present']} present, "
              f"the repeat finished in {r['coffer_resume']['wall_s']} s")
    for label, r in results.get("one_study", {}).items():
        print(f"one study ({label}, {r['database']}): coffer restore --db {r['coffer_restore_db']['wall_s']} s, "
              f"myloader {r['myloader']['wall_s']} s, x{r['ratio_coffer_to_myloader']}")
    print(f"\nresults written to {args.out}")


if __name__ == "__main__":
    os.environ.setdefault("COFFER_LOG", "warn")
    main()
