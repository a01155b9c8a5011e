package valserver

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ykstack/ykstack/val"
)

// Labels of ykval_ksm_duration_seconds.
const (
	ksmOK          = "ok"
	ksmRejected    = "rejected"
	ksmUnavailable = "unavailable"
)

// unknownClient is the client label of requests from no known client: a
// client id is a label only once the store confirmed it, so requests cannot
// make up label values.
const unknownClient = "unknown"

type metrics struct {
	verify       *prometheus.CounterVec
	duration     prometheus.Histogram
	ksm          *prometheus.HistogramVec
	syncReceived *prometheus.CounterVec
	refusedVec   *prometheus.CounterVec
}

// refused counts a request refused for reason.
func (m *metrics) refused(reason string) { m.refusedVec.WithLabelValues(reason).Inc() }

var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		verify: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ykval_verify_total",
			Help: "Verify requests answered, by status and client id (\"unknown\" before the client is known).",
		}, []string{"status", "client"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ykval_verify_duration_seconds",
			Help:    "Time to answer a verify request.",
			Buckets: latencyBuckets,
		}),
		ksm: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ykval_ksm_duration_seconds",
			Help:    "Time the KSM took to decrypt an OTP, by result (ok, rejected, unavailable).",
			Buckets: latencyBuckets,
		}, []string{"result"}),
		syncReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ykval_sync_received_total",
			Help: "Sync requests from peers answered, by status.",
		}, []string{"status"}),
		refusedVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ykval_refused_total",
			Help: "Requests refused by the server's limits, by reason: rate_limited (source address), client_rate_limited, busy (verify cap), ksm_busy (KSM call cap), not_allowed (sync, resync or revoke allow-list).",
		}, []string{"reason"}),
	}
	for _, c := range []prometheus.Collector{m.verify, m.duration, m.ksm, m.syncReceived, m.refusedVec} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("valserver: register metrics: %w", err)
		}
	}
	for _, s := range val.Statuses { // every status shows up, at 0
		m.verify.WithLabelValues(string(s), unknownClient)
	}
	for _, s := range []val.Status{val.StatusOK, val.StatusBadOTP, val.StatusMissingParameter, val.StatusOperationNotAllowed, val.StatusBackendError} {
		m.syncReceived.WithLabelValues(string(s)) // the statuses a sync answer can have, at 0
	}
	for _, r := range []string{ksmOK, ksmRejected, ksmUnavailable} {
		m.ksm.WithLabelValues(r)
	}
	for _, r := range refusedReasons {
		m.refusedVec.WithLabelValues(r)
	}
	return m, nil
}

// guesser is a KeyChecker that counts its guesses (val/sqlstore.Store.Guesses).
type guesser interface {
	Guesses() (current, stale int64)
}

// registerGuesses exports g's counts as ykval_key_state_guesses_total.
func registerGuesses(reg prometheus.Registerer, g guesser) error {
	const help = "Fresh-OTP verifies that acted on the key state the server remembered (MySQL/MariaDB without a sync pool), by result: current (stored with one UPDATE) or stale (the row had changed: read and decided again). Mostly stale means other servers take turns on the same keys."
	for _, r := range []struct {
		result string
		count  func() int64
	}{
		{"current", func() int64 { c, _ := g.Guesses(); return c }},
		{"stale", func() int64 { _, s := g.Guesses(); return s }},
	} {
		c := prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "ykval_key_state_guesses_total",
			Help:        help,
			ConstLabels: prometheus.Labels{"result": r.result},
		}, func() float64 { return float64(r.count()) })
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("valserver: register metrics: %w", err)
		}
	}
	return nil
}

// clientLabel is the client label for a request: the id of a client the
// store returned, else "unknown".
func clientLabel(id int64, known bool) string {
	if !known {
		return unknownClient
	}
	return strconv.FormatInt(id, 10)
}
