// Package integration tests the built PAM module (pam/module + the helper)
// end to end: through the real libpam (msteinert/pam's StartConfDir) and
// through a real sshd with a Go SSH client, against a real validation
// server started by the tests. It has no non-test code.
package integration
