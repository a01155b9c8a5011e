package ksmserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ykstack/ykstack/internal/netallow"
	"github.com/ykstack/ykstack/internal/ratelimit"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/otp"
)

// MaxBodySize is the largest request body the decrypt API reads. A larger
// body is ignored, as if the request had none.
const MaxBodySize = 4 << 10

// healthTimeout bounds the database ping of /healthz.
const healthTimeout = 3 * time.Second

// DefaultLookupTimeout is Config.LookupTimeout's default.
const DefaultLookupTimeout = 10 * time.Second

// Pinger is a KeyStore that can tell whether its database answers.
// ksm/sqlstore's Store is one. /healthz uses it when the store has it.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Config configures NewMux.
type Config struct {
	// Store holds the keys. Required.
	Store ksm.KeyStore
	// Logger receives one line per request. Nil discards.
	Logger *slog.Logger
	// Registry receives the ykksm_* metrics and is what /metrics serves
	// (add the Go and process collectors to it if wanted). Nil means a new
	// registry of its own.
	Registry *prometheus.Registry
	// LookupTimeout bounds each request's key lookup; past it the answer is
	// "ERR Database error". Zero means DefaultLookupTimeout. The lookup
	// does not stop when the client goes away: YK-VAL hangs up on every KSM
	// but the first to answer, and those lookups must not count as database
	// errors.
	LookupTimeout time.Duration

	// Allow, when not nil, lists the source addresses that may call the
	// decrypt API; any other gets HTTP 403 and AnswerAccessDenied. Nil
	// means anyone. /healthz and /metrics are not limited.
	Allow *netallow.List
	// RateLimit, when not nil, limits the decrypt requests of each source
	// (ratelimit.AddrKey of its address: an IPv6 source by its /64); past
	// it a request gets HTTP 429 and AnswerRateLimited.
	RateLimit *ratelimit.Limiter
	// MaxInflight, when positive, caps the decrypt requests answered at
	// once; one that finds no free slot within InflightWait gets HTTP 503
	// and AnswerBusy.
	MaxInflight int
	// InflightWait is how long a request waits for a slot under
	// MaxInflight. Zero means DefaultInflightWait.
	InflightWait time.Duration
}

// NewMux returns the KSM's HTTP handler: the decrypt API, /healthz and
// /metrics, as described in the package documentation. It fails when
// cfg.Store is nil or the metrics cannot be registered (say, because the
// registry already has them).
func NewMux(cfg Config) (*http.ServeMux, error) {
	if cfg.Store == nil {
		return nil, errors.New("ksmserver: no key store")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	reg := cfg.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	timeout := cfg.LookupTimeout
	if timeout <= 0 {
		timeout = DefaultLookupTimeout
	}
	h, err := newGuard(&decryptHandler{dec: NewDecrypter(cfg.Store, logger), log: logger, m: m, timeout: timeout}, cfg, logger, reg)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	for _, p := range []string{"/wsapi/decrypt", "/wsapi/decrypt/{$}", "/wsapi/decrypt.php"} {
		mux.Handle("GET "+p, h) // GET patterns match HEAD too
		mux.Handle("POST "+p, h)
	}
	pinger, _ := cfg.Store.(Pinger)
	mux.Handle("GET /healthz", healthHandler{pinger, logger})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return mux, nil
}

// Result labels of ykksm_decrypt_total, in the order of ksm's errors.
var resultLabels = [...]string{"ok", "no_otp", "invalid_format", "unknown_key", "corrupt", "database_error"}

const (
	resOK = iota
	resNoOTP
	resFormat
	resUnknown
	resCorrupt
	resDatabase
)

// resultOf classifies a Decrypt error the way ksm.Line does.
func resultOf(err error) int {
	switch {
	case err == nil:
		return resOK
	case errors.Is(err, ksm.ErrNoOTP):
		return resNoOTP
	case errors.Is(err, ksm.ErrFormat):
		return resFormat
	case errors.Is(err, ksm.ErrUnknownKey):
		return resUnknown
	case errors.Is(err, ksm.ErrCorrupt):
		return resCorrupt
	default:
		return resDatabase
	}
}

// Answer lines of the errors, with their newline, ready to write.
var errBodies = [...][]byte{
	resNoOTP:    []byte(ksm.Line(ksm.ErrNoOTP) + "\n"),
	resFormat:   []byte(ksm.Line(ksm.ErrFormat) + "\n"),
	resUnknown:  []byte(ksm.Line(ksm.ErrUnknownKey) + "\n"),
	resCorrupt:  []byte(ksm.Line(ksm.ErrCorrupt) + "\n"),
	resDatabase: []byte(ksm.Line(ksm.ErrDatabase) + "\n"),
}

type metrics struct {
	total    [len(resultLabels)]prometheus.Counter
	duration prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	total := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ykksm_decrypt_total",
		Help: "Decrypt requests answered, by result.",
	}, []string{"result"})
	duration := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "ykksm_decrypt_duration_seconds",
		Help:    "Time to answer a decrypt request.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	})
	for _, c := range []prometheus.Collector{total, duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("ksmserver: register metrics: %w", err)
		}
	}
	m := &metrics{duration: duration}
	for i, l := range resultLabels {
		m.total[i] = total.WithLabelValues(l) // also makes every result show up at 0
	}
	return m, nil
}

type decryptHandler struct {
	dec     *Decrypter
	log     *slog.Logger
	m       *metrics
	timeout time.Duration
}

// contentType is shared by every answer; nothing modifies it.
var contentType = []string{"text/plain; charset=utf-8"}

func (h *decryptHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			h.log.Error("ksmserver: panic answering a decrypt request", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			h.m.total[resDatabase].Inc()
			h.m.duration.Observe(time.Since(start).Seconds())
			w.Header()["Content-Type"] = contentType
			w.Write(errBodies[resDatabase])
		}
	}()

	s := requestOTP(w, r)
	if s == "0" { // PHP-falsy
		s = ""
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), h.timeout)
	res, err := h.dec.Decrypt(ctx, s)
	cancel()
	kind := resultOf(err)

	w.Header()["Content-Type"] = contentType
	if kind == resOK {
		var buf [64]byte
		w.Write(appendResult(buf[:0], res))
	} else {
		w.Write(errBodies[kind])
	}
	h.m.total[kind].Inc()
	took := time.Since(start)
	h.m.duration.Observe(took.Seconds())
	h.logResult(r, s, kind, err, took)
}

// logResult writes the request's audit line: never the OTP itself, only
// its public ID, and that only when the OTP was well-formed.
func (h *decryptHandler) logResult(r *http.Request, s string, kind int, err error, took time.Duration) {
	level := slog.LevelInfo
	if kind == resDatabase {
		level = slog.LevelError
	}
	ctx := r.Context()
	if !h.log.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, 6)
	attrs = append(attrs, slog.String("result", resultLabels[kind]))
	if kind != resNoOTP && kind != resFormat {
		if pub, _, e := otp.Split(s); e == nil {
			attrs = append(attrs, slog.String("public_id", pub))
		}
	}
	attrs = append(attrs, slog.String("remote", r.RemoteAddr))
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		// The caller's verified client certificate (mutual TLS).
		attrs = append(attrs, slog.String("client", r.TLS.VerifiedChains[0][0].Subject.CommonName))
	}
	attrs = append(attrs, slog.Duration("duration", took))
	if kind == resCorrupt || kind == resDatabase {
		attrs = append(attrs, slog.String("err", err.Error()))
	}
	h.log.LogAttrs(ctx, level, "decrypt", attrs...)
}

// requestOTP returns the otp parameter like PHP's $_REQUEST["otp"]: from the
// query string, replaced by one in a form body. A body that is too large or
// cannot be parsed is ignored.
func requestOTP(w http.ResponseWriter, r *http.Request) string {
	v, _ := formValue(r.URL.RawQuery, "otp")
	if r.Method != http.MethodPost || r.Body == nil {
		return v
	}
	ct, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodySize)
	switch ct {
	case "application/x-www-form-urlencoded":
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return v
		}
		if bv, ok := formValue(string(body), "otp"); ok {
			v = bv
		}
	case "multipart/form-data":
		if params["boundary"] == "" {
			return v
		}
		if err := r.ParseMultipartForm(MaxBodySize); err != nil || r.MultipartForm == nil {
			return v
		}
		defer r.MultipartForm.RemoveAll()
		if vs := r.MultipartForm.Value["otp"]; len(vs) > 0 {
			v = vs[len(vs)-1]
		}
	}
	return v
}

// appendResult appends r's OK line and a newline to b, like
// r.String()+"\n" without fmt.
func appendResult(b []byte, r ksm.Result) []byte {
	b = append(b, "OK counter="...)
	b = appendHex(b, uint64(r.Counter), 4)
	b = append(b, " low="...)
	b = appendHex(b, uint64(r.Low), 4)
	b = append(b, " high="...)
	b = appendHex(b, uint64(r.High), 2)
	b = append(b, " use="...)
	b = appendHex(b, uint64(r.Use), 2)
	return append(b, '\n')
}

func appendHex(b []byte, v uint64, digits int) []byte {
	const hexDigits = "0123456789abcdef"
	for i := digits - 1; i >= 0; i-- {
		b = append(b, hexDigits[(v>>(4*i))&0xf])
	}
	return b
}

type healthHandler struct {
	pinger Pinger
	log    *slog.Logger
}

func (h healthHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header()["Content-Type"] = contentType
	if h.pinger != nil {
		ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
		defer cancel()
		if err := h.pinger.Ping(ctx); err != nil {
			h.log.Warn("ksmserver: health check failed", "err", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "ERR Database error\n")
			return
		}
	}
	io.WriteString(w, "OK\n")
}
