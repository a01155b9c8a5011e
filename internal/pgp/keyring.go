package pgp

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
)

// Keyring is a set of OpenPGP keys, public and secret, read from exported
// key files. It is not safe for concurrent use: unlocking a secret key
// changes it in place.
type Keyring struct {
	entities openpgp.EntityList
}

// ErrNoKeys reports key data that holds no OpenPGP key.
var ErrNoKeys = errors.New("pgp: no OpenPGP keys found")

const (
	armorBegin = "-----BEGIN PGP "
	armorEnd   = "-----END PGP "
)

// isArmored tells armored data from binary: binary OpenPGP data starts with
// a packet tag byte, whose high bit is set; text never does (gpg writes
// armor in ASCII). Text before the armor header line is allowed.
func isArmored(data []byte) bool {
	return len(data) > 0 && data[0]&0x80 == 0
}

// ReadKeyring reads keys from data: a binary export (one or more keys, as
// gpg --export writes them), or one or more ASCII-armored key blocks, as
// gpg --armor --export writes them and as they are when several such files
// are concatenated.
func ReadKeyring(data []byte) (*Keyring, error) {
	if !isArmored(data) {
		el, err := openpgp.ReadKeyRing(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("pgp: read binary keyring: %w", err)
		}
		if len(el) == 0 {
			return nil, ErrNoKeys
		}
		return &Keyring{entities: el}, nil
	}
	kr := &Keyring{}
	for block := range armorBlocks(data) {
		b, err := armor.Decode(bytes.NewReader(block))
		if err != nil {
			return nil, fmt.Errorf("pgp: read armored keyring: %w", err)
		}
		if b.Type != openpgp.PublicKeyType && b.Type != openpgp.PrivateKeyType {
			return nil, fmt.Errorf("pgp: armored block is %q, want a public or private key block", b.Type)
		}
		el, err := openpgp.ReadKeyRing(b.Body)
		if err != nil {
			return nil, fmt.Errorf("pgp: read armored keyring: %w", err)
		}
		kr.entities = append(kr.entities, el...)
	}
	if len(kr.entities) == 0 {
		return nil, ErrNoKeys
	}
	return kr, nil
}

// armorBlocks yields each "-----BEGIN PGP …" … "-----END PGP …" block of data,
// END line included. A block with no END line is yielded to the end of data,
// for the armor decoder to report.
func armorBlocks(data []byte) func(yield func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for {
			start := bytes.Index(data, []byte(armorBegin))
			if start < 0 {
				return
			}
			data = data[start:]
			end := bytes.Index(data, []byte(armorEnd))
			if end < 0 {
				yield(data)
				return
			}
			if nl := bytes.IndexByte(data[end:], '\n'); nl >= 0 {
				end += nl + 1
			} else {
				end = len(data)
			}
			if !yield(data[:end]) {
				return
			}
			data = data[end:]
		}
	}
}

// LoadKeyring reads and merges the key files at paths (see ReadKeyring).
func LoadKeyring(paths ...string) (*Keyring, error) {
	kr := &Keyring{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("pgp: keyring: %w", err)
		}
		k, err := ReadKeyring(data)
		if err != nil {
			return nil, fmt.Errorf("%w (in %s)", err, p)
		}
		kr.Add(k)
	}
	return kr, nil
}

// Add merges the keys of other into kr.
func (kr *Keyring) Add(other *Keyring) {
	kr.entities = append(kr.entities, other.entities...)
}

// Len returns the number of keys (primary keys with their subkeys) in kr.
func (kr *Keyring) Len() int { return len(kr.entities) }

// Describe returns one line per key: its fingerprint, "sec" or "pub", and
// its primary user ID, for verbose output.
func (kr *Keyring) Describe() []string {
	var out []string
	for _, e := range kr.entities {
		kind := "pub"
		if e.PrivateKey != nil {
			kind = "sec"
		} else {
			for _, s := range e.Subkeys {
				if s.PrivateKey != nil {
					kind = "sec"
				}
			}
		}
		name := ""
		if _, id := e.PrimaryIdentity(time.Now(), nil); id != nil {
			name = id.Name
		}
		out = append(out, strings.TrimSpace(fmt.Sprintf("%s %s %s", kind, fingerprint(e.PrimaryKey.Fingerprint), name)))
	}
	return out
}

// fingerprint formats a fingerprint or key ID the way gpg prints it.
func fingerprint(b []byte) string { return fmt.Sprintf("%X", b) }

// keyID formats a 64-bit key ID the way gpg prints it.
func keyID(id uint64) string { return fmt.Sprintf("%016X", id) }
