-- Database users of ykstack on MariaDB or MySQL: the users of Yubico's YK-KSM
-- and YK-VAL installation guides, each with the least rights its program needs.
-- ykstack uses existing ykksm and ykval databases as they are.
--
-- Run as the database administrator once the tables exist (docs/OPERATIONS.md):
--   mariadb -e 'CREATE DATABASE ykksm; CREATE DATABASE ykval'
--   mariadb ykksm < sql/ksm/mysql.sql
--   mariadb ykval < sql/val/mysql.sql
--   mariadb < contrib/config/mariadb-grants.sql   (after changing the passwords)
-- and put each password in the file the unit loads it from:
--   ykksmreader     /etc/ykstack/ksm-db-password   (ykksmd)
--   ykval_verifier  /etc/ykstack/val-db-password   (ykvald)
--
-- 'localhost' is the Unix socket (/run/mysqld/mysqld.sock), what the example
-- DSNs in contrib/config/*.env use. Over TCP from 127.0.0.1 with
-- skip-name-resolve, create the users at '127.0.0.1' instead; from another
-- host, at that host's address. The test suite runs this file (with other
-- names and passwords) and serves OTPs as these users.

-- ykksmd reads keys and nothing else: keys can be added but never read out
-- or changed through the KSM.
CREATE USER 'ykksmreader'@'localhost' IDENTIFIED BY 'change-me-reader';
GRANT SELECT ON ykksm.yubikeys TO 'ykksmreader'@'localhost';

-- ykksm-import adds keys. ykstack's import also reads the table (to check
-- that it exists, and to name the keys that are already there).
CREATE USER 'ykksmimporter'@'localhost' IDENTIFIED BY 'change-me-importer';
GRANT SELECT, INSERT ON ykksm.yubikeys TO 'ykksmimporter'@'localhost';

-- ykvald: key counters, clients, the replication queue.
CREATE USER 'ykval_verifier'@'localhost' IDENTIFIED BY 'change-me-verifier';
GRANT SELECT, INSERT, UPDATE(modified, yk_counter, yk_low, yk_high, yk_use, nonce) ON ykval.yubikeys TO 'ykval_verifier'@'localhost';
GRANT SELECT, INSERT, UPDATE(id, secret, active) ON ykval.clients TO 'ykval_verifier'@'localhost';
GRANT SELECT, INSERT, UPDATE, DELETE ON ykval.queue TO 'ykval_verifier'@'localhost';
-- Only if ykvald serves /wsapi/revoke (--revoke-ip): it sets yubikeys.active.
-- GRANT UPDATE(active) ON ykval.yubikeys TO 'ykval_verifier'@'localhost';
