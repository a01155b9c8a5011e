package integration

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msteinert/pam/v2"

	"github.com/ykstack/ykstack/pam/internal/pamtest"
)

// TestLDAP drives the module through libpam with token mappings in a real
// slapd.
func TestLDAP(t *testing.T) {
	s := newSetup(t)
	id := s.tok.PublicID
	dir := pamtest.StartLDAP(t, false,
		pamtest.LDAPUser{Name: "alice", IDs: []string{"vvvvvvvvvvvv", id}},
		pamtest.LDAPUser{Name: "pfx", IDs: []string{id, "yk:" + "vvvvvvvvvvvv"}}, // the bare id has no prefix
		pamtest.LDAPUser{Name: "pfxok", IDs: []string{"yk:" + id + "-work"}},
		pamtest.LDAPUser{Name: "bob"}, // entry without tokens
	)
	pwFile := filepath.Join(t.TempDir(), "bind.pw")
	if err := os.WriteFile(pwFile, []byte(pamtest.LDAPReaderPass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reader := []string{"ldap_bind_user=" + pamtest.LDAPReader, "ldap_bind_password=" + pamtest.LDAPReaderPass}
	base := []string{"ldap_uri=" + dir.URI, "ldapdn=" + pamtest.LDAPBase, "user_attr=uid", "yubi_attr=yubiKeyId"}
	with := func(parts ...[]string) []string {
		var out []string
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	filter := []string{"ldap_uri=" + dir.URI, "ldapdn=" + pamtest.LDAPBase, "yubi_attr=yubiKeyId", "ldap_filter=(&(objectClass=yubiKeyUser)(uid=%u))"}

	tests := []struct {
		name   string
		args   []string
		user   string
		answer func() string
		want   error // nil: success
	}{
		{"bind user, base search", with(base, reader), "alice", s.tok.Next, nil},
		{"bind password from a file", with(base, []string{"ldap_bind_user=" + pamtest.LDAPReader, "ldap_bind_password_file=" + pwFile}), "alice", s.tok.Next, nil},
		{"anonymous cannot see the ids: no tokens", base, "alice", s.tok.Next, pam.ErrUserUnknown},
		{"wrong bind password", with(base, []string{"ldap_bind_user=" + pamtest.LDAPReader, "ldap_bind_password=nope"}), "alice", s.tok.Next, pam.ErrAuthinfoUnavail},
		{"no entry", with(base, reader), "carol", s.tok.Next, pam.ErrUserUnknown},
		{"no entry, nullok", with(base, reader, []string{"nullok"}), "carol", s.tok.Next, pam.ErrPermDenied}, // PAM_IGNORE alone: the stack fails
		{"entry without ids", with(base, reader), "bob", s.tok.Next, pam.ErrUserUnknown},
		{"id not listed", with(base, reader), "alice", func() string { return "cccccccccccc" + s.tok.Next()[12:] }, pam.ErrAuth},
		{"bad OTP", with(base, reader), "alice", s.tok.ForeignOTP, pam.ErrAuth},
		{"subtree filter", with(filter, reader), "alice", s.tok.Next, nil},
		{"filter injection is escaped", with(filter, reader), "*", s.tok.Next, pam.ErrUserUnknown},
		{"filter injection is escaped (parenthesis)", with(filter, reader), "alice)(uid=*", s.tok.Next, pam.ErrUserUnknown},
		{"prefix: only prefixed values count", with(base, reader, []string{"yubi_attr_prefix=yk:"}), "pfx", s.tok.Next, pam.ErrAuth},
		{"prefix: compared over token_id_length after it", with(base, reader, []string{"yubi_attr_prefix=yk:"}), "pfxok", s.tok.Next, nil},
		{"bind as the user", with(base, []string{"ldap_bind_as_user", "always_prompt"}), "alice", func() string { return pamtest.LDAPUserPassword + s.tok.Next() }, nil},
		{"bind as the user, wrong password", with(base, []string{"ldap_bind_as_user", "always_prompt"}), "alice", func() string { return "wrong" + s.tok.Next() }, pam.ErrAuthinfoUnavail},
		{"bind as the user without always_prompt", with(base, []string{"ldap_bind_as_user"}), "alice", s.tok.Next, pam.ErrAuthinfoUnavail},
		{"STARTTLS", with(base, reader, []string{"ldap_starttls", "ldap_cacertfile=" + dir.CAFile}), "alice", s.tok.Next, nil},
		{"STARTTLS without the CA", with(base, reader, []string{"ldap_starttls"}), "alice", s.tok.Next, pam.ErrAuthinfoUnavail},
		{"ldaps", with([]string{"ldap_uri=" + dir.TLSURI, "ldapdn=" + pamtest.LDAPBase, "user_attr=uid", "yubi_attr=yubiKeyId", "ldap_cacertfile=" + dir.CAFile}, reader), "alice", s.tok.Next, nil},
		{"first server down", with([]string{"ldap_uri=ldap://127.0.0.1:1," + dir.URI, "ldapdn=" + pamtest.LDAPBase, "user_attr=uid", "yubi_attr=yubiKeyId"}, reader), "alice", s.tok.Next, nil},
		{"all servers down", with([]string{"ldap_uri=ldap://127.0.0.1:1", "ldapdn=" + pamtest.LDAPBase, "user_attr=uid", "yubi_attr=yubiKeyId"}, reader), "alice", s.tok.Next, pam.ErrAuthinfoUnavail},
		{"ldapserver (old form)", with([]string{"ldapserver=" + strings.TrimPrefix(dir.URI, "ldap://"), "ldapdn=" + pamtest.LDAPBase, "user_attr=uid", "yubi_attr=yubiKeyId"}, reader), "alice", s.tok.Next, nil},
		{"no yubi_attr", []string{"ldap_uri=" + dir.URI, "ldapdn=" + pamtest.LDAPBase, "user_attr=uid"}, "alice", s.tok.Next, pam.ErrAuthinfoUnavail},
		{"client key without certificate", with(base, reader, []string{"ldap_clientkeyfile=" + dir.ClientKey}), "alice", s.tok.Next, pam.ErrAuthinfoUnavail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newStack(t, s.line("required", append([]string{"authfile="}, tt.args...)...), s.account())
			auth, _ := st.login(t, tt.user, &answerer{answer: tt.answer()})
			if tt.want == nil && auth != nil || tt.want != nil && !errors.Is(auth, tt.want) {
				t.Errorf("login = %v, want %v", auth, tt.want)
			}
		})
	}
}

// TestLDAPClientCertificate uses a slapd that demands a client certificate.
func TestLDAPClientCertificate(t *testing.T) {
	s := newSetup(t)
	dir := pamtest.StartLDAP(t, true, pamtest.LDAPUser{Name: "alice", IDs: []string{s.tok.PublicID}})
	args := []string{"authfile=", "ldap_uri=" + dir.TLSURI, "ldapdn=" + pamtest.LDAPBase, "user_attr=uid", "yubi_attr=yubiKeyId",
		"ldap_cacertfile=" + dir.CAFile, "ldap_bind_user=" + pamtest.LDAPReader, "ldap_bind_password=" + pamtest.LDAPReaderPass}
	withCert := append(args, "ldap_clientcertfile="+dir.ClientCert, "ldap_clientkeyfile="+dir.ClientKey)
	for _, tt := range []struct {
		name string
		args []string
		want error
	}{
		{"with the certificate", withCert, nil},
		{"without", args, pam.ErrAuthinfoUnavail},
	} {
		st := newStack(t, s.line("required", tt.args...))
		auth, _ := st.login(t, "alice", &answerer{answer: s.tok.Next()})
		if tt.want == nil && auth != nil || tt.want != nil && !errors.Is(auth, tt.want) {
			t.Errorf("%s: login = %v, want %v", tt.name, auth, tt.want)
		}
	}
}
