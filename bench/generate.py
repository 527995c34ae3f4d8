#!/usr/bin/env python3
"""Generate a realistic EDC estate: many study databases with skewed sizes.

Each study is a schema with a dozen tables (sites, subjects, visits, forms, form items, queries,
audit log, users, attachments, adverse events, medications, randomization) with foreign keys,
secondary indexes, and the usual types: integers, decimals, utf8mb4 text, blobs, JSON, datetimes,
enums, NULLs. Sizes follow a Pareto distribution: most studies are small, a few are large.
Deterministic for a seed: the same arguments produce byte-identical databases.

Rows are produced inside the server from MariaDB's sequence tables (seq_1_to_N), so generating
hundreds of megabytes takes a few minutes, not hours.

Usage: generate.py --socket PATH [--databases 100] [--scale 1.0] [--seed 42] [--prefix study_]
       generate.py --socket PATH --churn PERCENT --round R ...   (change PERCENT% of the studies a little)
"""
import argparse
import random
import subprocess
import sys

SCHEMA = """
CREATE TABLE sites (id INT PRIMARY KEY, code CHAR(6) NOT NULL UNIQUE, name VARCHAR(120) NOT NULL,
  country CHAR(2) NOT NULL, created DATETIME NOT NULL) ENGINE=InnoDB;
CREATE TABLE users (id INT PRIMARY KEY, login VARCHAR(40) NOT NULL UNIQUE, email VARCHAR(120),
  role ENUM('investigator','monitor','data_manager','admin') NOT NULL, active TINYINT(1) NOT NULL DEFAULT 1) ENGINE=InnoDB;
CREATE TABLE subjects (id INT PRIMARY KEY, site_id INT NOT NULL, code VARCHAR(20) NOT NULL UNIQUE,
  dob DATE, sex ENUM('F','M','U') NOT NULL, enrolled DATETIME(3) NOT NULL,
  status ENUM('screening','enrolled','completed','withdrawn') NOT NULL, weight_kg DECIMAL(5,1) NULL,
  initials VARCHAR(8) CHARACTER SET utf8mb4, KEY (site_id, status),
  FOREIGN KEY (site_id) REFERENCES sites(id)) ENGINE=InnoDB;
CREATE TABLE randomization (subject_id INT PRIMARY KEY, arm CHAR(1) NOT NULL, stratum VARCHAR(20) NOT NULL,
  randomized_at DATETIME NOT NULL, seq INT NOT NULL UNIQUE, FOREIGN KEY (subject_id) REFERENCES subjects(id)) ENGINE=InnoDB;
CREATE TABLE visits (id INT PRIMARY KEY, subject_id INT NOT NULL, visit_no SMALLINT NOT NULL, visit_date DATE NOT NULL,
  status ENUM('planned','done','missed') NOT NULL, created_at TIMESTAMP NOT NULL DEFAULT '2020-01-01 00:00:00',
  KEY (subject_id, visit_no), FOREIGN KEY (subject_id) REFERENCES subjects(id)) ENGINE=InnoDB;
CREATE TABLE forms (id INT PRIMARY KEY, visit_id INT NOT NULL, form_code VARCHAR(20) NOT NULL, version INT NOT NULL,
  data JSON, updated DATETIME(6) NOT NULL, KEY (form_code), FOREIGN KEY (visit_id) REFERENCES visits(id)) ENGINE=InnoDB;
CREATE TABLE form_items (id BIGINT PRIMARY KEY, form_id INT NOT NULL, item_code VARCHAR(30) NOT NULL,
  value_text TEXT CHARACTER SET utf8mb4 NULL, value_num DECIMAL(18,6) NULL, value_date DATE NULL,
  KEY (form_id, item_code), FOREIGN KEY (form_id) REFERENCES forms(id)) ENGINE=InnoDB;
CREATE TABLE queries (id INT PRIMARY KEY, form_item_id BIGINT NOT NULL, text TEXT CHARACTER SET utf8mb4 NOT NULL,
  status ENUM('open','answered','closed') NOT NULL, raised DATETIME NOT NULL, closed DATETIME NULL,
  KEY (status), FOREIGN KEY (form_item_id) REFERENCES form_items(id)) ENGINE=InnoDB;
CREATE TABLE adverse_events (id INT PRIMARY KEY, subject_id INT NOT NULL, term VARCHAR(200) CHARACTER SET utf8mb4 NOT NULL,
  severity TINYINT NOT NULL, serious TINYINT(1) NOT NULL, onset DATE NOT NULL, resolved DATE NULL, notes TEXT,
  FOREIGN KEY (subject_id) REFERENCES subjects(id)) ENGINE=InnoDB;
CREATE TABLE medications (id INT PRIMARY KEY, subject_id INT NOT NULL, name VARCHAR(80) NOT NULL, dose DOUBLE NOT NULL,
  unit ENUM('mg','ml','ug','IU') NOT NULL, start DATE NOT NULL, stop DATE NULL,
  FOREIGN KEY (subject_id) REFERENCES subjects(id)) ENGINE=InnoDB;
CREATE TABLE attachments (id INT PRIMARY KEY, subject_id INT NOT NULL, filename VARCHAR(120) NOT NULL,
  mime VARCHAR(40) NOT NULL, content MEDIUMBLOB NOT NULL, FOREIGN KEY (subject_id) REFERENCES subjects(id)) ENGINE=InnoDB;
CREATE TABLE audit_log (id BIGINT PRIMARY KEY, entity VARCHAR(30) NOT NULL, entity_id BIGINT NOT NULL,
  action ENUM('insert','update','delete','sign') NOT NULL, user_id INT NOT NULL, at DATETIME(6) NOT NULL,
  old_value TEXT CHARACTER SET utf8mb4, new_value TEXT CHARACTER SET utf8mb4, KEY (entity, entity_id), KEY (at)) ENGINE=InnoDB;
"""

# Row counts per subject; {n} is the number of subjects of the study.
FILL = """
INSERT INTO sites SELECT seq, CONCAT('S', LPAD(seq, 5, '0')), CONCAT('Hôpital universitaire ', seq, ' – ', SUBSTR(SHA1(seq + {k}), 1, 12)),
  ELT(1 + seq % 6, 'DE', 'FR', 'NO', 'PL', 'US', 'JP'), '2019-01-01' + INTERVAL (seq * 37 + {k}) % 900 DAY FROM seq_1_to_{sites};
INSERT INTO users SELECT seq, CONCAT('user', seq, '_', {k}), IF(seq % 4 = 0, NULL, CONCAT('user', seq, '@site.example')),
  ELT(1 + seq % 4, 'investigator', 'monitor', 'data_manager', 'admin'), seq % 9 <> 0 FROM seq_1_to_{users};
INSERT INTO subjects SELECT seq, 1 + seq % {sites}, CONCAT('SUBJ-', {k}, '-', LPAD(seq, 6, '0')),
  IF(seq % 17 = 0, NULL, '1940-01-01' + INTERVAL (seq * 7919 + {k}) % 25000 DAY), ELT(1 + seq % 3, 'F', 'M', 'U'),
  '2020-03-01 08:00:00' + INTERVAL (seq * 3571 + {k}) % 86400000 SECOND_MICROSECOND,
  ELT(1 + (seq * 13) % 4, 'screening', 'enrolled', 'completed', 'withdrawn'),
  IF(seq % 11 = 0, NULL, 45 + ((seq * 31 + {k}) % 800) / 10), CONCAT(CHAR(65 + seq % 26), 'ø', CHAR(65 + (seq * 7) % 26)) FROM seq_1_to_{n};
INSERT INTO randomization SELECT seq, ELT(1 + (seq * 7 + {k}) % 3, 'A', 'B', 'C'), CONCAT('stratum-', seq % 4),
  '2020-04-01 00:00:00' + INTERVAL seq HOUR, seq FROM seq_1_to_{n} WHERE seq % 5 <> 0;
INSERT INTO visits SELECT seq, 1 + (seq - 1) DIV 6, 1 + (seq - 1) % 6, '2020-05-01' + INTERVAL (seq * 3 + {k}) % 1500 DAY,
  ELT(1 + seq % 3, 'planned', 'done', 'missed'), '2021-01-01 00:00:00' + INTERVAL seq MINUTE FROM seq_1_to_{visits};
INSERT INTO forms SELECT seq, 1 + (seq - 1) DIV 2, ELT(1 + seq % 6, 'VITALS', 'LAB', 'ECG', 'DEMOG', 'AE', 'CONMED'), 1 + seq % 3,
  JSON_OBJECT('hr', 50 + (seq * 7) % 60, 'bp', CONCAT(100 + seq % 50, '/', 60 + seq % 30), 'temp', 36 + (seq % 30) / 10,
              'comment', IF(seq % 7 = 0, NULL, SUBSTR(SHA2(seq + {k}, 256), 1, 20))),
  '2021-02-01 00:00:00.000000' + INTERVAL (seq * 1009 + {k}) % 31536000 SECOND FROM seq_1_to_{forms};
INSERT INTO form_items SELECT seq, 1 + (seq - 1) DIV 5, CONCAT('ITEM_', seq % 40),
  IF(seq % 3 = 0, CONCAT('réponse ', SUBSTR(SHA1(seq * 3 + {k}), 1, 8 + seq % 24)), NULL),
  IF(seq % 3 = 1, ((seq * 7919 + {k}) % 10000000) / 1000, NULL),
  IF(seq % 3 = 2, '2021-01-01' + INTERVAL seq % 700 DAY, NULL) FROM seq_1_to_{items};
INSERT INTO queries SELECT seq, 1 + (seq * 29) % {items}, CONCAT('Please verify value ', seq, ': ', SUBSTR(SHA2(seq + {k}, 512), 1, 60)),
  ELT(1 + seq % 3, 'open', 'answered', 'closed'), '2021-06-01 00:00:00' + INTERVAL seq * 17 MINUTE,
  IF(seq % 3 = 2, '2021-07-01 00:00:00' + INTERVAL seq * 19 MINUTE, NULL) FROM seq_1_to_{queries};
INSERT INTO adverse_events SELECT seq, 1 + (seq * 3) % {n}, ELT(1 + seq % 5, 'Headache', 'Nausea', 'Fatigue', 'Éruption cutanée', 'Dizziness'),
  1 + seq % 4, seq % 10 = 0, '2021-01-01' + INTERVAL seq % 600 DAY, IF(seq % 4 = 0, NULL, '2021-03-01' + INTERVAL seq % 600 DAY),
  IF(seq % 2 = 0, REPEAT(SUBSTR(SHA1(seq + {k}), 1, 20), 1 + seq % 5), NULL) FROM seq_1_to_{aes};
INSERT INTO medications SELECT seq, 1 + (seq * 5) % {n}, ELT(1 + seq % 6, 'Paracetamol', 'Ibuprofen', 'Metformin', 'Atorvastatin', 'Lisinopril', 'Omeprazole'),
  ((seq * 37) % 1000) / 3, ELT(1 + seq % 4, 'mg', 'ml', 'ug', 'IU'), '2020-01-01' + INTERVAL seq % 900 DAY,
  IF(seq % 3 = 0, NULL, '2022-01-01' + INTERVAL seq % 300 DAY) FROM seq_1_to_{meds};
INSERT INTO attachments SELECT seq, 1 + (seq * 7) % {n}, CONCAT('scan_', seq, '.pdf'), 'application/pdf',
  REPEAT(UNHEX(SHA2(seq + {k} * 1000003, 512)), 32 + (seq * 13) % 200) FROM seq_1_to_{files};
INSERT INTO audit_log SELECT seq, ELT(1 + seq % 4, 'subject', 'form', 'form_item', 'query'), (seq * 7) % 100000,
  ELT(1 + seq % 4, 'insert', 'update', 'delete', 'sign'), 1 + seq % {users},
  '2021-01-01 00:00:00.000000' + INTERVAL seq * 1013 MICROSECOND + INTERVAL seq SECOND,
  IF(seq % 4 = 0, NULL, SUBSTR(SHA2(seq + {k}, 256), 1, 10 + seq % 40)), CONCAT('{{"v":"', SUBSTR(SHA2(seq * 3 + {k}, 256), 1, 10 + seq % 50), '"}}')
  FROM seq_1_to_{audit};
CREATE VIEW subject_summary AS SELECT s.id, s.code, s.status, COUNT(v.id) AS visits FROM subjects s LEFT JOIN visits v ON v.subject_id = s.id GROUP BY s.id, s.code, s.status;
"""


def study_sizes(databases, scale, seed):
    rng = random.Random(seed)
    # Pareto(1.2): median ~ 1.8x the minimum, a long tail of large studies.
    return [max(5, int(20 * scale * min(rng.paretovariate(1.2), 200))) for _ in range(databases)]


def fill_sql(name, k, n):
    counts = dict(k=k, n=n, sites=max(2, n // 40), users=max(3, n // 15), visits=n * 6, forms=n * 12,
                  items=n * 60, queries=max(1, n * 2), aes=max(1, n // 2), meds=max(1, n), files=max(1, n // 20),
                  audit=n * 80)
    return f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;\nUSE `{name}`;\n" + SCHEMA + FILL.format(**counts)


def churn_sql(name, k, n, round_no):
    # A little of what a day of data entry does: new audit rows, corrections to recently entered
    # items and subjects (data entry touches the newest records), a few new queries.
    recent_items = n * 60 - 300
    return f"""USE `{name}`;
INSERT INTO audit_log SELECT 100000000 * {round_no + 1} + seq, 'form_item', seq, 'update', 1, '2026-01-01' + INTERVAL {round_no} DAY,
  NULL, CONCAT('{{"v":"round {round_no}"}}') FROM seq_1_to_{max(1, n // 4)};
UPDATE form_items SET value_text = CONCAT('corrigé ', {round_no}) WHERE id > {recent_items} AND id % 7 = {round_no % 7};
UPDATE subjects SET status = 'completed' WHERE id = {max(1, n - round_no % n)};
INSERT INTO queries SELECT 10000000 * {round_no + 1} + seq, 1, 'Round query', 'open', '2026-01-01', NULL FROM seq_1_to_3;
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--socket", required=True)
    ap.add_argument("--databases", type=int, default=100)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--prefix", default="study_")
    ap.add_argument("--churn", type=float, help="percent of studies to change a little")
    ap.add_argument("--round", type=int, default=0)
    ap.add_argument("--parallel", type=int, default=2)
    args = ap.parse_args()
    sizes = study_sizes(args.databases, args.scale, args.seed)
    names = [f"{args.prefix}{i:05d}" for i in range(args.databases)]
    if args.churn is not None:
        rng = random.Random(args.seed * 1000 + args.round)
        chosen = rng.sample(range(args.databases), max(1, int(args.databases * args.churn / 100)))
        scripts = [churn_sql(names[i], i, sizes[i], args.round) for i in sorted(chosen)]
    else:
        scripts = [fill_sql(names[i], i, sizes[i]) for i in range(args.databases)]
    client = ["mariadb", "--no-defaults", f"--socket={args.socket}", "-uroot"]
    running = []
    for script in scripts:
        while len(running) >= args.parallel:
            p = running.pop(0)
            if p.wait() != 0:
                sys.exit("generation failed")
        p = subprocess.Popen(client, stdin=subprocess.PIPE)
        p.stdin.write(script.encode())
        p.stdin.close()
        running.append(p)
    for p in running:
        if p.wait() != 0:
            sys.exit("generation failed")
    print(f"{len(scripts)} databases {'changed' if args.churn is not None else 'generated'}; subjects per study: "
          f"min {min(sizes)}, median {sorted(sizes)[len(sizes) // 2]}, max {max(sizes)}", file=sys.stderr)


if __name__ == "__main__":
    main()
