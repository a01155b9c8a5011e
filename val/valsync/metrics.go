package valsync

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ykstack/ykstack/val"
)

// Results of one sync request to a peer (ykval_sync_requests_total's result).
const (
	resultOK         = "ok"          // status=OK answer; in a verify, a valid vote
	resultReplayed   = "replayed"    // status=OK answer that says the OTP was replayed
	resultBadOTP     = "bad_otp"     // status=BAD_OTP: the peer has the key disabled
	resultRefused    = "refused"     // another status (MISSING_PARAMETER, OPERATION_NOT_ALLOWED, BACKEND_ERROR…)
	resultBadAnswer  = "bad_answer"  // malformed body or a wrong signature
	resultError      = "error"       // no answer: connection, timeout, HTTP error
	outcomeOK        = "ok"          // enough valid votes
	outcomeReplayed  = "replayed"    // a replay vote
	outcomeNotEnough = "not_enough"  // too few valid votes
	outcomeNoPubID   = "no_publicid" // an OTP without a public ID cannot be synced
)

var requestResults = []string{resultOK, resultReplayed, resultBadOTP, resultRefused, resultBadAnswer, resultError}

var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	outcomes *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, peers []string, store val.Store, log *slog.Logger) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ykval_sync_requests_total",
			Help: "Sync requests sent to peers, by peer and result (ok, replayed, bad_otp, refused, bad_answer, error).",
		}, []string{"peer", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ykval_sync_duration_seconds",
			Help:    "Time a peer took to answer a sync request (or to fail).",
			Buckets: latencyBuckets,
		}, []string{"peer"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ykval_sync_outcomes_total",
			Help: "Verify-time syncs, by outcome (ok, replayed, not_enough, no_publicid).",
		}, []string{"result"}),
	}
	for _, p := range peers {
		for _, r := range requestResults {
			m.requests.WithLabelValues(p, r)
		}
		m.duration.WithLabelValues(p)
	}
	for _, o := range []string{outcomeOK, outcomeReplayed, outcomeNotEnough, outcomeNoPubID} {
		m.outcomes.WithLabelValues(o)
	}
	if reg == nil {
		return m, nil
	}
	cs := []prometheus.Collector{m.requests, m.duration, m.outcomes, &queueCollector{store: store, peers: peers, log: log}}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("valsync: register metrics: %w", err)
		}
	}
	return m, nil
}

// queueCollector exports ykval_queue_length{peer}, counted by the store when
// scraped, so that it is right whichever process works the queue. A
// configured peer with no rows shows 0; if the store fails, the metric is
// missing from that scrape.
type queueCollector struct {
	store val.Store
	peers []string
	log   *slog.Logger
}

const queueCountTimeout = 3 * time.Second

var queueDesc = prometheus.NewDesc("ykval_queue_length", "Sync queue rows waiting for each peer.", []string{"peer"}, nil)

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- queueDesc }

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), queueCountTimeout)
	lengths, err := c.store.QueueLengths(ctx)
	cancel()
	if err != nil {
		c.log.Warn("valsync: cannot count the queue for the metrics", "err", err)
		return
	}
	seen := map[string]bool{}
	for _, p := range c.peers {
		seen[p] = true
		ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(lengths[p]), p)
	}
	for p, n := range lengths { // rows for servers no longer in the pool
		if !seen[p] {
			ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(n), p)
		}
	}
}
