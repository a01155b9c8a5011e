// Package contrib holds ykstack's operations files and the tests that check
// them; it has no code of its own.
//
//	systemd/    hardened ykksmd.service, ykvald.service and ykval-queue.service;
//	            drop-ins for sealed AES keys (kek.conf, ksm-kek.conf), TLS
//	            (tls.conf, ksm-tls.conf) and the sync pool's key (sync-key.conf);
//	            sysusers.d and tmpfiles.d snippets
//	config/     example settings for the units (/etc/ykstack/*.env, ykvald.conf)
//	            and the MariaDB grants
//	prometheus/ alerting rules, their unit tests, a scrape configuration
//	grafana/    a dashboard of the servers' metrics
//	galera/     several ykvald servers on a MariaDB Galera cluster: a guide and
//	            the node configuration (tested by val/galeratest)
//	pam/, sshd/ pam_yubico-style PAM and sshd examples (docs/PAM.md)
//
// The tests run the tools that judge these files: systemd-analyze verify and
// security, systemd-sysusers and systemd-tmpfiles into a scratch root,
// promtool check config, check rules and test rules. They build the servers,
// start them the way the units and drop-ins do (command lines, environment,
// credentials): a stack on SQLite and on MariaDB, mutual TLS between ykvald
// and ykksmd with certificate reloads, a sync pool with ykval-queue; they
// boot the units under a real systemd in a container; and they check that
// every metric the alerts and the dashboard use is one the servers export. A
// missing tool skips its test on a developer's machine and fails it when
// CI=true (Debian packages systemd, systemd-container, dbus and prometheus).
// See docs/OPERATIONS.md.
package contrib
