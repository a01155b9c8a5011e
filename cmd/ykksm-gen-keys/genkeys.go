package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/keyprov"
	"github.com/ykstack/ykstack/otp/modhex"
)

const usage = `Usage: ykksm-gen-keys [--verbose] [--help] [--urandom] [--progflags PROGFLAGS] [--pskc] START [END]

Generate YubiKey OTP keys in the YKKSM-KEYPROV format on standard output.

  START        decimal serial number of the first key
  END          decimal serial number of the last key; START when absent or 0

  -v, --verbose           add comments: the range, and each key's counter in hex and modhex
      --urandom           name /dev/urandom as the source (keys always come from the
                          kernel CSPRNG through Go's crypto/rand)
      --progflags N       end every line with personalization flags N (decimal)
      --pskc              write PSKC XML instead (AES keys in base64)
  -h, --help              print this help

The output holds the keys in plain text. Sign and encrypt it at once:

  ykksm-gen-keys 1 10 | gpg -a --sign --encrypt -r KEYID > keys.asc
`

// options are the parsed command line.
type options struct {
	verbose, pskc bool
	device        string // named by --verbose only
	progflags     *int
	start, end    int64
}

// maxSerial is the largest serial number: yubikeys.serialnr is an int.
const maxSerial = math.MaxInt32

func run(_ context.Context, env cli.Env) error {
	opts, err := parseArgs(env.Args)
	if err == pflag.ErrHelp {
		_, werr := io.WriteString(env.Stdout, usage)
		if werr != nil {
			return werr
		}
		return err
	}
	if err != nil {
		return err
	}
	w := bufio.NewWriter(env.Stdout)
	if err := generate(w, opts, time.Now(), rand.Reader); err != nil {
		return err
	}
	return w.Flush()
}

// parseArgs parses the command line; it returns pflag.ErrHelp for --help and
// errors wrapping cli.ErrUsage for a wrong one.
func parseArgs(args []string) (options, error) {
	fs := pflag.NewFlagSet("ykksm-gen-keys", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var (
		opts          options
		help, urandom bool
		progflags     string
		start, end    string
	)
	fs.BoolVarP(&opts.verbose, "verbose", "v", false, "")
	fs.BoolVarP(&help, "help", "h", false, "")
	fs.BoolVar(&urandom, "urandom", false, "")
	fs.StringVar(&progflags, "progflags", "", "")
	fs.BoolVar(&opts.pskc, "pskc", false, "")
	if err := fs.Parse(args); err != nil {
		return opts, cli.Usagef("%v (see --help)", err)
	}
	if help {
		return opts, pflag.ErrHelp
	}
	opts.device = "/dev/random"
	if urandom {
		opts.device = "/dev/urandom"
	}
	if fs.Changed("progflags") {
		if opts.pskc {
			return opts, cli.Usagef("--progflags cannot be used with --pskc")
		}
		n, err := strconv.ParseUint(progflags, 10, 31)
		if err != nil {
			return opts, cli.Usagef("--progflags: want a decimal number from 0 to %d, have %q", maxSerial, progflags)
		}
		pf := int(n)
		opts.progflags = &pf
	}
	switch fs.NArg() {
	case 0:
		return opts, cli.Usagef("missing START (see --help)")
	case 1:
		start, end = fs.Arg(0), "0"
	case 2:
		start, end = fs.Arg(0), fs.Arg(1)
	default:
		return opts, cli.Usagef("extra argument %q (want START [END])", fs.Arg(2))
	}
	for _, a := range []struct {
		name, s string
		v       *int64
	}{{"START", start, &opts.start}, {"END", end, &opts.end}} {
		n, err := strconv.ParseUint(a.s, 10, 31)
		if err != nil {
			return opts, cli.Usagef("%s: want a decimal serial number from 0 to %d, have %q", a.name, maxSerial, a.s)
		}
		*a.v = int64(n)
	}
	if opts.end == 0 {
		opts.end = opts.start
	}
	if opts.start > opts.end {
		return opts, cli.Usagef("START %d is greater than END %d", opts.start, opts.end)
	}
	return opts, nil
}

// publicID returns the public ID of serial: the serial as 12 hex digits, in modhex.
func publicID(serial int64) (hexctr, modhexctr string) {
	hexctr = fmt.Sprintf("%012x", serial)
	b, _ := hex.DecodeString(hexctr)
	return hexctr, modhex.EncodeToString(b)
}

// generate writes the keys opts asks for to w, drawing key material from
// rnd. The keys' created stamp is now's wall clock in now's location (run
// passes the local time); the PSKC StartDate is now in UTC.
func generate(w io.Writer, opts options, now time.Time, rnd io.Reader) error {
	random := func(n int) ([]byte, error) {
		b := make([]byte, n)
		if _, err := io.ReadFull(rnd, b); err != nil {
			return nil, fmt.Errorf("read random bytes: %w", err)
		}
		return b, nil
	}
	if opts.pskc {
		return writePSKC(w, opts, now, random)
	}
	return writeKeyprov(w, opts, now, random)
}

func writeKeyprov(w io.Writer, opts options, now time.Time, random func(int) ([]byte, error)) error {
	created := now.Format("2006-01-02T15:04:05")
	if err := keyprov.WriteHeader(w); err != nil {
		return err
	}
	if opts.verbose {
		fmt.Fprintf(w, "# start %d end %d device %s\n", opts.start, opts.end, opts.device)
	}
	fmt.Fprintln(w, keyprov.Columns)
	for n := opts.start; n <= opts.end; n++ {
		hexctr, pub := publicID(n)
		b, err := random(6 + 16 + 6)
		if err != nil {
			return err
		}
		k := ksm.Key{
			SerialNr:     n,
			PublicName:   pub,
			InternalName: hex.EncodeToString(b[:6]),
			AESKey:       hex.EncodeToString(b[6:22]),
			LockCode:     hex.EncodeToString(b[22:]),
			Created:      created,
		}
		if opts.verbose {
			fmt.Fprintf(w, "# hexctr %s modhexctr %s\n", hexctr, pub)
		}
		if _, err := fmt.Fprintln(w, keyprov.FormatLine(k, "", opts.progflags)); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintln(w, "# the end")
	return err
}

func writePSKC(w io.Writer, opts options, now time.Time, random func(int) ([]byte, error)) error {
	start := now.UTC().Format("2006-01-02T15:04:05Z")
	id := fmt.Sprintf("yk-%d-pskc", opts.start)
	if opts.end != opts.start {
		id = fmt.Sprintf("yk-%d-to-%d-pskc", opts.start, opts.end)
	}
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<KeyContainer Version="1.0"
              Id="%s"
              xmlns="urn:ietf:params:xml:ns:keyprov:pskc">
`, id)
	for n := opts.start; n <= opts.end; n++ {
		_, pub := publicID(n)
		b, err := random(6 + 16 + 6) // the lock code is drawn but PSKC has no place for it
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, `     <KeyPackage>
       <DeviceInfo>
         <Manufacturer>oath.UB</Manufacturer>
         <SerialNo>%d</SerialNo>
         <StartDate>%s</StartDate>
       </DeviceInfo>
       <CryptoModuleInfo>
         <Id>1</Id>
       </CryptoModuleInfo>
       <Key Id="yk-key-%d-slot-1"
            Algorithm="http://www.yubico.com/#yubikey-aes">
         <Issuer>Yubico</Issuer>
         <AlgorithmParameters>
           <ResponseFormat Encoding="ALPHANUMERIC" Length="44"/>
         </AlgorithmParameters>
         <Data>
           <Secret>
             <PlainValue>
               %s
             </PlainValue>
           </Secret>
         </Data>
         <UserId>CN=%s, UID=%s</UserId>
       </Key>
     </KeyPackage>
`, n, start, n, base64.StdEncoding.EncodeToString(b[6:22]), pub, hex.EncodeToString(b[:6]))
		if err != nil {
			return err
		}
	}
	_, err := fmt.Fprintln(w, "</KeyContainer>")
	return err
}
