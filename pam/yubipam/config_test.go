package yubipam

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestParseArgs(t *testing.T) {
	def, _ := ParseArgs(nil)
	if def.TokenIDLength != 12 || def.Mode != "client" || def.ClientID != 0 {
		t.Fatalf("ParseArgs(nil) = %+v, want token_id_length 12, mode client, id 0", def)
	}
	tests := []struct {
		args    []string
		want    func(c *Config)
		unknown []string
	}{
		{[]string{"id=16", "key=c2VjcmV0", "debug"}, func(c *Config) { c.ClientID, c.Key, c.Debug = 16, "c2VjcmV0", true }, nil},
		{[]string{"id=1", "id=2"}, func(c *Config) { c.ClientID = 2 }, nil},                             // later wins
		{[]string{"id=7", "id=abc"}, func(c *Config) { c.ClientID = 7 }, nil},                           // no digits: unchanged
		{[]string{"id=12abc"}, func(c *Config) { c.ClientID = 12 }, nil},                                // like %u
		{[]string{"id= 5"}, func(c *Config) { c.ClientID = 5 }, nil},                                    // leading blank
		{[]string{"token_id_length=-1"}, func(c *Config) { c.TokenIDLength = 1<<32 - 1 }, nil},          // wraps
		{[]string{"token_id_length=99999999999"}, func(c *Config) { c.TokenIDLength = 1<<32 - 1 }, nil}, // saturates
		{[]string{"debugx", "debug=1", "nullok"}, func(c *Config) { c.NullOK = true }, []string{"debugx", "debug=1"}},
		{[]string{"mode=client"}, func(c *Config) {}, nil},
		{[]string{"mode=challenge-response"}, func(c *Config) { c.Mode = "challenge-response" }, nil},
		{[]string{"mode=other"}, func(c *Config) {}, []string{"mode=other"}},
		{[]string{"url=http://h/v?id=%d&otp=%s", "urllist=http://a;http://b"}, func(c *Config) {
			c.URL, c.URLList = "http://h/v?id=%d&otp=%s", "http://a;http://b"
		}, nil},
		{[]string{"authfile=/etc/yk", "try_first_pass", "use_first_pass", "always_prompt", "alwaysok", "verbose_otp"}, func(c *Config) {
			c.AuthFile, c.TryFirstPass, c.UseFirstPass, c.AlwaysPrompt, c.AlwaysOK, c.VerboseOTP = "/etc/yk", true, true, true, true, true
		}, nil},
		{[]string{"capath=/d", "cainfo=/f", "proxy=socks5://p", "key_file=/k", "timeout=3", "helper=/h", "debug_file=/tmp/x"}, func(c *Config) {
			c.CAPath, c.CAInfo, c.Proxy, c.KeyFile, c.Timeout, c.Helper, c.DebugFile = "/d", "/f", "socks5://p", "/k", 3, "/h", "/tmp/x"
		}, nil},
		{[]string{"ldap_uri=ldap://h", "ldapserver=h", "ldapdn=ou=users,dc=x", "user_attr=uid", "yubi_attr=yk", "yubi_attr_prefix=yk:",
			"ldap_filter=(uid=%u)", "ldap_bind_user=cn=a", "ldap_bind_password=pw", "ldap_bind_password_file=/pw", "ldap_bind_as_user",
			"ldap_starttls", "ldap_cacertfile=/ca", "ldap_clientcertfile=/c", "ldap_clientkeyfile=/k", "ldap_connection_timeout=4"}, func(c *Config) {
			c.LDAPURI, c.LDAPServer, c.LDAPDN, c.UserAttr, c.YubiAttr, c.YubiAttrPrefix = "ldap://h", "h", "ou=users,dc=x", "uid", "yk", "yk:"
			c.LDAPFilter, c.LDAPBindUser, c.LDAPBindPassword, c.LDAPBindPasswordFile = "(uid=%u)", "cn=a", "pw", "/pw"
			c.LDAPBindAsUser, c.LDAPStartTLS, c.LDAPCACertFile, c.LDAPClientCertFile, c.LDAPClientKeyFile = true, true, "/ca", "/c", "/k"
			c.LDAPConnectionTimeout = 4
		}, nil},
		{[]string{"ldapdn=[cn=a b]"}, func(c *Config) { c.LDAPDN = "[cn=a b]" }, nil},
		{[]string{"mysql_server=db", "mysql_port=3306", "mysql_user=u", "mysql_password=p", "mysql_database=d"}, func(c *Config) { c.MySQLServer = "db" }, nil},
	}
	for _, tt := range tests {
		want := def
		tt.want(&want)
		got, unknown := ParseArgs(tt.args)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("ParseArgs(%q) = %+v, want %+v", tt.args, got, want)
		}
		if !slices.Equal(unknown, tt.unknown) {
			t.Errorf("ParseArgs(%q) unknown = %q, want %q", tt.args, unknown, tt.unknown)
		}
	}
}

func TestRedact(t *testing.T) {
	in := []string{"id=1", "key=c2VjcmV0", "ldap_bind_password=hunter2", "mysql_password=x", "key_file=/etc/k", "ldap_bind_pasword=typo", "debug"}
	got := strings.Join(Redact(in), " ")
	want := "id=1 key=*** ldap_bind_password=*** mysql_password=*** key_file=/etc/k ldap_bind_pasword=*** debug"
	if got != want {
		t.Errorf("Redact(%q) = %q, want %q", in, got, want)
	}
}

func TestScanUint(t *testing.T) {
	tests := []struct {
		in   string
		want uint32
		ok   bool
	}{
		{"0", 0, true}, {"16", 16, true}, {"+3", 3, true}, {"-1", 1<<32 - 1, true}, {"  7x", 7, true},
		{"", 0, false}, {"x", 0, false}, {"-", 0, false}, {"4294967296", 1<<32 - 1, true},
	}
	for _, tt := range tests {
		got, ok := scanUint(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("scanUint(%q) = %d, %v, want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestURLs(t *testing.T) {
	eleven := strings.Repeat("http://h/wsapi/2.0/verify;", 11)
	tests := []struct {
		cfg     Config
		want    []string
		wantErr bool
	}{
		{Config{}, []string{DefaultURL}, false},
		{Config{URLList: "http://a/v;http://b/v;"}, []string{"http://a/v", "http://b/v"}, false},
		{Config{URL: "http://old/v?id=%d&otp=%s", URLList: "http://new/v"}, []string{"http://new/v"}, false},
		{Config{URL: "http://old/wsapi/2.0/verify?id=%d&otp=%s"}, []string{"http://old/wsapi/2.0/verify"}, false},
		{Config{URL: "http://old/v?otp=%s&id=%d"}, []string{"http://old/v"}, false},
		{Config{URL: "http://old/v?id=%d&otp=%s&x=1"}, nil, true},
		{Config{URL: "http://old/v"}, nil, true},
		{Config{URLList: eleven}, nil, true},
		{Config{URLList: ";;"}, nil, true},
	}
	for _, tt := range tests {
		got, err := tt.cfg.urls()
		if !slices.Equal(got, tt.want) || (err != nil) != tt.wantErr {
			t.Errorf("urls(url=%q urllist=%q) = %q, %v; want %q, error %v", tt.cfg.URL, tt.cfg.URLList, got, err, tt.want, tt.wantErr)
		}
	}
}

func FuzzParseArgs(f *testing.F) {
	for _, s := range []string{"id=1 key=abc debug", "token_id_length=-1", "mode=x urllist=a;b", "ldap_filter=(uid=%u)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		args := strings.Fields(s)
		c, unknown := ParseArgs(args)
		if len(unknown) > len(args) {
			t.Fatalf("ParseArgs(%q): more unknown than given", args)
		}
		for _, a := range Redact(args) {
			if c.Key != "" && strings.Contains(a, "key="+c.Key) && c.Key != "***" {
				t.Fatalf("Redact(%q) leaks the key", args)
			}
		}
		_, _ = c.urls()
	})
}
