// Package e2e holds end-to-end tests of the KSM tools as an operator uses
// them: the real binaries (built by the tests), real gpg keys in a temporary
// GNUPGHOME, SQLite and MariaDB databases, and OTPs decrypted over HTTP.
// It has no code of its own.
package e2e
