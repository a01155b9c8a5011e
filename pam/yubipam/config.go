package yubipam

import (
	"fmt"
	"strings"
	"time"
)

// DefaultTokenIDLength is the length of a YubiKey's public ID in modhex.
const DefaultTokenIDLength = 12

// MaxTokenIDLength is the longest token_id_length the module accepts.
const MaxTokenIDLength = 16

// MaxURLs is the most urllist entries the module accepts (libykclient's limit).
const MaxURLs = 10

// DefaultTimeout bounds the network work of one authentication (LDAP lookups
// and validation requests together) when timeout= is not given.
const DefaultTimeout = 10 * time.Second

// DefaultURL is the validation server used when neither url nor urllist is
// given (YubiCloud, like the original's current code).
const DefaultURL = "https://api.yubico.com/wsapi/2.0/verify"

// Config is the module's arguments, parsed the way the original parses them.
type Config struct {
	ClientID      uint32 // id=
	Key           string // key= (base64 API key); secret
	KeyFile       string // key_file=: file holding the base64 API key
	Debug         bool   // debug
	DebugFile     string // debug_file= ("stdout", "stderr" or a path); "" means stdout
	AlwaysOK      bool   // alwaysok
	TryFirstPass  bool   // try_first_pass
	UseFirstPass  bool   // use_first_pass
	AlwaysPrompt  bool   // always_prompt
	NullOK        bool   // nullok
	VerboseOTP    bool   // verbose_otp
	AuthFile      string // authfile=
	URL           string // url= (template with %d then %s)
	URLList       string // urllist= (";"-separated base URLs)
	CAPath        string // capath=
	CAInfo        string // cainfo=
	Proxy         string // proxy=
	TokenIDLength uint32 // token_id_length=
	Mode          string // mode=client or mode=challenge-response (exact words)
	ChalrespPath  string // chalresp_path= (challenge-response mode; unsupported)
	Timeout       uint32 // timeout= seconds for all network work; 0 means DefaultTimeout
	Helper        string // helper= (read by the C module; accepted here)

	LDAPURI               string // ldap_uri=
	LDAPServer            string // ldapserver= (deprecated host form)
	LDAPDN                string // ldapdn=
	UserAttr              string // user_attr=
	YubiAttr              string // yubi_attr=
	YubiAttrPrefix        string // yubi_attr_prefix=
	LDAPFilter            string // ldap_filter= (%u is the escaped user name)
	LDAPBindUser          string // ldap_bind_user=
	LDAPBindPassword      string // ldap_bind_password=; secret
	LDAPBindPasswordFile  string // ldap_bind_password_file=
	LDAPBindAsUser        bool   // ldap_bind_as_user
	LDAPStartTLS          bool   // ldap_starttls
	LDAPCACertFile        string // ldap_cacertfile=
	LDAPClientCertFile    string // ldap_clientcertfile=
	LDAPClientKeyFile     string // ldap_clientkeyfile=
	LDAPConnectionTimeout uint32 // ldap_connection_timeout= seconds

	MySQLServer string // mysql_server= (unsupported: refused)
}

// option is one argument the parser knows. Flags match exactly, "name="
// options by prefix, as in the original.
type option struct {
	name string // with a trailing "=" for valued options
	set  func(c *Config, v string)
	// secret options are shown as "***" in debug output.
	secret bool
}

func str(f func(*Config) *string) func(*Config, string) {
	return func(c *Config, v string) { *f(c) = v }
}

func flag(f func(*Config) *bool) func(*Config, string) {
	return func(c *Config, _ string) { *f(c) = true }
}

func uint32Opt(f func(*Config) *uint32) func(*Config, string) {
	return func(c *Config, v string) {
		if n, ok := scanUint(v); ok {
			*f(c) = n
		}
	}
}

var options = []option{
	{"id=", uint32Opt(func(c *Config) *uint32 { return &c.ClientID }), false},
	{"key=", str(func(c *Config) *string { return &c.Key }), true},
	{"key_file=", str(func(c *Config) *string { return &c.KeyFile }), false},
	{"debug", flag(func(c *Config) *bool { return &c.Debug }), false},
	{"debug_file=", str(func(c *Config) *string { return &c.DebugFile }), false},
	{"alwaysok", flag(func(c *Config) *bool { return &c.AlwaysOK }), false},
	{"try_first_pass", flag(func(c *Config) *bool { return &c.TryFirstPass }), false},
	{"use_first_pass", flag(func(c *Config) *bool { return &c.UseFirstPass }), false},
	{"always_prompt", flag(func(c *Config) *bool { return &c.AlwaysPrompt }), false},
	{"nullok", flag(func(c *Config) *bool { return &c.NullOK }), false},
	{"verbose_otp", flag(func(c *Config) *bool { return &c.VerboseOTP }), false},
	{"authfile=", str(func(c *Config) *string { return &c.AuthFile }), false},
	{"url=", str(func(c *Config) *string { return &c.URL }), false},
	{"urllist=", str(func(c *Config) *string { return &c.URLList }), false},
	{"capath=", str(func(c *Config) *string { return &c.CAPath }), false},
	{"cainfo=", str(func(c *Config) *string { return &c.CAInfo }), false},
	{"proxy=", str(func(c *Config) *string { return &c.Proxy }), false},
	{"token_id_length=", uint32Opt(func(c *Config) *uint32 { return &c.TokenIDLength }), false},
	{"mode=client", func(c *Config, _ string) { c.Mode = "client" }, false},
	{"mode=challenge-response", func(c *Config, _ string) { c.Mode = "challenge-response" }, false},
	{"chalresp_path=", str(func(c *Config) *string { return &c.ChalrespPath }), false},
	{"timeout=", uint32Opt(func(c *Config) *uint32 { return &c.Timeout }), false},
	{"helper=", str(func(c *Config) *string { return &c.Helper }), false},
	{"ldap_uri=", str(func(c *Config) *string { return &c.LDAPURI }), false},
	{"ldapserver=", str(func(c *Config) *string { return &c.LDAPServer }), false},
	{"ldapdn=", str(func(c *Config) *string { return &c.LDAPDN }), false},
	{"user_attr=", str(func(c *Config) *string { return &c.UserAttr }), false},
	{"yubi_attr=", str(func(c *Config) *string { return &c.YubiAttr }), false},
	{"yubi_attr_prefix=", str(func(c *Config) *string { return &c.YubiAttrPrefix }), false},
	{"ldap_filter=", str(func(c *Config) *string { return &c.LDAPFilter }), false},
	{"ldap_bind_user=", str(func(c *Config) *string { return &c.LDAPBindUser }), false},
	{"ldap_bind_password=", str(func(c *Config) *string { return &c.LDAPBindPassword }), true},
	{"ldap_bind_password_file=", str(func(c *Config) *string { return &c.LDAPBindPasswordFile }), false},
	{"ldap_bind_as_user", flag(func(c *Config) *bool { return &c.LDAPBindAsUser }), false},
	{"ldap_starttls", flag(func(c *Config) *bool { return &c.LDAPStartTLS }), false},
	{"ldap_cacertfile=", str(func(c *Config) *string { return &c.LDAPCACertFile }), false},
	{"ldap_clientcertfile=", str(func(c *Config) *string { return &c.LDAPClientCertFile }), false},
	{"ldap_clientkeyfile=", str(func(c *Config) *string { return &c.LDAPClientKeyFile }), false},
	{"ldap_connection_timeout=", uint32Opt(func(c *Config) *uint32 { return &c.LDAPConnectionTimeout }), false},
	{"mysql_server=", str(func(c *Config) *string { return &c.MySQLServer }), false},
	// The other MySQL options are accepted (and ignored) so that they are
	// not reported as unknown; mysql_server alone decides.
	{"mysql_port=", func(*Config, string) {}, false},
	{"mysql_user=", func(*Config, string) {}, false},
	{"mysql_password=", func(*Config, string) {}, true},
	{"mysql_database=", func(*Config, string) {}, false},
}

// ParseArgs parses module arguments like the original: flags match exactly,
// "name=value" options by prefix, later duplicates override earlier ones,
// numbers are read like sscanf's %u (no digits leaves the value unchanged).
// It returns the arguments it did not recognise; they are not an error.
func ParseArgs(args []string) (Config, []string) {
	c := Config{TokenIDLength: DefaultTokenIDLength, Mode: "client"}
	var unknown []string
	for _, a := range args {
		if o, ok := lookupOption(a); ok {
			o.set(&c, strings.TrimPrefix(a, o.name))
			continue
		}
		unknown = append(unknown, a)
	}
	return c, unknown
}

func lookupOption(arg string) (option, bool) {
	for _, o := range options {
		if strings.HasSuffix(o.name, "=") {
			if strings.HasPrefix(arg, o.name) {
				return o, true
			}
		} else if arg == o.name {
			return o, true
		}
	}
	return option{}, false
}

// Redact returns args for logs: the values of secret options (key,
// ldap_bind_password, mysql_password) and of unknown options (perhaps a
// mistyped secret) are replaced by "***".
func Redact(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		o, ok := lookupOption(a)
		switch {
		case ok && o.secret:
			out[i] = o.name + "***"
		case !ok && strings.Contains(a, "="):
			name, _, _ := strings.Cut(a, "=")
			out[i] = name + "=***"
		}
	}
	return out
}

// scanUint reads an unsigned number the way sscanf("%u") does: optional
// leading blanks, an optional sign, then decimal digits (the rest is
// ignored); a negative number wraps around; no digits means no value.
func scanUint(s string) (uint32, bool) {
	s = strings.TrimLeft(s, " \t\n\v\f\r")
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	var n uint64
	digits := 0
	for ; digits < len(s) && s[digits] >= '0' && s[digits] <= '9'; digits++ {
		if n < 1<<40 {
			n = n*10 + uint64(s[digits]-'0')
		}
	}
	if digits == 0 {
		return 0, false
	}
	if n > 1<<32-1 {
		n = 1<<32 - 1 // strtoul saturates
	}
	v := uint32(n)
	if neg {
		v = -v
	}
	return v, true
}

// TotalTimeout is the configured bound on an authentication's network work.
func (c Config) TotalTimeout() time.Duration {
	if c.Timeout == 0 {
		return DefaultTimeout
	}
	return time.Duration(c.Timeout) * time.Second
}

// usesLDAP reports whether LDAP is the token mapping source.
func (c Config) usesLDAP() bool { return c.LDAPURI != "" || c.LDAPServer != "" }

// urls returns the validation URLs the configuration names: urllist wins
// over url; with neither, DefaultURL.
func (c Config) urls() ([]string, error) {
	if c.URLList != "" {
		var urls []string
		for u := range strings.SplitSeq(c.URLList, ";") {
			if u != "" {
				urls = append(urls, u)
			}
		}
		if len(urls) > MaxURLs {
			return nil, fmt.Errorf("yubipam: urllist has %d URLs, at most %d allowed", len(urls), MaxURLs)
		}
		if len(urls) == 0 {
			return nil, fmt.Errorf("yubipam: urllist is empty")
		}
		return urls, nil
	}
	if c.URL != "" {
		u, err := templateURL(c.URL)
		if err != nil {
			return nil, err
		}
		return []string{u}, nil
	}
	return []string{DefaultURL}, nil
}

// templateURL turns the old url= template ("...verify?id=%d&otp=%s") into
// the base URL the client library wants. Only that shape is supported: the
// query must be exactly the id and otp placeholders.
func templateURL(t string) (string, error) {
	base, query, ok := strings.Cut(t, "?")
	if ok && base != "" && (query == "id=%d&otp=%s" || query == "otp=%s&id=%d") {
		return base, nil
	}
	return "", fmt.Errorf("yubipam: url template %q: want <base URL>?id=%%d&otp=%%s", t)
}
