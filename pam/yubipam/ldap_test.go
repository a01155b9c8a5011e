package yubipam

import (
	"log/slog"
	"strings"
	"testing"
)

func TestMatchLDAP(t *testing.T) {
	tests := []struct {
		values []string
		prefix string
		id     string
		idLen  int
		anyID  bool
		want   Match
	}{
		{nil, "", "ccccccbchvth", 12, false, NoTokens},
		{nil, "", "", 12, true, NoTokens},
		{[]string{"ccccccbchvth"}, "", "ccccccbchvth", 12, false, Listed},
		{[]string{"ccccccbchvth"}, "", "", 12, true, Listed},
		{[]string{"vvvvvvvvvvvv"}, "", "ccccccbchvth", 12, false, NotListed},
		{[]string{"ccccccbchvth-laptop"}, "", "ccccccbchvth", 12, false, Listed}, // strncmp over 12
		{[]string{"cccccc"}, "", "ccccccbchvth", 12, false, NotListed},
		{[]string{"cccccc"}, "", "cccccc", 6, false, Listed},
		{[]string{"ccccccbchvth"}, "yk:", "ccccccbchvth", 12, false, NoTokens}, // no prefix: not a token
		{[]string{"ccccccbchvth"}, "yk:", "", 12, true, NoTokens},
		{[]string{"yk:ccccccbchvth"}, "yk:", "ccccccbchvth", 12, false, Listed},
		{[]string{"ccccccbchvth", "yk:vvvvvvvvvvvv"}, "yk:", "ccccccbchvth", 12, false, NotListed},
	}
	for _, tt := range tests {
		if got := matchLDAP(tt.values, tt.prefix, tt.id, tt.idLen, tt.anyID); got != tt.want {
			t.Errorf("matchLDAP(%q, prefix %q, %q, %d, any=%v) = %v, want %v", tt.values, tt.prefix, tt.id, tt.idLen, tt.anyID, got, tt.want)
		}
	}
}

func TestLDAPSettings(t *testing.T) {
	ok := []string{"ldap_uri=ldap://h", "ldapdn=ou=p,dc=x", "user_attr=uid", "yubi_attr=yk"}
	tests := []struct {
		args    []string
		wantErr string // "" = valid
	}{
		{ok, ""},
		{[]string{"ldap_uri=ldaps://a, ldap://b:389", "yubi_attr=yk"}, ""},
		{[]string{"ldapserver=h", "yubi_attr=yk"}, ""},
		{[]string{"ldap_uri=ldap://h"}, "yubi_attr is required"},
		{[]string{"ldap_uri=http://h", "yubi_attr=yk"}, "want ldap://"},
		{[]string{"ldap_uri=ldap://h", "yubi_attr=yk", "ldap_bind_as_user"}, "needs user_attr"},
		{append(ok, "ldap_clientcertfile=/c"), "go together"},
		{append(ok, "ldap_cacertfile=/nonexistent"), "ldap_cacertfile"},
		{append(ok, "ldap_bind_password_file=/nonexistent"), "ldap_bind_password_file"},
	}
	for _, tt := range tests {
		cfg, _ := ParseArgs(tt.args)
		_, err := newLDAPMapping(cfg, &fakeTx{}, slog.New(slog.DiscardHandler))
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("newLDAPMapping(%q) = %v, want no error", tt.args, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("newLDAPMapping(%q) = %v, want an error about %q", tt.args, err, tt.wantErr)
		}
	}
}

func TestLDAPUserDN(t *testing.T) {
	m := &LDAPMapping{UserAttr: "uid", BaseDN: "ou=people,dc=x"}
	for in, want := range map[string]string{
		"alice":       "uid=alice,ou=people,dc=x",
		"a,ou=admins": `uid=a\,ou=admins,ou=people,dc=x`, // cannot climb to another entry
		"x+cn=y":      `uid=x\+cn=y,ou=people,dc=x`,
		" lead":       `uid=\ lead,ou=people,dc=x`,
		"#x":          `uid=\#x,ou=people,dc=x`,
	} {
		if got := m.userDN(in); got != want {
			t.Errorf("userDN(%q) = %q, want %q", in, got, want)
		}
	}
}
