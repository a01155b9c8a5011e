package contrib

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ykstack/ykstack/val"
)

// pki is a throwaway certificate authority that issues certificates for a
// key the caller keeps, so that a test can renew a certificate for the same
// key, as a reload of a key held in a systemd credential needs.
type pki struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newECKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// keyPEM is key as a PEM "PRIVATE KEY" (PKCS #8), as the servers read it.
func keyPEM(t *testing.T, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func newPKI(t *testing.T, name string) *pki {
	t.Helper()
	p := &pki{key: newECKey(t)}
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(t), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &p.key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	if p.cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	p.pem = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return p
}

// newSerial returns a random certificate serial number.
func newSerial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// issue returns a certificate for key, then the CA's, PEM: a server
// certificate for 127.0.0.1, or a client certificate for cn.
func (p *pki) issue(t *testing.T, key *ecdsa.PrivateKey, cn string, server bool) (certPEM []byte, serial *big.Int) {
	t.Helper()
	serial = newSerial(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	return append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), p.pem...), serial
}

// pool returns a pool of the CA.
func (p *pki) pool() *x509.CertPool {
	cp := x509.NewCertPool()
	cp.AddCert(p.cert)
	return cp
}

// replaceFile writes a file by renaming a new one into place, as
// certificate renewals do.
func replaceFile(t *testing.T, path string, b []byte, mode os.FileMode) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// httpsClient trusts ca and presents cert, if any; it opens a connection
// (a handshake) for every request.
func httpsClient(t *testing.T, ca *pki, cert []byte, key *ecdsa.PrivateKey) *http.Client {
	t.Helper()
	cfg := &tls.Config{RootCAs: ca.pool(), MinVersion: tls.VersionTLS12}
	if cert != nil {
		pair, err := tls.X509KeyPair(cert, keyPEM(t, key))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
}

// servedSerial returns the serial number of the certificate a TLS server
// presents.
func servedSerial(t *testing.T, addr string, ca *pki) *big.Int {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.pool(), MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS to %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber
}

// tlsFiles are the files of a TLS drop-in, under a root.
type tlsFiles struct {
	serverCA, clientCA *pki
	key                *ecdsa.PrivateKey // the server's
	serial             *big.Int          // of the server certificate
}

// writeTLS writes a server certificate for a new key as
// /etc/ykstack/tls/NAME.crt and a client CA as client-ca.crt under root,
// and returns them with the key the credential holds.
func writeTLS(t *testing.T, root, name string) tlsFiles {
	t.Helper()
	f := tlsFiles{serverCA: newPKI(t, "server CA"), clientCA: newPKI(t, "client CA"), key: newECKey(t)}
	var cert []byte
	cert, f.serial = f.serverCA.issue(t, f.key, "127.0.0.1", true)
	replaceFile(t, rooted(root, "/etc/ykstack/tls/"+name+".crt"), cert, 0o644)
	replaceFile(t, rooted(root, "/etc/ykstack/tls/client-ca.crt"), f.clientCA.pem, 0o644)
	return f
}

// reload runs a unit's ExecReload= for a server, as systemctl reload does.
func reload(t *testing.T, unit string, s *server, dropins ...string) {
	t.Helper()
	args := execArgs(t, loadUnit(t, unit, dropins...).get(t, "Service", "ExecReload"),
		map[string]string{"MAINPID": strconv.Itoa(s.cmd.Process.Pid)})
	if out, err := run(t, "", args[0], args[1:]...); err != nil {
		t.Fatalf("ExecReload= %v: %v\n%s", args, err, out)
	}
}

// TestUnitKSMTLS runs ykksmd from its unit with the drop-in tls.conf: HTTPS
// with the key handed over as a credential, mutual TLS with the client CA,
// handshake errors counted, and `systemctl reload` (the unit's ExecReload=)
// taking a certificate renewed for the same key without a restart, and
// keeping the old one when the new certificate is for another key (the
// credential is a copy made at start).
func TestUnitKSMTLS(t *testing.T) {
	const dropin = "systemd/ykksmd.service.d/tls.conf"
	root := newRoot(t)
	seedKSM(t, rooted(root, parseUnit(t, servers[0].unit).environment(t)["YKKSM_DB"]))
	f := writeTLS(t, root, "ykksmd")
	k := startUnit(t, "ykksmd", servers[0].unit, root, map[string]string{"YKKSM_LISTEN": "127.0.0.1:0"},
		map[string]string{"tls-key": string(keyPEM(t, f.key))}, dropin)
	if !strings.Contains(k.log.String(), "tls=true mutual_tls=true") {
		t.Errorf("ykksmd with tls.conf does not log tls=true mutual_tls=true:\n%s", k.log)
	}
	clientKey := newECKey(t)
	clientCert, _ := f.clientCA.issue(t, clientKey, "val1", false)
	k.client = httpsClient(t, f.serverCA, clientCert, clientKey)
	if code, body := k.get(t, "/healthz"); code != 200 || body != "OK\n" {
		t.Errorf("/healthz over mutual TLS = %d %q, want 200 \"OK\\n\"", code, body)
	}
	if _, body := k.get(t, "/wsapi/decrypt?otp="+mint(t, 30, 0)); !strings.HasPrefix(body, "OK counter=001e") {
		t.Errorf("decrypt over mutual TLS = %q, want OK counter=001e ...", body)
	}

	// No client certificate, a certificate of another CA, plain HTTP: no
	// answer, and each is a handshake error.
	otherCA := newPKI(t, "other CA")
	otherKey := newECKey(t)
	otherCert, _ := otherCA.issue(t, otherKey, "intruder", false)
	for name, c := range map[string]*http.Client{
		"no client certificate":      httpsClient(t, f.serverCA, nil, nil),
		"another CA's certificate":   httpsClient(t, f.serverCA, otherCert, otherKey),
		"plain HTTP to the TLS port": {Timeout: 10 * time.Second},
	} {
		u := k.url("/wsapi/decrypt?otp=" + mint(t, 30, 1))
		if strings.HasPrefix(name, "plain") {
			u = "http://" + k.addr + "/wsapi/decrypt?otp=" + mint(t, 30, 1)
		}
		resp, err := c.Get(u)
		if err == nil {
			var b [64]byte
			n, _ := resp.Body.Read(b[:])
			resp.Body.Close()
			if strings.HasPrefix(string(b[:n]), "OK") {
				t.Errorf("%s: ykksmd decrypted: %q", name, b[:n])
			}
		}
	}
	waitFor(t, "3 handshake errors counted", func() bool {
		return scrape(t, k).value("ykksm_tls_handshake_errors_total", nil) == "3"
	})

	// A certificate renewed for the same key: systemctl reload serves it.
	renewed, serial := f.serverCA.issue(t, f.key, "127.0.0.1", true)
	replaceFile(t, rooted(root, "/etc/ykstack/tls/ykksmd.crt"), renewed, 0o644)
	reload(t, servers[0].unit, k, dropin)
	waitFor(t, "the renewed certificate", func() bool { return servedSerial(t, k.addr, f.serverCA).Cmp(serial) == 0 })

	// A certificate for a new key: the credential still holds the old key,
	// so the reload fails and the renewed certificate stays.
	newCert, _ := f.serverCA.issue(t, newECKey(t), "127.0.0.1", true)
	replaceFile(t, rooted(root, "/etc/ykstack/tls/ykksmd.crt"), newCert, 0o644)
	reload(t, servers[0].unit, k, dropin)
	waitFor(t, "the failed reload to be logged", func() bool {
		return strings.Contains(k.log.String(), "tls: reload failed; keeping the current certificate")
	})
	if got := servedSerial(t, k.addr, f.serverCA); got.Cmp(serial) != 0 {
		t.Errorf("after a reload with a certificate for another key, ykksmd serves serial %v, want the previous %v", got, serial)
	}
	if code, _ := k.get(t, "/healthz"); code != 200 {
		t.Errorf("/healthz after the reloads = %d, want 200", code)
	}
}

// TestUnitReloadWithoutTLS runs ExecReload= on a ykksmd without TLS: it
// logs the signal and keeps serving.
func TestUnitReloadWithoutTLS(t *testing.T) {
	root := newRoot(t)
	seedKSM(t, rooted(root, parseUnit(t, servers[0].unit).environment(t)["YKKSM_DB"]))
	k := startUnit(t, "ykksmd", servers[0].unit, root, map[string]string{"YKKSM_LISTEN": "127.0.0.1:0"}, nil)
	reload(t, servers[0].unit, k)
	waitFor(t, "the signal to be logged", func() bool { return strings.Contains(k.log.String(), "nothing to reload") })
	if code, _ := k.get(t, "/healthz"); code != 200 {
		t.Errorf("/healthz after a reload without TLS = %d, want 200", code)
	}
}

// TestUnitVALTLS runs ykksmd with tls.conf and ykvald with its drop-ins
// tls.conf (HTTPS) and ksm-tls.conf (mutual TLS to the KSM), all keys as
// credentials: OTPs verify over HTTPS end to end, ykksmd names the client
// certificate of ykvald in its log, a KSM that ykvald cannot trust is a
// BACKEND_ERROR, and ExecReload= makes ykvald serve a renewed certificate.
func TestUnitVALTLS(t *testing.T) {
	root := newRoot(t)
	seedKSM(t, rooted(root, parseUnit(t, servers[0].unit).environment(t)["YKKSM_DB"]))
	seedVAL(t, rooted(root, parseUnit(t, servers[1].unit).environment(t)["YKVAL_DB"]))
	ksmTLS := writeTLS(t, root, "ykksmd")
	k := startUnit(t, "ykksmd", servers[0].unit, root, map[string]string{"YKKSM_LISTEN": "127.0.0.1:0"},
		map[string]string{"tls-key": string(keyPEM(t, ksmTLS.key))}, "systemd/ykksmd.service.d/tls.conf")

	// ykvald: its server certificate, the KSM's CA, its client certificate.
	valCA, valKey, clientKey := newPKI(t, "val server CA"), newECKey(t), newECKey(t)
	valCert, _ := valCA.issue(t, valKey, "127.0.0.1", true)
	clientCert, _ := ksmTLS.clientCA.issue(t, clientKey, "val1.example.net", false)
	for name, b := range map[string][]byte{"ykvald.crt": valCert, "ksm-ca.crt": ksmTLS.serverCA.pem, "ykvald-client.crt": clientCert} {
		replaceFile(t, rooted(root, "/etc/ykstack/tls/"+name), b, 0o644)
	}
	creds := map[string]string{"tls-key": string(keyPEM(t, valKey)), "ksm-client-key": string(keyPEM(t, clientKey))}
	valDropins := []string{"systemd/ykvald.service.d/tls.conf", "systemd/ykvald.service.d/ksm-tls.conf"}
	env := map[string]string{"YKVAL_LISTEN": "127.0.0.1:0", "YKVAL_KSM_URL": "https://" + k.addr + "/wsapi/decrypt"}
	v := startUnit(t, "ykvald", servers[1].unit, root, env, creds, valDropins...)
	if !strings.Contains(v.log.String(), "tls=true") {
		t.Errorf("ykvald with tls.conf does not log tls=true:\n%s", v.log)
	}
	v.client = httpsClient(t, valCA, nil, nil)
	first := mint(t, 40, 0)
	for i, want := range []val.Status{val.StatusOK, val.StatusReplayedOTP} {
		if got := verify(t, v, first); got != want {
			t.Errorf("verify #%d over HTTPS and mutual TLS = %s, want %s", i+1, got, want)
		}
	}
	if !strings.Contains(k.log.String(), "client=val1.example.net") {
		t.Errorf("ykksmd does not name ykvald's client certificate in its log:\n%s", k.log)
	}

	// A renewed server certificate for the same key, taken by a reload.
	renewed, serial := valCA.issue(t, valKey, "127.0.0.1", true)
	replaceFile(t, rooted(root, "/etc/ykstack/tls/ykvald.crt"), renewed, 0o644)
	reload(t, servers[1].unit, v, valDropins...)
	waitFor(t, "ykvald to serve the renewed certificate", func() bool { return servedSerial(t, v.addr, valCA).Cmp(serial) == 0 })

	// The KSM's certificate from a CA ykvald does not trust: no verdict.
	v.stop(t)
	replaceFile(t, rooted(root, "/etc/ykstack/tls/ksm-ca.crt"), newPKI(t, "unrelated CA").pem, 0o644)
	v = startUnit(t, "ykvald", servers[1].unit, root, env, creds, valDropins...)
	v.client = httpsClient(t, valCA, nil, nil)
	if got := verify(t, v, mint(t, 40, 1)); got != val.StatusBackendError {
		t.Errorf("verify with a KSM certificate ykvald does not trust = %s, want BACKEND_ERROR", got)
	}
}
