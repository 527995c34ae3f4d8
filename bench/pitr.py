#!/usr/bin/env python3
"""Point-in-time recovery (issue 20) against its peers, on the same log in the same run.

Starts a private MariaDB (binlog_format=ROW), generates an EDC estate (bench/generate.py), takes a
coffer backup, then writes a day of data entry (churn rounds) while nothing archives, and
measures:
  1. archiving the backlog: `coffer log sync` (read as a replica, cut into segments, compressed,
     encrypted, stored) against `mariadb-binlog --read-from-remote-server --raw` (a plain copy of
     the same files over the same protocol): wall time, MB/s and events/s of log, peak RSS;
  2. the archive's size per GB of binary log;
  2. the follower under a concurrent write load (`coffer log follow` running while churn rounds
     write for --follow-seconds): the server's log rate, how far the archive lags when the load
     stops (time until it holds the server's position), and the follower's RSS sampled every
     half second (steady state: the median of the second half, and the peak);
  3. replaying one study's changes since the backup: `coffer restore --at` (snapshot + replay)
     against `coffer restore --snapshot` (the snapshot alone) and against the peer path,
     `mariadb-binlog --database … | mariadb` applied to the same snapshot restored in place (what
     a DBA does by hand), checking both end equal to the live study.
Prints the figures and writes them to a JSON file. Compare the ratios, not the seconds.

Usage: bench/pitr.py [--databases 20] [--scale 1.0] [--rounds 10] [--churn 100]
                     [--bulk-databases 40] [--bulk-scale 2] [--follow-seconds 120]
                     [--out bench/results/pitr-latest.json]
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as common  # noqa: E402  (the shared helpers of bench/run.py)

ROOT = common.ROOT


def log_files_bytes(bench):
    rows = bench.sql("SHOW BINARY LOGS").split("\n")
    return sum(int(r.split("\t")[1]) for r in rows if r.strip())


def checksum(bench, db):
    tables = bench.sql(f"SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}' "
                       "AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1").split()
    return [bench.sql(f"CHECKSUM TABLE `{db}`.`{t}`").split("\t")[1].strip() for t in tables]


def rss_kib(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def archive_end(coffer, env):
    listed = json.loads(subprocess.run([coffer, "log", "list", "--json"], env=env, check=True,
                                       capture_output=True, text=True).stdout)
    ends = [(s["end_file"], s["end_position"], s["transactions"]) for s in listed["streams"]]
    return max(ends) if ends else ("", 0, 0)


def sustained_follower(bench, args, coffer, url, env):
    """`coffer log follow` beside a write load of --follow-seconds: rate, lag, RSS."""
    import threading
    follower = subprocess.Popen([coffer, "log", "follow", "--mysql", url, "--segment-age", "10s"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            kib = rss_kib(follower.pid)
            if kib is not None:
                samples.append((time.time(), kib))
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    time.sleep(2)
    before = log_files_bytes(bench)
    _, _, transactions_before = archive_end(coffer, env)
    started = time.time()
    rounds = 0
    # generate.py's churn ids fit an INT up to round ~213: the load stops there.
    while time.time() - started < args.follow_seconds and args.rounds + rounds < 210:
        rounds += 1
        bench.generate("study_", args.databases, args.scale, churn=args.churn, round_no=args.rounds + rounds)
    load_s = time.time() - started
    written = log_files_bytes(bench) - before
    status = bench.sql("SHOW MASTER STATUS").split()
    target = (status[0], int(status[1]))
    caught_up = None
    while time.time() - started < load_s + 120:
        end_file, end_pos, _ = archive_end(coffer, env)
        if (end_file, end_pos) >= target:
            caught_up = round(time.time() - started - load_s, 1)
            break
        time.sleep(0.5)
    _, _, transactions_after = archive_end(coffer, env)
    stop.set()
    sampler.join()
    follower.terminate()
    follower.wait(timeout=60)
    half = [kib for t, kib in samples if t >= started + load_s / 2]
    half.sort()
    return {
        "seconds_of_load": round(load_s, 1),
        "churn_rounds": rounds,
        "log_bytes_written": written,
        "server_log_mib_per_s": round(written / 2**20 / load_s, 2),
        "transactions_archived": transactions_after - transactions_before,
        "transactions_per_s": round((transactions_after - transactions_before) / load_s, 1),
        "archive_caught_up_s_after_load": caught_up,
        "rss_mib_steady_median": round(half[len(half) // 2] / 1024, 1) if half else None,
        "rss_mib_peak": round(max(k for _, k in samples) / 1024, 1) if samples else None,
        "rss_samples": len(samples),
        "follower_exit": follower.returncode,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--databases", type=int, default=20)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=10, help="churn rounds written after the backup")
    ap.add_argument("--churn", type=float, default=100.0, help="percent of the studies each round changes")
    ap.add_argument("--bulk-databases", type=int, default=40, help="studies loaded after the backup")
    ap.add_argument("--bulk-scale", type=float, default=2.0)
    ap.add_argument("--follow-seconds", type=float, default=120.0,
                    help="how long the follower runs beside the write load (hours for a soak)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "pitr-latest.json"))
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    bench = common.Bench(args)
    results = {"parameters": vars(args), "machine": common.machine()}
    try:
        bench.start()
        bench.sql("SET GLOBAL binlog_format = 'ROW'")
        common.log(f"generating {args.databases} studies")
        bench.generate("study_", args.databases, args.scale)
        repo = bench.work / "repo"
        env = bench.coffer_env(repo)
        bench.coffer_init(repo)
        coffer = str(bench.coffer)
        url = bench.mysql_url()
        # The archive starts here, and the backup's copies sit here in the log.
        subprocess.run([coffer, "log", "sync", "--mysql", url], env=env, check=True, capture_output=True)
        bench.coffer_backup(repo, "study_")
        status = bench.sql("SHOW MASTER STATUS").split()
        start_file, start_pos = status[0], int(status[1])
        before_bytes = log_files_bytes(bench)
        common.log(f"writing {args.rounds} rounds of churn ({args.churn}% of the studies each)")
        for r in range(args.rounds):
            bench.generate("study_", args.databases, args.scale, churn=args.churn, round_no=r + 1)
        # Bulk loads too (new studies set up): the archive's throughput needs a log of some size.
        common.log(f"loading {args.bulk_databases} more studies (scale {args.bulk_scale})")
        bench.generate("bulk_", args.bulk_databases, args.bulk_scale)
        log_bytes = log_files_bytes(bench) - before_bytes
        until = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() + 1))
        time.sleep(2)

        # 1. Archiving the backlog, and the plain copy of the same files.
        repo_before = common.dir_size(repo)
        sync = common.timed([coffer, "log", "sync", "--mysql", url, "--json"], env=env)
        listed = json.loads(subprocess.run([coffer, "log", "list", "--json"], env=env, check=True,
                                           capture_output=True, text=True).stdout)
        transactions = sum(s["transactions"] for s in listed["streams"])
        archive_bytes = common.dir_size(repo) - repo_before
        copy_dir = bench.work / "binlog-copy"
        copy_dir.mkdir()
        files = [r.split("\t")[0] for r in bench.sql("SHOW BINARY LOGS").split("\n") if r.strip()]
        files = [f for f in files if f >= start_file]
        raw = common.timed(["mariadb-binlog", "--read-from-remote-server", f"--socket={bench.socket}", "--user=root",
                            "--raw", f"--result-file={copy_dir}/", *files])
        results["archive"] = {
            "log_bytes": log_bytes,
            "transactions": transactions,
            "coffer_log_sync": sync,
            "coffer_mb_per_s": round(log_bytes / 2**20 / sync["wall_s"], 1),
            "coffer_transactions_per_s": round(transactions / sync["wall_s"]),
            "mariadb_binlog_raw_copy": raw,
            "ratio_to_raw_copy": round(sync["wall_s"] / raw["wall_s"], 2),
            "archive_bytes": archive_bytes,
            "archive_bytes_per_gib_of_log": round(archive_bytes / (log_bytes / 2**30)) if log_bytes else None,
        }

        # 2. The follower beside a write load (after the replay's range: its changes are not
        # in the replay measured below, which ends at `until`).
        # The study replayed below, as it is at `until`.
        study = bench.sql("SELECT TABLE_SCHEMA FROM information_schema.TABLES WHERE TABLE_SCHEMA LIKE 'study_%' "
                          "GROUP BY 1 ORDER BY SUM(DATA_LENGTH) DESC LIMIT 1").strip()
        live = checksum(bench, study)
        common.log(f"following the log for {args.follow_seconds:.0f} s under a write load")
        results["follow"] = sustained_follower(bench, args, coffer, url, env)

        # 3. Replay of the largest study's changes since the backup, up to `until`.
        snapshot_only = common.timed([coffer, "restore", "--mysql", url, "--db", study, "--into", "only_snapshot",
                                      "--snapshot", "latest", "--jobs", str(args.jobs)], env=env)
        at = common.timed([coffer, "restore", "--mysql", url, "--db", study, "--into", "at_moment",
                           "--at", until, "--jobs", str(args.jobs)], env=env)
        assert checksum(bench, "at_moment") == live, "restore --at differs from the live study"
        # The peer path, as a DBA does it: the snapshot restored in place, then the server's own
        # log tool for that database from the backup's position.
        subprocess.run([coffer, "restore", "--mysql", url, "--db", study, "--snapshot", "latest", "--drop-existing",
                        "--jobs", str(args.jobs)], env=env, check=True, capture_output=True)
        pipe = (f"mariadb-binlog --start-position={start_pos} --database={study} "
                + " ".join(str(copy_dir / f) for f in files)
                + f" | mariadb --no-defaults --socket={bench.socket} -uroot")
        peer = common.timed(pipe, shell=True)
        peer_equal = checksum(bench, study) == live
        results["replay"] = {
            "study": study,
            "restore_snapshot_only": snapshot_only,
            "restore_at": at,
            "coffer_replay_s": round(at["wall_s"] - snapshot_only["wall_s"], 3),
            "mariadb_binlog_pipe": peer,
            "mariadb_binlog_pipe_equal": peer_equal,
            "ratio_replay_to_pipe": round((at["wall_s"] - snapshot_only["wall_s"]) / peer["wall_s"], 2),
        }
    finally:
        bench.stop()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    a, r, f = results["archive"], results["replay"], results["follow"]
    print(f"binary log written after the backup: {a['log_bytes'] / 2**20:.1f} MiB, {a['transactions']} transactions")
    print(f"archive (coffer log sync): {a['coffer_log_sync']['wall_s']} s, {a['coffer_mb_per_s']} MiB/s, "
          f"{a['coffer_transactions_per_s']} transactions/s, peak {a['coffer_log_sync']['peak_mib']} MiB; "
          f"mariadb-binlog --raw copy: {a['mariadb_binlog_raw_copy']['wall_s']} s (x{a['ratio_to_raw_copy']})")
    print(f"archive size: {a['archive_bytes'] / 2**20:.1f} MiB, {a['archive_bytes_per_gib_of_log'] / 2**20:.0f} MiB per GiB of log")
    print(f"follower under load for {f['seconds_of_load']} s: server wrote {f['server_log_mib_per_s']} MiB/s of log, "
          f"{f['transactions_per_s']} transactions/s archived, archive current {f['archive_caught_up_s_after_load']} s "
          f"after the load stopped; RSS steady {f['rss_mib_steady_median']} MiB, peak {f['rss_mib_peak']} MiB")
    print(f"replay of {r['study']}: restore --at {r['restore_at']['wall_s']} s = snapshot {r['restore_snapshot_only']['wall_s']} s "
          f"+ replay {r['coffer_replay_s']} s; mariadb-binlog | mariadb {r['mariadb_binlog_pipe']['wall_s']} s "
          f"(x{r['ratio_replay_to_pipe']}, equal: {r['mariadb_binlog_pipe_equal']})")
    print(f"\nresults written to {args.out}")


if __name__ == "__main__":
    os.environ.setdefault("COFFER_LOG", "warn")
    main()
