package main

import (
	"context"
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
	"path/filepath"
	"time"

	"github.com/ykstack/ykstack/internal/cli"
)

// runGenCert writes a throwaway CA, a server certificate for the loopback
// addresses and a client certificate into a directory, for the TLS bench
// scenarios: ca.crt, server.crt, server.key, client.crt, client.key. Keys
// are ECDSA P-256 (the cheapest handshake crypto/tls offers); certificates
// last --days.
func runGenCert(ctx context.Context, env cli.Env, args []string) error {
	fs := newFlagSet("gencert", env.Stderr)
	dir := fs.String("dir", "", "write the files into `DIR` (must exist)")
	days := fs.Int("days", 2, "validity of the certificates in days")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" || fs.NArg() != 0 {
		return cli.Usagef("want --dir DIR and no arguments")
	}
	if *days < 1 || *days > 3650 {
		return cli.Usagef("--days must be 1 to 3650")
	}
	notAfter := time.Now().Add(time.Duration(*days) * 24 * time.Hour)
	caKey, caCert, err := newCert(nil, nil, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "ykbench CA", Organization: []string{"ykbench"}},
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		NotAfter:              notAfter,
	})
	if err != nil {
		return err
	}
	files := map[string][]byte{"ca.crt": pemBlock("CERTIFICATE", caCert.Raw)}
	for _, c := range []struct {
		name string
		tmpl *x509.Certificate
	}{
		{"server", &x509.Certificate{
			Subject:     pkix.Name{CommonName: "127.0.0.1"},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
			DNSNames:    []string{"localhost"},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}},
		{"client", &x509.Certificate{
			Subject:     pkix.Name{CommonName: "ykbench client"},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}},
	} {
		c.tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		c.tmpl.NotAfter = notAfter
		key, cert, err := newCert(caCert, caKey, c.tmpl)
		if err != nil {
			return err
		}
		kder, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return fmt.Errorf("marshal %s key: %w", c.name, err)
		}
		files[c.name+".crt"] = append(pemBlock("CERTIFICATE", cert.Raw), files["ca.crt"]...)
		files[c.name+".key"] = pemBlock("PRIVATE KEY", kder)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(*dir, name), b, 0o600); err != nil {
			return err
		}
	}
	fmt.Fprintf(env.Stdout, "wrote ca.crt, server.crt, server.key, client.crt, client.key to %s\n", *dir)
	return nil
}

// newCert makes a new P-256 key and a certificate for it from tmpl, signed
// by parent's key (self-signed when parent is nil).
func newCert(parent *x509.Certificate, parentKey *ecdsa.PrivateKey, tmpl *x509.Certificate) (*ecdsa.PrivateKey, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	if tmpl.SerialNumber, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127)); err != nil {
		return nil, nil, fmt.Errorf("serial: %w", err)
	}
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	return key, cert, nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
