package cli

import (
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/ykstack/ykstack/val/valseal"
)

// ValKEKFlags are the key-encryption-key flags of the validation server and
// its tools, which keep the clients' API secrets sealed at rest (see
// package val/valseal), with KEKFlags's rules:
//
//	--kek-file FILE       the KEK: 32 raw bytes, 64 hex digits or base64,
//	                      in a file its group and others cannot read
//	--old-kek-file FILE   the previous KEK, still opened during a rotation
//
// Without --kek-file the KEK comes from $PREFIX_KEK_FILE (a path), else
// $PREFIX_KEK (the KEK itself), else the systemd credential
// $CREDENTIALS_DIRECTORY/prefix-kek (ykval-kek); the old KEK from
// --old-kek-file, $PREFIX_OLD_KEK_FILE, $PREFIX_OLD_KEK or the credential
// prefix-old-kek.
type ValKEKFlags struct {
	File, OldFile string
	prefix        string
	source        string
}

// Register adds the flags to fs; prefix names the environment variables
// and, in lower case, the credentials (e.g. "YKVAL").
func (f *ValKEKFlags) Register(fs *pflag.FlagSet, prefix string) {
	f.prefix = prefix
	fs.StringVar(&f.File, "kek-file", "", "key-encryption key `file` for sealed API secrets (env "+prefix+"_KEK_FILE or "+prefix+"_KEK; systemd credential "+strings.ToLower(prefix)+"-kek)")
	fs.StringVar(&f.OldFile, "old-kek-file", "", "previous key-encryption key `file`, still read during a KEK rotation")
}

// Sealer returns the Sealer the flags and environment name, or nil when
// they name no KEK (secrets are then read as plaintext, and a sealed one
// is an error). A KEK that is named but cannot be read or parsed is an
// error, never "no KEK".
func (f *ValKEKFlags) Sealer(getenv func(string) string) (*valseal.Sealer, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	credDir := getenv("CREDENTIALS_DIRECTORY")
	stem := strings.ToLower(f.prefix)
	cur, curSrc, err := loadKEK(f.File, "--kek-file", f.prefix+"_KEK", stem+"-kek", credDir, getenv, valseal.ParseKEK, valseal.ReadKEKFile)
	if err != nil {
		return nil, err
	}
	old, oldSrc, err := loadKEK(f.OldFile, "--old-kek-file", f.prefix+"_OLD_KEK", stem+"-old-kek", credDir, getenv, valseal.ParseKEK, valseal.ReadKEKFile)
	if err != nil {
		return nil, err
	}
	switch {
	case cur == nil && old != nil:
		return nil, Usagef("%s names an old KEK but no current KEK is given (--kek-file)", oldSrc)
	case cur == nil:
		f.source = ""
		return nil, nil
	}
	f.source = curSrc
	if old != nil {
		f.source += ", old KEK from " + oldSrc
	}
	return valseal.New(cur, old), nil
}

// Source says where the KEKs Sealer returned came from, for a log line; ""
// when there was none.
func (f *ValKEKFlags) Source() string { return f.source }
