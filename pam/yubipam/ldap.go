package yubipam

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// LDAPMapping finds a user's token IDs in an LDAP directory, as the
// original's LDAP mode does:
//
//   - with UserAttr, the entry "UserAttr=<user>,BaseDN" is read (base scope);
//     otherwise BaseDN itself;
//   - with Filter, the subtree below that base is searched with Filter, "%u"
//     replaced by the user name escaped for a filter (RFC 4515);
//   - the values of YubiAttr that start with Prefix are the user's tokens,
//     compared with the OTP's public ID over TokenIDLength characters after
//     the prefix.
//
// No entry, or no value with the prefix, means no tokens. Every LDAP error
// (connection, TLS, bind, search) is an error: PAM_AUTHINFO_UNAVAIL.
type LDAPMapping struct {
	URIs          []string // tried in order until one connects
	BaseDN        string
	UserAttr      string
	YubiAttr      string
	Prefix        string
	Filter        string
	BindDN        string // simple bind; "" means anonymous
	BindPassword  string
	BindAsUser    bool // bind as the user's entry with Password
	StartTLS      bool
	TLS           *tls.Config   // for ldaps:// and STARTTLS
	DialTimeout   time.Duration // 0: the context's deadline only
	TokenIDLength int
	// Password returns PAM_AUTHTOK for BindAsUser.
	Password func() (string, bool, error)
	Log      *slog.Logger

	cachedUser   string
	cachedValues []string
	cached       bool
}

// newLDAPMapping builds the LDAP mapping from the module arguments.
func newLDAPMapping(cfg Config, tx Transaction, dbg *slog.Logger) (*LDAPMapping, error) {
	m := &LDAPMapping{
		BaseDN:        cfg.LDAPDN,
		UserAttr:      cfg.UserAttr,
		YubiAttr:      cfg.YubiAttr,
		Prefix:        cfg.YubiAttrPrefix,
		Filter:        cfg.LDAPFilter,
		BindDN:        cfg.LDAPBindUser,
		BindPassword:  cfg.LDAPBindPassword,
		BindAsUser:    cfg.LDAPBindAsUser,
		StartTLS:      cfg.LDAPStartTLS,
		DialTimeout:   time.Duration(cfg.LDAPConnectionTimeout) * time.Second,
		TokenIDLength: int(cfg.TokenIDLength),
		Password:      tx.Authtok,
		Log:           dbg,
	}
	var errs []error
	switch {
	case cfg.LDAPURI != "":
		m.URIs = strings.FieldsFunc(cfg.LDAPURI, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
	case cfg.LDAPServer != "":
		m.URIs = []string{"ldap://" + cfg.LDAPServer}
	}
	for _, u := range m.URIs {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "ldap" && p.Scheme != "ldaps") || p.Host == "" {
			errs = append(errs, fmt.Errorf("ldap_uri %q: want ldap://host[:port] or ldaps://host[:port]", u))
		}
	}
	if m.YubiAttr == "" {
		errs = append(errs, errors.New("yubi_attr is required for LDAP"))
	}
	if m.BindAsUser && (m.UserAttr == "" || m.BaseDN == "") {
		errs = append(errs, errors.New("ldap_bind_as_user needs user_attr, yubi_attr and ldapdn"))
	}
	if cfg.LDAPBindPasswordFile != "" {
		pw, err := readSecretFile(cfg.LDAPBindPasswordFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("ldap_bind_password_file: %w", err))
		}
		m.BindPassword = pw
	}
	if (cfg.LDAPClientCertFile == "") != (cfg.LDAPClientKeyFile == "") {
		errs = append(errs, errors.New("ldap_clientcertfile and ldap_clientkeyfile go together"))
	}
	tc, err := ldapTLS(cfg)
	if err != nil {
		errs = append(errs, err)
	}
	m.TLS = tc
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("yubipam: LDAP settings: %w", err)
	}
	return m, nil
}

// ldapTLS builds the TLS settings: the CA file replaces the system roots.
func ldapTLS(cfg Config) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.LDAPCACertFile != "" {
		pem, err := os.ReadFile(cfg.LDAPCACertFile)
		if err != nil {
			return nil, fmt.Errorf("ldap_cacertfile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ldap_cacertfile %s: no PEM certificate", cfg.LDAPCACertFile)
		}
		tc.RootCAs = pool
	}
	if cfg.LDAPClientCertFile != "" && cfg.LDAPClientKeyFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.LDAPClientCertFile, cfg.LDAPClientKeyFile)
		if err != nil {
			return nil, fmt.Errorf("ldap client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Lookup implements Mapping. The directory is asked once per user; the
// second lookup of an authentication uses the first one's answer.
func (m *LDAPMapping) Lookup(ctx context.Context, user, id string, anyID bool) (Match, error) {
	if !m.cached || m.cachedUser != user {
		values, err := m.fetch(ctx, user)
		if err != nil {
			return NoTokens, err
		}
		m.cachedUser, m.cachedValues, m.cached = user, values, true
	}
	return matchLDAP(m.cachedValues, m.Prefix, id, m.TokenIDLength, anyID), nil
}

// matchLDAP judges the attribute values of a user.
func matchLDAP(values []string, prefix, id string, idLen int, anyID bool) Match {
	result := NoTokens
	for _, v := range values {
		if !strings.HasPrefix(v, prefix) {
			continue
		}
		if anyID {
			return Listed
		}
		result = NotListed
		if truncate(v[len(prefix):], idLen) == truncate(id, idLen) { // strncmp(…) == 0
			return Listed
		}
	}
	return result
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// userDN is the DN of the user's entry with UserAttr.
func (m *LDAPMapping) userDN(user string) string {
	return m.UserAttr + "=" + ldap.EscapeDN(user) + "," + m.BaseDN
}

// fetch reads the user's YubiAttr values.
func (m *LDAPMapping) fetch(ctx context.Context, user string) ([]string, error) {
	conn, err := m.dial(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() }) // a silent server cannot outlast the deadline
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetTimeout(time.Until(dl))
	}
	if m.StartTLS {
		if err := conn.StartTLS(m.tlsFor(conn.host)); err != nil {
			return nil, fmt.Errorf("yubipam: LDAP STARTTLS: %w", err)
		}
	}
	switch {
	case m.BindAsUser:
		pw, ok, err := m.Password()
		if err != nil || !ok || pw == "" {
			return nil, errors.New("yubipam: ldap_bind_as_user: no password typed before the OTP (use always_prompt)")
		}
		if err := conn.Bind(m.userDN(user), pw); err != nil {
			return nil, fmt.Errorf("yubipam: LDAP bind as the user: %w", err)
		}
	case m.BindDN != "":
		if err := conn.Bind(m.BindDN, m.BindPassword); err != nil {
			return nil, fmt.Errorf("yubipam: LDAP bind as %s: %w", m.BindDN, err)
		}
	}
	base, scope, filter := m.BaseDN, ldap.ScopeBaseObject, "(objectClass=*)"
	if m.UserAttr != "" && m.BaseDN != "" {
		base = m.userDN(user)
	}
	if m.Filter != "" {
		filter = strings.ReplaceAll(m.Filter, "%u", ldap.EscapeFilter(user))
		scope = ldap.ScopeWholeSubtree
	}
	m.Log.Debug("ldap search", "base", base, "filter", filter, "subtree", scope == ldap.ScopeWholeSubtree)
	res, err := conn.Search(ldap.NewSearchRequest(base, scope, ldap.NeverDerefAliases, 0, 0, false,
		filter, []string{m.YubiAttr}, nil))
	if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		return nil, nil // no entry: no tokens
	}
	if err != nil {
		return nil, fmt.Errorf("yubipam: LDAP search: %w", err)
	}
	var values []string
	for _, e := range res.Entries {
		values = append(values, e.GetAttributeValues(m.YubiAttr)...)
	}
	m.Log.Debug("ldap result", "entries", len(res.Entries), "values", len(values))
	return values, nil
}

// ldapConn is a connection and the host it went to.
type ldapConn struct {
	*ldap.Conn
	host string
}

// dial connects to the first URI that answers.
func (m *LDAPMapping) dial(ctx context.Context) (*ldapConn, error) {
	var errs []error
	for _, u := range m.URIs {
		timeout := m.DialTimeout
		if dl, ok := ctx.Deadline(); ok && (timeout == 0 || time.Until(dl) < timeout) {
			timeout = time.Until(dl)
		}
		if timeout <= 0 {
			errs = append(errs, context.DeadlineExceeded)
			break
		}
		p, _ := url.Parse(u)
		c, err := ldap.DialURL(u, ldap.DialWithDialer(&net.Dialer{Timeout: timeout}), ldap.DialWithTLSConfig(m.tlsFor(p.Hostname())))
		if err == nil {
			return &ldapConn{c, p.Hostname()}, nil
		}
		m.Log.Debug("ldap connect failed", "uri", u, "err", err)
		errs = append(errs, fmt.Errorf("%s: %w", u, err))
	}
	return nil, fmt.Errorf("yubipam: no LDAP server reachable: %w", errors.Join(errs...))
}

// tlsFor returns the TLS settings for host.
func (m *LDAPMapping) tlsFor(host string) *tls.Config {
	tc := m.TLS.Clone()
	if tc == nil {
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	tc.ServerName = host
	return tc
}
