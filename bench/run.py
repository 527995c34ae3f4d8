#!/usr/bin/env python3
"""coffer against its peers, on the same data in the same run.

Starts a private MariaDB, generates an EDC estate (bench/generate.py), then measures:
  1. full backup: coffer vs mydumper (same threads, with and without compression) vs mysqldump
     (per database sequentially, and all databases in one run) vs the server's raw read speed
     (every table selected and discarded over the same number of connections);
  2. a second backup after a few percent of the studies changed a little;
  3. repository size after K snapshots with churn vs the sum of K compressed mydumper dumps;
  4. restore of one mid-size study and of the largest study (median of 5 runs each): coffer vs
     myloader vs `mariadb < dump.sql`, and coffer from a repository holding only the mid-size study
     vs the full repository (independence of repository size);
  5. peak memory and per-table cost of a backup of 10x as many (small) databases.
Prints a table of ratios and writes everything to a JSON file. Machines are noisy: compare the
ratios, not the seconds.

Usage: bench/run.py [--databases 100] [--scale 1.0] [--jobs 4] [--snapshots 5] [--churn 2]
                    [--out bench/results/latest.json] [--quick]
"""
import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GEN = ROOT / "bench" / "generate.py"
PASSWORD = "bench passphrase"


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# The private server's pid file, once started: its CPU time is measured around every command,
# since on a small machine the server and the tool share the cores.
SERVER_PID_FILE = None


def server_cpu_seconds():
    """User + system CPU seconds the server has used so far (/proc/PID/stat), or None."""
    try:
        pid = Path(SERVER_PID_FILE).read_text().strip()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, TypeError, ValueError, IndexError):
        return None


def timed(cmd, env=None, stdout=None, stdin=None, shell=False):
    """Run a command under GNU time; return wall seconds, CPU seconds, peak RSS in MiB, and the
    server's CPU seconds meanwhile."""
    wrapped = ["/usr/bin/time", "-f", "%e %U %S %M", "-o", "/tmp/coffer-bench-time"] + (["sh", "-c", cmd] if shell else cmd)
    server_before = server_cpu_seconds()
    started = time.monotonic()
    proc = subprocess.run(wrapped, env=env, stdout=stdout or subprocess.DEVNULL, stdin=stdin, stderr=subprocess.PIPE)
    wall = time.monotonic() - started
    server_after = server_cpu_seconds()
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {cmd}\n{proc.stderr.decode(errors='replace')[-3000:]}")
    e, u, s, m = Path("/tmp/coffer-bench-time").read_text().split()[-4:]
    result = {"wall_s": round(wall, 3), "cpu_s": round(float(u) + float(s), 3), "peak_mib": round(int(m) / 1024, 1)}
    if server_before is not None and server_after is not None:
        result["server_cpu_s"] = round(server_after - server_before, 3)
    return result


def median(run, times=5):
    """The run with the median wall time of several: single short runs are too noisy to compare."""
    runs = sorted((run() for _ in range(times)), key=lambda r: r["wall_s"])
    result = dict(runs[len(runs) // 2])
    result["runs_wall_s"] = [r["wall_s"] for r in runs]
    return result


def dir_size(path):
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="coffer-bench-"))
        self.db_dir = self.work / "mariadb"
        self.socket = self.db_dir / "mysql.sock"
        self.coffer = ROOT / "target" / "release" / "coffer"
        self.results = {"parameters": vars(args), "machine": machine()}

    def sql(self, query):
        out = subprocess.run(["mariadb", "--no-defaults", f"--socket={self.socket}", "-uroot", "-N", "-B", "-e", query],
                             check=True, capture_output=True, text=True)
        return out.stdout

    def coffer_env(self, repo):
        env = dict(os.environ, COFFER_PASSWORD=PASSWORD, COFFER_REPO=str(repo), COFFER_NO_CACHE="1", COFFER_LOG="warn")
        return env

    def mysql_url(self):
        return f"mysql://root@localhost/?socket={self.socket}"

    def start(self):
        subprocess.run([str(ROOT / "scripts" / "mariadb-sandbox.sh"), "start", str(self.db_dir), str(free_port())], check=True)
        global SERVER_PID_FILE
        SERVER_PID_FILE = self.db_dir / "mariadbd.pid"
        # A buffer pool large enough to hold the estate, as on a production server.
        self.sql("SET GLOBAL innodb_buffer_pool_size = 2147483648")

    def stop(self):
        subprocess.run([str(ROOT / "scripts" / "mariadb-sandbox.sh"), "stop", str(self.db_dir)])
        shutil.rmtree(self.work, ignore_errors=True)

    def generate(self, prefix, databases, scale, churn=None, round_no=0):
        cmd = [sys.executable, str(GEN), "--socket", str(self.socket), "--databases", str(databases), "--scale", str(scale),
               "--seed", str(self.args.seed), "--prefix", prefix]
        if churn is not None:
            cmd += ["--churn", str(churn), "--round", str(round_no)]
        subprocess.run(cmd, check=True)

    def databases(self, prefix):
        return self.sql(f"SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '{prefix}%' ORDER BY 1").split()

    def warm(self, prefix):
        # Every tool reads from a warm buffer pool: time the tools, not the disk cache.
        self.raw_read(prefix)

    def raw_read(self, prefix):
        tables = self.sql(f"SELECT CONCAT('`', TABLE_SCHEMA, '`.`', TABLE_NAME, '`') FROM information_schema.TABLES "
                          f"WHERE TABLE_SCHEMA LIKE '{prefix}%' AND TABLE_TYPE = 'BASE TABLE' ORDER BY DATA_LENGTH DESC").split()
        scripts = [[] for _ in range(self.args.jobs)]
        for i, t in enumerate(tables):
            scripts[i % self.args.jobs].append(f"SELECT * FROM {t};")
        files = []
        for i, s in enumerate(scripts):
            f = self.work / f"raw-{i}.sql"
            f.write_text("\n".join(s))
            files.append(f)
        cmd = " & ".join(f"mariadb --no-defaults --socket={self.socket} -uroot --quick -N < {f} > /dev/null" for f in files) + " & wait"
        return timed(cmd, shell=True)

    def coffer_backup(self, repo, prefix, jobs=None, extra=()):
        before = dir_size(repo)
        r = timed([str(self.coffer), "backup", "--mysql", self.mysql_url(), "--include", f"{prefix}*", "--jobs", str(jobs or self.args.jobs),
                   *extra], env=self.coffer_env(repo))
        r["repo_bytes_added"] = dir_size(repo) - before
        return r

    def coffer_init(self, repo):
        subprocess.run([str(self.coffer), "init"], env=self.coffer_env(repo), check=True, capture_output=True)

    def mydumper(self, out, prefix, compress):
        shutil.rmtree(out, ignore_errors=True)
        cmd = ["mydumper", f"--socket={self.socket}", "--user=root", "-t", str(self.args.jobs), "-o", str(out),
               "--trx-consistency-only", "--regex", f"^{prefix}", "-G", "-E", "-R"]
        if compress:
            cmd.append("-c")
        r = timed(cmd)
        r["bytes"] = dir_size(out)
        return r

    def run(self):
        a = self.args
        if a.metadata_only:
            self.metadata_scale()
            return self.results
        prefix = "study_"
        dbs = self.estate(prefix)
        if a.speed_only:
            self.speed(prefix)
            return self.results

        full = {}
        log("1. full backup")
        full["raw_read"] = self.raw_read(prefix)
        repo = self.work / "repo"
        self.coffer_init(repo)
        full["coffer"] = self.coffer_backup(repo, prefix)
        full["coffer"]["repo_bytes"] = dir_size(repo)
        full["mydumper"] = self.mydumper(self.work / "mydumper-plain", prefix, False)
        full["mydumper_compressed"] = self.mydumper(self.work / "mydumper", prefix, True)
        dumps = self.work / "mysqldump"
        dumps.mkdir()
        sequential = " && ".join(
            f"mysqldump --no-defaults --socket={self.socket} -uroot --single-transaction --routines --triggers --events {d} > {dumps / (d + '.sql')}"
            for d in dbs)
        full["mysqldump_sequential"] = timed(sequential, shell=True)
        full["mysqldump_sequential"]["bytes"] = dir_size(dumps)
        full["mysqldump_one_run"] = timed(
            f"mysqldump --no-defaults --socket={self.socket} -uroot --single-transaction --routines --triggers --events --databases {' '.join(dbs)} > {self.work / 'all.sql'}",
            shell=True)
        full["mysqldump_one_run"]["bytes"] = (self.work / "all.sql").stat().st_size
        (self.work / "all.sql").unlink()
        raw = full["raw_read"]["wall_s"]
        for r in full.values():
            r["ratio_to_raw_read"] = round(r["wall_s"] / raw, 2)
        self.results["full_backup"] = full

        log(f"2./3. {a.snapshots} more snapshots with {a.churn}% of the studies changed each time")
        history = []
        mydumper_total = full["mydumper_compressed"]["bytes"]
        for round_no in range(1, a.snapshots):
            self.generate(prefix, a.databases, a.scale, churn=a.churn, round_no=round_no)
            step = {"round": round_no, "coffer": self.coffer_backup(repo, prefix)}
            step["coffer"]["growth_pct_of_full"] = round(100 * step["coffer"]["repo_bytes_added"] / full["coffer"]["repo_bytes"], 2)
            if round_no == 1:
                step["mydumper_compressed"] = self.mydumper(self.work / "mydumper-r1", prefix, True)
            mydumper_total += full["mydumper_compressed"]["bytes"]  # a peer stores a full dump per snapshot
            history.append(step)
        self.results["incremental"] = history
        self.results["after_snapshots"] = {
            "snapshots": a.snapshots,
            "coffer_repo_bytes": dir_size(repo),
            "sum_of_mydumper_compressed_dumps": mydumper_total,
            "ratio": round(dir_size(repo) / mydumper_total, 3),
        }

        sizes = self.sql(f"SELECT TABLE_SCHEMA, SUM(DATA_LENGTH) s FROM information_schema.TABLES WHERE TABLE_SCHEMA LIKE '{prefix}%' "
                         "GROUP BY TABLE_SCHEMA ORDER BY s").strip().split("\n")
        mid = sizes[len(sizes) // 2 + len(sizes) // 4].split("\t")[0] if len(sizes) > 4 else dbs[0]
        largest = sizes[-1].split("\t")[0]
        log(f"4. restore of one mid-size study ({mid})")
        self.results["restore_one"] = self.restore_study(repo, dumps, mid, one_db_repo=True)
        log(f"4b. restore of the largest study ({largest})")
        self.results["restore_largest"] = self.restore_study(repo, dumps, largest, one_db_repo=False)

        if not a.quick:
            self.metadata_scale()
        return self.results

    def estate(self, prefix):
        a = self.args
        log(f"generating {a.databases} studies at scale {a.scale}")
        started = time.monotonic()
        self.generate(prefix, a.databases, a.scale)
        dbs = self.databases(prefix)
        size = int(self.sql(f"SELECT SUM(DATA_LENGTH + INDEX_LENGTH) FROM information_schema.TABLES WHERE TABLE_SCHEMA LIKE '{prefix}%'"))
        rows = int(self.sql(f"SELECT SUM(TABLE_ROWS) FROM information_schema.TABLES WHERE TABLE_SCHEMA LIKE '{prefix}%'"))
        largest = self.sql(f"SELECT MAX(s) FROM (SELECT SUM(DATA_LENGTH) s FROM information_schema.TABLES "
                           f"WHERE TABLE_SCHEMA LIKE '{prefix}%' GROUP BY TABLE_SCHEMA) t").strip()
        self.results["estate"] = {"databases": len(dbs), "tables": len(dbs) * 12, "innodb_bytes": size, "approx_rows": rows,
                                  "largest_study_share": round(int(largest) / max(1, size), 3),
                                  "generation_s": round(time.monotonic() - started, 1)}
        log(f"estate: {len(dbs)} databases, {size / 2**20:.0f} MiB in InnoDB, ~{rows} rows")
        self.settle()
        self.warm(prefix)
        return dbs

    def settle(self, limit_s=300):
        """Wait until InnoDB has written the generated pages and purged the load's undo log:
        otherwise its background threads take CPU from whichever tool runs first."""
        self.sql("SET GLOBAL innodb_max_dirty_pages_pct = 0")
        started = time.monotonic()
        while time.monotonic() - started < limit_s:
            status = dict(line.split("\t") for line in self.sql(
                "SHOW GLOBAL STATUS WHERE Variable_name IN ('Innodb_buffer_pool_pages_dirty', 'Innodb_history_list_length')"
            ).strip().splitlines())
            if all(int(v) < 100 for v in status.values()):
                break
            time.sleep(2)
        self.sql("SET GLOBAL innodb_max_dirty_pages_pct = DEFAULT")
        log(f"server settled in {time.monotonic() - started:.0f} s")

    def speed(self, prefix):
        """Full-backup speed at each connection count of --jobs-list, against the raw read and
        mydumper on the same estate in the same run; coffer also without reads inside a database
        split over connections (--lock-wait 0), the behaviour before issue 10. Each tool twice,
        the faster run kept (the machine is noisy; every tool gets the same treatment)."""
        a = self.args
        speed = {}
        for jobs in [int(j) for j in a.jobs_list.split(",")]:
            self.args.jobs = jobs
            log(f"speed at {jobs} connections")
            def best(run):
                return min((run() for _ in range(2)), key=lambda r: r["wall_s"])
            def coffer(extra):
                def once():
                    repo = self.work / f"repo-speed-{jobs}"
                    shutil.rmtree(repo, ignore_errors=True)
                    self.coffer_init(repo)
                    return self.coffer_backup(repo, prefix, jobs=jobs, extra=extra)
                return once
            def mydumper(compress):
                def once():
                    out = self.work / f"mydumper-speed-{jobs}"
                    shutil.rmtree(out, ignore_errors=True)
                    return self.mydumper(out, prefix, compress)
                return once
            r = {
                "raw_read": best(lambda: self.raw_read(prefix)),
                "coffer": best(coffer([])),
                "coffer_one_connection_per_database": best(coffer(["--lock-wait", "0"])),
                # Studies from 16 MiB read by every connection: the parallel read on this estate.
                "coffer_large_from_16MiB": best(coffer(["--large-database", "16MiB"])),
                "mydumper": best(mydumper(False)),
                "mydumper_compressed": best(mydumper(True)),
            }
            raw = r["raw_read"]["wall_s"]
            for v in r.values():
                v["ratio_to_raw_read"] = round(v["wall_s"] / raw, 2)
            speed[str(jobs)] = r
        self.results["speed"] = speed

    def metadata_scale(self):
        """Many small databases (the 25,000-schema shape): a full backup against mydumper, then a
        backup after two of them changed, which change tracking should finish in seconds."""
        a = self.args
        count = a.tiny_databases or a.databases * 10
        log(f"5. metadata scale: {count} small databases")
        self.generate("tiny_", count, 0.05)
        tiny_repo = self.work / "repo-tiny"
        self.coffer_init(tiny_repo)
        r = self.coffer_backup(tiny_repo, "tiny_")
        tables = count * 12
        r["tables"] = tables
        r["ms_per_table"] = round(1000 * r["wall_s"] / tables, 2)
        self.generate("tiny_", count, 0.05, churn=200.0 / count, round_no=1)
        incremental = self.coffer_backup(tiny_repo, "tiny_")
        incremental["ms_per_database"] = round(1000 * incremental["wall_s"] / count, 3)
        self.results["metadata_scale"] = {"databases": count, "coffer": r, "coffer_two_changed": incremental,
                                          "mydumper": self.mydumper(self.work / "mydumper-tiny", "tiny_", True)}
        self.results["metadata_scale"]["mydumper"]["ms_per_table"] = round(1000 * self.results["metadata_scale"]["mydumper"]["wall_s"] / tables, 2)


    def restore_study(self, repo, dumps, db, one_db_repo):
        """One study restored by coffer (and the --baseline binary), myloader and the mariadb client, median of 5."""
        a = self.args
        restore = {"database": db}
        def coffer_restore(repo, into, binary=self.coffer):
            # Into a database that does not exist, as for myloader and the client below.
            self.sql(f"DROP DATABASE IF EXISTS {into}")
            return timed([str(binary), "restore", "--mysql", self.mysql_url(), "--db", db, "--into", into, "--jobs", str(a.jobs)],
                         env=self.coffer_env(repo))

        restore["coffer_full_repo"] = median(lambda: coffer_restore(repo, "r_coffer"))
        if a.baseline and one_db_repo:
            restore["coffer_baseline_full_repo"] = median(lambda: coffer_restore(repo, "r_coffer_base", a.baseline))
        if one_db_repo:
            small_repo = self.work / f"repo-{db}"
            self.coffer_init(small_repo)
            subprocess.run([str(self.coffer), "backup", "--mysql", self.mysql_url(), "--include", db], env=self.coffer_env(small_repo),
                           check=True, capture_output=True)
            restore["coffer_one_db_repo"] = median(lambda: coffer_restore(small_repo, "r_coffer_small"))
            restore["independence_ratio"] = round(restore["coffer_full_repo"]["wall_s"] / restore["coffer_one_db_repo"]["wall_s"], 2)

        def myloader():
            self.sql("DROP DATABASE IF EXISTS r_myloader")
            # -e: write the binary log like every other tool here (myloader skips it by default,
            # which a server with replicas or point-in-time recovery cannot accept).
            return timed(["myloader", f"--socket={self.socket}", "--user=root", "-d", str(self.work / "mydumper-r1"),
                          "-s", db, "-B", "r_myloader", "-o", "-e", "-t", str(a.jobs)])

        restore["myloader"] = median(myloader)

        def mysql_client():
            self.sql("DROP DATABASE IF EXISTS r_mysql; CREATE DATABASE r_mysql")
            return timed(f"mariadb --no-defaults --socket={self.socket} -uroot r_mysql < {dumps / (db + '.sql')}", shell=True)

        restore["mysql_client"] = median(mysql_client)
        return restore


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name")), "?")
    mem = next((l.split()[1] for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")), "0")
    version = subprocess.run(["mariadbd", "--version"], capture_output=True, text=True).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(int(mem) / 2**20, 1), "os": platform.platform(),
            "mariadb": version, "date": time.strftime("%Y-%m-%d")}


def speed_lines(r):
    e = r["estate"]
    lines = ["", f"estate: {e['databases']} databases, {e['innodb_bytes'] / 2**20:.0f} MiB InnoDB, ~{e['approx_rows']} rows, "
                 f"largest study {100 * e.get('largest_study_share', 0):.0f} %; {r['machine']['cores']} cores"]
    for jobs, x in r["speed"].items():
        lines += ["", f"full backup, {jobs} connections       wall s   x raw read   CPU s   server CPU s   cores busy   peak MiB"]
        cores = r["machine"]["cores"]
        for name, v in x.items():
            server = v.get("server_cpu_s")
            # How much of the machine the tool and the server used together: near 1.0, the run
            # is bound by CPU, and every CPU-second the tool spends is one the server lacks.
            busy = f"{(v['cpu_s'] + server) / (v['wall_s'] * cores):>9.2f}" if server is not None else "        -"
            server = f"{server:>12.1f}" if server is not None else "           -"
            lines.append(f"   {name:<36} {v['wall_s']:>7.1f}   {v['ratio_to_raw_read']:>9.2f}   {v['cpu_s']:>5.1f}   {server}   {busy}   {v['peak_mib']:>8.1f}")
    return lines


def report(r):
    if "speed" in r:
        return "\n".join(speed_lines(r))
    if "full_backup" not in r:
        return "\n".join(metadata_lines(r))
    f = r["full_backup"]
    lines = ["", f"estate: {r['estate']['databases']} databases, {r['estate']['innodb_bytes'] / 2**20:.0f} MiB InnoDB, "
                 f"~{r['estate']['approx_rows']} rows; {r['parameters']['jobs']} connections; {r['machine']['cores']} cores",
             "", "1. full backup                 wall s   x raw read   CPU s   peak MiB   output MiB"]
    for name in ["raw_read", "coffer", "mydumper", "mydumper_compressed", "mysqldump_sequential", "mysqldump_one_run"]:
        x = f[name]
        out = x.get("repo_bytes", x.get("bytes", 0)) / 2**20
        lines.append(f"   {name:<26} {x['wall_s']:>7.1f}   {x['ratio_to_raw_read']:>9.2f}   {x['cpu_s']:>5.1f}   {x['peak_mib']:>8.1f}   {out:>10.1f}")
    lines.append("")
    lines.append("2. incremental backups (coffer)  wall s   added MiB   % of full")
    for h in r["incremental"]:
        c = h["coffer"]
        lines.append(f"   round {h['round']:<24} {c['wall_s']:>7.1f}   {c['repo_bytes_added'] / 2**20:>9.2f}   {c['growth_pct_of_full']:>8.2f}")
    s = r["after_snapshots"]
    lines += ["", f"3. after {s['snapshots']} snapshots: coffer repository {s['coffer_repo_bytes'] / 2**20:.1f} MiB vs "
                  f"{s['sum_of_mydumper_compressed_dumps'] / 2**20:.1f} MiB of compressed mydumper dumps (ratio {s['ratio']})"]
    for key, what in [("restore_one", "restore of"), ("restore_largest", "restore of the largest,")]:
        if key not in r:
            continue
        x = r[key]
        lines += ["", f"4. {what} {x['database']}             wall s   x coffer"]
        for name in ["coffer_full_repo", "coffer_baseline_full_repo", "coffer_one_db_repo", "myloader", "mysql_client"]:
            if name not in x:
                continue
            lines.append(f"   {name:<26} {x[name]['wall_s']:>7.2f}   {x[name]['wall_s'] / x['coffer_full_repo']['wall_s']:>8.2f}")
        if "independence_ratio" in x:
            lines.append(f"   full repository vs one-database repository: {x['independence_ratio']}x")
    lines += metadata_lines(r)
    return "\n".join(lines)


def metadata_lines(r):
    if "metadata_scale" not in r:
        return []
    m = r["metadata_scale"]
    inc = m["coffer_two_changed"]
    return ["", f"5. {m['databases']} small databases: coffer {m['coffer']['wall_s']:.1f} s, peak {m['coffer']['peak_mib']:.0f} MiB, "
                f"{m['coffer']['ms_per_table']} ms/table; mydumper {m['mydumper']['wall_s']:.1f} s, {m['mydumper']['ms_per_table']} ms/table",
            f"   after 2 of them changed: coffer {inc['wall_s']:.1f} s ({inc['ms_per_database']} ms per database), peak {inc['peak_mib']:.0f} MiB"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--databases", type=int, default=100)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--snapshots", type=int, default=5)
    ap.add_argument("--churn", type=float, default=2.0)
    ap.add_argument("--quick", action="store_true", help="skip the 10x metadata-scale run")
    ap.add_argument("--metadata-only", action="store_true", help="only the many-small-databases run")
    ap.add_argument("--speed-only", action="store_true", help="only full-backup speed at each of --jobs-list connections")
    ap.add_argument("--jobs-list", default="2,4", help="connection counts for --speed-only")
    ap.add_argument("--tiny-databases", type=int, default=0, help="databases in the metadata-scale run (default 10x --databases)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "latest.json"))
    ap.add_argument("--baseline", help="another coffer binary (e.g. the previous release) whose one-study restore is timed "
                    "on the same data in the same run, for before/after figures")
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    bench = Bench(args)
    try:
        bench.start()
        results = bench.run()
    finally:
        bench.stop()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(report(results))
    print(f"\nresults written to {args.out}")


if __name__ == "__main__":
    main()
