package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/keyprov"
	"github.com/ykstack/ykstack/ksm/sqlstore"
	"github.com/ykstack/ykstack/otp"
)

// maxCounter is the highest session counter a YubiKey reports (bit 15 is
// the Caps Lock flag, not part of the count).
const maxCounter = 0x7fff

// errExhausted reports a key whose session counter would pass maxCounter.
var errExhausted = errors.New("key's session counter exhausted; use fewer OTPs per key or a lower --counter")

// benchKey is one YubiKey the generator plays: its secrets and its place
// in its sequence of OTPs. Each benchKey belongs to one worker.
type benchKey struct {
	publicID string
	key      otp.Key
	uid      otp.UID
	counter  uint16 // session counter of the next OTP
	use      uint8  // session use of the next OTP
	ts       uint32 // 24-bit 8 Hz timestamp at power-up
	rnd      *rand.Rand
}

// newBenchKey prepares k to mint OTPs from session counter counter, use 0.
func newBenchKey(k ksm.Key, counter uint16, rnd *rand.Rand) (*benchKey, error) {
	key, err := otp.ParseKey(k.AESKey)
	if err != nil {
		return nil, fmt.Errorf("key %q: malformed aeskey", k.PublicName)
	}
	uid, err := otp.ParseUID(k.InternalName)
	if err != nil {
		return nil, fmt.Errorf("key %q: malformed internalname", k.PublicName)
	}
	if len(k.PublicName) == 0 || len(k.PublicName) > otp.MaxPublicIDLen {
		return nil, fmt.Errorf("key %q: public name is not 1 to 16 characters", k.PublicName)
	}
	return &benchKey{publicID: k.PublicName, key: key, uid: uid, counter: counter, ts: rnd.Uint32() & 0xffffff, rnd: rnd}, nil
}

// next mints the key's next OTP, elapsed8Hz ticks after power-up, and
// returns it with the counters a KSM must answer for it. After 256 uses a
// new session starts: the counter goes up and use starts again at 0.
func (b *benchKey) next(elapsed8Hz uint32) (string, ksm.Result, error) {
	if b.counter > maxCounter {
		return "", ksm.Result{}, fmt.Errorf("key %s: %w", b.publicID, errExhausted)
	}
	ts := (b.ts + elapsed8Hz) & 0xffffff
	t := otp.Token{
		UID:           b.uid,
		Counter:       b.counter,
		TimestampLow:  uint16(ts),
		TimestampHigh: uint8(ts >> 16),
		Use:           b.use,
		Random:        uint16(b.rnd.Uint32()),
	}
	if b.use == 0xff {
		b.counter++
		b.use = 0
	} else {
		b.use++
	}
	return otp.Generate(b.publicID, b.key, t), ksm.Result{Counter: t.Counter, Low: t.TimestampLow, High: t.TimestampHigh, Use: t.Use}, nil
}

// nextCounter is the first session counter this key has not used.
func (b *benchKey) nextCounter() uint16 {
	if b.use == 0 {
		return b.counter
	}
	return b.counter + 1
}

// keySource says where the generator finds its keys: a key file as
// ykksm-gen-keys prints it, or a KSM database.
type keySource struct {
	file    string
	db      sqldb.Config
	maxKeys int
}

// load returns the active keys, at most maxKeys of them (0: all).
func (s keySource) load(ctx context.Context) ([]ksm.Key, error) {
	var keys []ksm.Key
	switch {
	case s.file != "" && s.db.DSN != "":
		return nil, errors.New("give --keys or --db, not both")
	case s.file != "":
		f, err := os.Open(s.file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		recs, err := keyprov.Parse(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.file, err)
		}
		keys = keyprov.Keys(recs)
	case s.db.DSN != "":
		st, err := sqlstore.Open(ctx, s.db)
		if err != nil {
			return nil, err
		}
		defer st.Close()
		err = st.Each(ctx, func(k ksm.Key) error {
			if k.Active && k.AESKey != "" {
				keys = append(keys, k)
			}
			if s.maxKeys > 0 && len(keys) >= s.maxKeys {
				return errEnough
			}
			return nil
		})
		if err != nil && !errors.Is(err, errEnough) {
			return nil, err
		}
	default:
		return nil, errors.New("give --keys FILE or --db DSN")
	}
	if s.maxKeys > 0 && len(keys) > s.maxKeys {
		keys = keys[:s.maxKeys]
	}
	if len(keys) == 0 {
		return nil, errors.New("no active keys")
	}
	return keys, nil
}

var errEnough = errors.New("enough keys")
