package pamtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The directory StartLDAP serves.
const (
	LDAPBase         = "ou=people,dc=example,dc=com"
	LDAPReader       = "cn=reader,dc=example,dc=com" // may read yubiKeyId
	LDAPReaderPass   = "reader-secret"
	LDAPUserPassword = "hunter2" // every user's password
	ldapSuffix       = "dc=example,dc=com"
)

// LDAP is a running slapd.
type LDAP struct {
	URI        string // ldap://127.0.0.1:port (STARTTLS offered)
	TLSURI     string // ldaps://127.0.0.1:port
	CAFile     string // the CA of the server and client certificates
	ClientCert string // a client certificate the server accepts
	ClientKey  string
	dir        string
}

// LDAPUser is an entry of the directory: uid=Name under LDAPBase with the
// yubiKeyId values IDs (objectClass yubiKeyUser).
type LDAPUser struct {
	Name string
	IDs  []string
}

// StartLDAP starts OpenLDAP's slapd (Debian package slapd) with a scratch
// database holding users, on loopback ports, with TLS from a scratch CA.
// Anonymous clients cannot read yubiKeyId; LDAPReader and each user
// (binding as themselves) can. With requireClientCert the server demands a
// client certificate on TLS. It stops with the test.
func StartLDAP(t testing.TB, requireClientCert bool, users ...LDAPUser) *LDAP {
	t.Helper()
	slapd, err := exec.LookPath("slapd")
	if err != nil {
		slapd = "/usr/sbin/slapd"
	}
	_, err = os.Stat(slapd)
	Need(t, err == nil, "slapd is not installed (Debian package slapd)")
	_, err = os.Stat("/etc/ldap/schema/core.schema")
	Need(t, err == nil, "the OpenLDAP schemas are not in /etc/ldap/schema")

	dir := t.TempDir()
	l := &LDAP{dir: dir}
	if err := l.writeTLS(); err != nil {
		t.Fatal(err)
	}
	schema := filepath.Join(dir, "yubikey.schema")
	writeFile(t, schema, `attributetype ( 1.3.6.1.4.1.99999.1.1 NAME 'yubiKeyId'
	DESC 'YubiKey public ID' EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
	SYNTAX 1.3.6.1.4.1.1466.115.121.1.15{128} )
objectclass ( 1.3.6.1.4.1.99999.2.1 NAME 'yubiKeyUser' SUP top AUXILIARY MAY ( yubiKeyId ) )
`)
	verify := "never"
	if requireClientCert {
		verify = "demand"
	}
	conf := filepath.Join(dir, "slapd.conf")
	writeFile(t, conf, fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
include %[1]s/yubikey.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile %[1]s/slapd.pid
TLSCACertificateFile %[1]s/ca.pem
TLSCertificateFile %[1]s/server.pem
TLSCertificateKeyFile %[1]s/server.key
TLSVerifyClient %[2]s
database mdb
maxsize 10485760
suffix "%[3]s"
rootdn "cn=admin,%[3]s"
rootpw admin-secret
directory %[1]s/db
access to attrs=userPassword by anonymous auth by * none
access to attrs=yubiKeyId by dn.exact="%[4]s" read by self read by anonymous none by * none
access to * by * read
`, dir, verify, ldapSuffix, LDAPReader))
	if err := os.Mkdir(filepath.Join(dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	var ldif strings.Builder
	fmt.Fprintf(&ldif, "dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n", ldapSuffix)
	fmt.Fprintf(&ldif, "dn: %s\nobjectClass: organizationalUnit\nou: people\n\n", LDAPBase)
	fmt.Fprintf(&ldif, "dn: %s\nobjectClass: person\ncn: reader\nsn: reader\nuserPassword: %s\n\n", LDAPReader, LDAPReaderPass)
	for _, u := range users {
		fmt.Fprintf(&ldif, "dn: uid=%s,%s\nobjectClass: inetOrgPerson\nobjectClass: yubiKeyUser\nuid: %s\ncn: %s\nsn: %s\nuserPassword: %s\n",
			u.Name, LDAPBase, u.Name, u.Name, u.Name, LDAPUserPassword)
		for _, id := range u.IDs {
			fmt.Fprintf(&ldif, "yubiKeyId: %s\n", id)
		}
		ldif.WriteString("\n")
	}
	data := filepath.Join(dir, "data.ldif")
	writeFile(t, data, ldif.String())
	if out, err := exec.Command("slapadd", "-f", conf, "-l", data).CombinedOutput(); err != nil {
		t.Fatalf("slapadd: %v\n%s", err, out)
	}

	port, tlsPort := freePort(t), freePort(t)
	l.URI = "ldap://127.0.0.1:" + port
	l.TLSURI = "ldaps://127.0.0.1:" + tlsPort
	cmd := exec.Command(slapd, "-f", conf, "-h", l.URI+"/ "+l.TLSURI+"/", "-d", "0")
	var log syncBuf
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("slapd output:\n%s", log.String())
		}
	})
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if i > 100 {
			t.Fatalf("slapd did not start: %v\n%s", err, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return l
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// writeTLS makes a CA, a server certificate for 127.0.0.1 and a client
// certificate, as PEM files in l.dir.
func (l *LDAP) writeTLS() error {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ykstack test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(name string, serial int64, usage x509.ExtKeyUsage, ips []net.IP) error {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		kder, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(l.dir, name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(l.dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	}
	if err := issue("server", 2, x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)}); err != nil {
		return err
	}
	if err := issue("client", 3, x509.ExtKeyUsageClientAuth, nil); err != nil {
		return err
	}
	l.CAFile = filepath.Join(l.dir, "ca.pem")
	l.ClientCert, l.ClientKey = filepath.Join(l.dir, "client.pem"), filepath.Join(l.dir, "client.key")
	return os.WriteFile(l.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644)
}
