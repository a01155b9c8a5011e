package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/ykstack/ykstack/ksm/seal"
)

// KEKFlags are the key-encryption-key flags of the KSM tools, which keep
// AES keys sealed at rest (see package ksm/seal):
//
//	--kek-file FILE       the KEK: 32 raw bytes, 64 hex digits or base64,
//	                      in a file its group and others cannot read
//	--old-kek-file FILE   the previous KEK, still opened during a rotation
//
// Without --kek-file the KEK comes from $PREFIX_KEK_FILE (a path), else
// $PREFIX_KEK (the KEK itself, base64 or hex), else the systemd credential
// $CREDENTIALS_DIRECTORY/prefix-kek (e.g. ykksm-kek, from LoadCredential= or
// LoadCredentialEncrypted=) when it exists. The old KEK likewise comes
// from --old-kek-file, $PREFIX_OLD_KEK_FILE, $PREFIX_OLD_KEK or the
// credential prefix-old-kek. Files under $CREDENTIALS_DIRECTORY are exempt
// from the permission check: systemd guards that directory.
type KEKFlags struct {
	File, OldFile string
	prefix        string
	source        string
	flagPrefix    string // before "kek-file" and "old-kek-file"; see RegisterAs
	cred          string // the credentials' stem; "" means prefix in lower case
}

// Register adds the flags to fs; prefix names the environment variables
// and, in lower case, the credentials (e.g. "YKKSM").
func (f *KEKFlags) Register(fs *pflag.FlagSet, prefix string) {
	f.prefix = prefix
	fs.StringVar(&f.File, "kek-file", "", "key-encryption key `file` for sealed AES keys (env "+prefix+"_KEK_FILE or "+prefix+"_KEK; systemd credential "+strings.ToLower(prefix)+"-kek)")
	fs.StringVar(&f.OldFile, "old-kek-file", "", "previous key-encryption key `file`, still read during a KEK rotation")
}

// RegisterAs is Register under other names, for a program that needs the
// KEK of another program's database: the flags --<flagPrefix>kek-file and
// --<flagPrefix>old-kek-file, the environment variables envPrefix_KEK_FILE,
// envPrefix_KEK, envPrefix_OLD_KEK_FILE and envPrefix_OLD_KEK, and the
// credentials <cred>-kek and <cred>-old-kek. ykvald's in-process KSM uses
// ("ksm-", "YKVAL_KSM", "ykksm"): the KSM's KEK, under flag names that
// leave --kek-file to the validation server's own.
func (f *KEKFlags) RegisterAs(fs *pflag.FlagSet, flagPrefix, envPrefix, cred string) {
	f.prefix, f.flagPrefix, f.cred = envPrefix, flagPrefix, cred
	fs.StringVar(&f.File, flagPrefix+"kek-file", "", "key-encryption key `file` for sealed AES keys (env "+envPrefix+"_KEK_FILE or "+envPrefix+"_KEK; systemd credential "+cred+"-kek)")
	fs.StringVar(&f.OldFile, flagPrefix+"old-kek-file", "", "previous key-encryption key `file`, still read during a KEK rotation")
}

// credStem is the start of the credentials' names.
func (f *KEKFlags) credStem() string {
	if f.cred != "" {
		return f.cred
	}
	return strings.ToLower(f.prefix)
}

// Sealer returns the Sealer the flags and environment name, or nil when
// they name no KEK (the database is then read as plaintext). A KEK that is
// named but cannot be read or parsed is an error, never "no KEK".
func (f *KEKFlags) Sealer(getenv func(string) string) (*seal.Sealer, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	credDir := getenv("CREDENTIALS_DIRECTORY")
	cur, curSrc, err := f.load(f.File, "--"+f.flagPrefix+"kek-file", f.prefix+"_KEK", "kek", credDir, getenv)
	if err != nil {
		return nil, err
	}
	old, oldSrc, err := f.load(f.OldFile, "--"+f.flagPrefix+"old-kek-file", f.prefix+"_OLD_KEK", "old-kek", credDir, getenv)
	if err != nil {
		return nil, err
	}
	switch {
	case cur == nil && old != nil:
		return nil, Usagef("%s names an old KEK but no current KEK is given (--%skek-file)", oldSrc, f.flagPrefix)
	case cur == nil:
		f.source = ""
		return nil, nil
	}
	f.source = curSrc
	if old != nil {
		f.source += ", old KEK from " + oldSrc
	}
	return seal.New(cur, old), nil
}

// Source says where the KEKs Sealer returned came from, for a log line; ""
// when there was none.
func (f *KEKFlags) Source() string { return f.source }

// load reads one KEK from a flag's file, FILE variable, value variable or
// credential, in that order; nil when none is set.
func (f *KEKFlags) load(file, flag, env, cred, credDir string, getenv func(string) string) (*seal.KEK, string, error) {
	return loadKEK(file, flag, env, f.credStem()+"-"+cred, credDir, getenv, seal.ParseKEK, seal.ReadKEKFile)
}

// loadKEK reads one KEK from a flag's file, the variable env+"_FILE" (a
// path), the variable env (the KEK itself) or the credential named cred in
// credDir, in that order, with parse and read; the zero K when none is
// set. It also returns where the KEK came from.
func loadKEK[K any](file, flag, env, cred, credDir string, getenv func(string) string,
	parse func(string) (K, error), read func(name, trustedDir string) (K, error)) (K, string, error) {
	var none K
	src := flag + " " + file
	if file == "" {
		file = getenv(env + "_FILE")
		src = "$" + env + "_FILE " + file
	}
	if file == "" {
		if v := getenv(env); v != "" {
			k, err := parse(v)
			if err != nil {
				return none, "", fmt.Errorf("$%s: %w", env, err)
			}
			return k, "$" + env, nil
		}
	}
	if file == "" && credDir != "" {
		p := filepath.Join(credDir, cred)
		if _, err := os.Stat(p); err == nil {
			file, src = p, "credential "+p
		} else if !errors.Is(err, os.ErrNotExist) {
			return none, "", fmt.Errorf("credential %s: %w", p, err)
		}
	}
	if file == "" {
		return none, "", nil
	}
	k, err := read(file, credDir)
	if err != nil {
		return none, "", fmt.Errorf("%s: %w", strings.Fields(src)[0], err)
	}
	return k, src, nil
}
