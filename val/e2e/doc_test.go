// Package e2e tests a whole validation stack end to end: the verify API of
// val/valserver on a real val/sqlstore (SQLite and MariaDB), decrypting
// through a real KSM, either ksm/ksmserver's HTTP API on a loopback server or
// its decrypter in-process (ykvald's --ksm-db mode), wired as ykvald wires
// them (cmd/ykvald/ksmadapter).
//
// The package has only tests: it is the one place in val/ that may import
// the ksm packages, to run a real KSM.
package e2e_test
