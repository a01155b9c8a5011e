package contrib

import (
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// sample is one line of a /metrics page.
type sample struct {
	name   string
	labels map[string]string
	value  string
}

// metrics is what /metrics pages list: samples and the families' types.
type metrics struct {
	samples []sample
	types   map[string]string // family name -> counter, gauge, histogram, ...
}

var (
	sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$`)
	labelPair  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?`)
	typeLine   = regexp.MustCompile(`^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (\w+)$`)
)

// parseExposition reads the Prometheus text format.
func parseExposition(t *testing.T, text string) metrics {
	t.Helper()
	m := metrics{types: map[string]string{}}
	for _, line := range strings.Split(text, "\n") {
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			if tm := typeLine.FindStringSubmatch(line); tm != nil {
				m.types[tm[1]] = tm[2]
			}
			continue
		}
		sm := sampleLine.FindStringSubmatch(line)
		if sm == nil {
			t.Fatalf("/metrics line %q is not a sample", line)
		}
		s := sample{name: sm[1], labels: map[string]string{}, value: sm[3]}
		for _, lp := range labelPair.FindAllStringSubmatch(sm[2], -1) {
			s.labels[lp[1]] = lp[2]
		}
		m.samples = append(m.samples, s)
	}
	return m
}

// scrape fetches and parses a server's /metrics.
func scrape(t *testing.T, s *server) metrics {
	t.Helper()
	code, body := s.get(t, "/metrics")
	if code != 200 {
		t.Fatalf("%s /metrics: status %d", s.name, code)
	}
	return parseExposition(t, body)
}

// merge joins the pages of several servers.
func merge(ms ...metrics) metrics {
	out := metrics{types: map[string]string{}}
	for _, m := range ms {
		out.samples = append(out.samples, m.samples...)
		maps.Copy(out.types, m.types)
	}
	return out
}

// value returns the value of the first sample of name with all of labels,
// or "" when there is none.
func (m metrics) value(name string, labels map[string]string) string {
	for _, s := range m.samples {
		if s.name == name && matchesAll(s.labels, labels) {
			return s.value
		}
	}
	return ""
}

func matchesAll(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// has reports whether some sample is called name.
func (m metrics) has(name string) bool {
	return slices.ContainsFunc(m.samples, func(s sample) bool { return s.name == name })
}

// labelValues returns the values label takes on the samples of name.
func (m metrics) labelValues(name, label string) map[string]bool {
	vs := map[string]bool{}
	for _, s := range m.samples {
		if v, ok := s.labels[label]; ok && s.name == name {
			vs[v] = true
		}
	}
	return vs
}

// The metric references of a PromQL expression.
type (
	matcher struct{ label, op, value string }
	promRef struct {
		metric   string
		matchers []matcher
	}
	promExpr struct {
		refs     []promRef
		grouping []string // labels of by, without, on, ignoring
	}
)

// PromQL functions and keywords the files may use; anything else followed
// by "(" is a mistake.
var (
	promFuncs = map[string]bool{
		"sum": true, "count": true, "max": true, "min": true, "avg": true, "topk": true, "bottomk": true,
		"rate": true, "irate": true, "increase": true, "changes": true, "resets": true, "deriv": true,
		"histogram_quantile": true, "vector": true, "scalar": true, "absent": true, "clamp_min": true,
		"clamp_max": true, "abs": true, "time": true, "max_over_time": true, "min_over_time": true,
		"avg_over_time": true, "sort": true, "sort_desc": true,
	}
	promKeywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true}
)

var (
	grafanaVar  = regexp.MustCompile(`\$(?:__rate_interval|__interval|__range)\b`)
	selector    = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)?(\s*)\{([^{}]*)\}`)
	matcherRe   = regexp.MustCompile(`\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)`)
	stringLit   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	rangeSel    = regexp.MustCompile(`\[[^\]]*\]`)
	groupingRe  = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
	promToken   = regexp.MustCompile(`\d+(?:\.\d+)?(?:e[+-]?\d+)?[smhdwy]?|[a-zA-Z_:][a-zA-Z0-9_:]*`)
	labelValues = regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$`)
)

// parsePromQL finds the metrics an expression reads. It knows the subset of
// PromQL the rules and the dashboard use and refuses the rest, so that no
// metric name slips past unchecked.
func parsePromQL(expr string) (promExpr, error) {
	var e promExpr
	s := grafanaVar.ReplaceAllString(expr, "5m")
	var err error
	s = selector.ReplaceAllStringFunc(s, func(sel string) string {
		m := selector.FindStringSubmatch(sel)
		if m[1] == "" || promKeywords[m[1]] {
			err = fmt.Errorf("selector %q has no metric name", sel)
			return sel
		}
		ref := promRef{metric: m[1]}
		for _, mm := range matcherRe.FindAllStringSubmatch(m[3], -1) {
			ref.matchers = append(ref.matchers, matcher{mm[1], mm[2], mm[3]})
		}
		if rest := strings.TrimSpace(matcherRe.ReplaceAllString(m[3], "")); rest != "" {
			err = fmt.Errorf("selector %q: cannot read %q", sel, rest)
		}
		e.refs = append(e.refs, ref)
		return m[1] + m[2] + "{}"
	})
	if err != nil {
		return e, err
	}
	s = stringLit.ReplaceAllString(s, `""`)
	if strings.Contains(s, "$") {
		return e, fmt.Errorf("variable outside a label value in %q", expr)
	}
	s = rangeSel.ReplaceAllString(s, "")
	for _, g := range groupingRe.FindAllStringSubmatch(s, -1) {
		for _, l := range strings.Split(g[1], ",") {
			if l = strings.TrimSpace(l); l != "" {
				e.grouping = append(e.grouping, l)
			}
		}
	}
	s = groupingRe.ReplaceAllString(s, "")
	for _, loc := range promToken.FindAllStringIndex(s, -1) {
		tok := s[loc[0]:loc[1]]
		if tok[0] >= '0' && tok[0] <= '9' || promKeywords[tok] {
			continue
		}
		next := strings.TrimLeft(s[loc[1]:], " \t\n")
		switch {
		case strings.HasPrefix(next, "("):
			if !promFuncs[tok] {
				return e, fmt.Errorf("unknown function %s in %q", tok, expr)
			}
		case strings.HasPrefix(next, "{"): // a selector, read above
		default:
			e.refs = append(e.refs, promRef{metric: tok})
		}
	}
	return e, nil
}

// checkExpr reports, as errors of t, every metric, label or label value of
// expr that the servers' /metrics pages do not have.
func checkExpr(t *testing.T, where, expr string, m metrics) {
	t.Helper()
	e, err := parsePromQL(expr)
	if err != nil {
		t.Errorf("%s: %v", where, err)
		return
	}
	if len(e.refs) == 0 {
		t.Errorf("%s: %q reads no metric", where, expr)
	}
	labels := map[string]bool{"job": true, "instance": true} // added by Prometheus
	for _, r := range e.refs {
		if r.metric == "up" { // made by Prometheus for every target
			continue
		}
		if !m.has(r.metric) {
			t.Errorf("%s: metric %s is not on the /metrics of ykksmd or ykvald (in a sync pool)", where, r.metric)
			continue
		}
		for _, s := range m.samples {
			if s.name == r.metric {
				for l := range s.labels {
					labels[l] = true
				}
			}
		}
		for _, mt := range r.matchers {
			if mt.label == "job" || mt.label == "instance" {
				continue
			}
			have := m.labelValues(r.metric, mt.label)
			if len(have) == 0 {
				t.Errorf("%s: %s has no label %s", where, r.metric, mt.label)
				continue
			}
			var want []string
			switch {
			case mt.op == "=":
				want = []string{mt.value}
			case mt.op == "=~" && regexp.MustCompile(`^\w+(\|\w+)*$`).MatchString(mt.value):
				want = strings.Split(mt.value, "|")
			}
			for _, v := range want {
				if !have[v] {
					t.Errorf("%s: %s{%s=%q}: no such label value (have %v)", where, r.metric, mt.label, v, slices.Sorted(maps.Keys(have)))
				}
			}
		}
	}
	for _, l := range e.grouping {
		if !labels[l] {
			t.Errorf("%s: groups by %s, a label none of its metrics has", where, l)
		}
	}
}

// alertRule is one alert of alerts.yml.
type alertRule struct {
	name, expr string
	line       int
}

// parseAlerts reads the alerts and their expressions (one line, or a folded
// block) from a rules file.
func parseAlerts(t *testing.T, path string) []alertRule {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	var rules []alertRule
	alert := regexp.MustCompile(`^\s*- alert: (\S+)\s*$`)
	exprLine := regexp.MustCompile(`^(\s*)expr: (.*)$`)
	for i := 0; i < len(lines); i++ {
		if m := alert.FindStringSubmatch(lines[i]); m != nil {
			rules = append(rules, alertRule{name: m[1], line: i + 1})
			continue
		}
		m := exprLine.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		if len(rules) == 0 || rules[len(rules)-1].expr != "" {
			t.Fatalf("%s:%d: expr outside an alert", path, i+1)
		}
		expr := m[2]
		if expr == ">-" || expr == ">" || expr == "|" || expr == "|-" {
			var parts []string
			for i+1 < len(lines) && (strings.TrimSpace(lines[i+1]) == "" || len(lines[i+1])-len(strings.TrimLeft(lines[i+1], " ")) > len(m[1])) {
				i++
				parts = append(parts, strings.TrimSpace(lines[i]))
			}
			expr = strings.Join(parts, " ")
		}
		rules[len(rules)-1].expr = strings.TrimSpace(expr)
	}
	return rules
}

// TestParsePromQL checks the reader the metric checks rely on.
func TestParsePromQL(t *testing.T) {
	for _, tc := range []struct {
		expr     string
		metrics  []string
		grouping []string
		err      bool
	}{
		{expr: `up{job=~"ykksmd|ykvald"} == 0`, metrics: []string{"up"}},
		{expr: `sum by (job, instance) (rate(ykksm_decrypt_total{result="database_error"}[5m])) * 60 > 0`,
			metrics: []string{"ykksm_decrypt_total"}, grouping: []string{"job", "instance"}},
		{expr: `histogram_quantile(0.99, sum by (le) (rate(ykval_verify_duration_seconds_bucket{instance=~"$val_instance"}[$__rate_interval])))`,
			metrics: []string{"ykval_verify_duration_seconds_bucket"}, grouping: []string{"le"}},
		{expr: `process_open_fds / process_max_fds > 0.8`, metrics: []string{"process_open_fds", "process_max_fds"}},
		{expr: `sum(rate(ykksm_decrypt_total[5m])) or vector(0)`, metrics: []string{"ykksm_decrypt_total"}},
		{expr: `rate(ykksm_decrypt_totl[5m])`, metrics: []string{"ykksm_decrypt_totl"}}, // a typo is a metric, and fails the check
		{expr: `rat(ykksm_decrypt_total[5m])`, err: true},
		{expr: `{__name__="up"}`, err: true},
		{expr: `up{job~"x"}`, err: true},
		{expr: `rate(up[$interval])`, err: true},
	} {
		e, err := parsePromQL(tc.expr)
		if (err != nil) != tc.err {
			t.Errorf("parsePromQL(%q) error = %v, want error %v", tc.expr, err, tc.err)
			continue
		}
		if err != nil {
			continue
		}
		var got []string
		for _, r := range e.refs {
			got = append(got, r.metric)
		}
		slices.Sort(got)
		want := slices.Sorted(slices.Values(tc.metrics))
		if !slices.Equal(got, want) {
			t.Errorf("parsePromQL(%q) metrics = %v, want %v", tc.expr, got, want)
		}
		if !slices.Equal(e.grouping, tc.grouping) {
			t.Errorf("parsePromQL(%q) grouping = %v, want %v", tc.expr, e.grouping, tc.grouping)
		}
	}
}

// TestMetricsExist checks every metric, label and label value that
// alerts.yml and the Grafana dashboard read against the /metrics pages of a
// real ykksmd and ykvald. The ykvald is one of a sync pool, with the
// metrics that only a pool has (the sender's and the queue's).
func TestMetricsExist(t *testing.T) {
	p := startPool(t, [2][]string{})
	m := merge(scrape(t, p.ksm), scrape(t, p.vals[0]))
	for _, family := range []string{"go_goroutines", "process_resident_memory_bytes", "ykksm_decrypt_total", "ykval_verify_total", "ykval_queue_length"} {
		if !m.has(family) {
			t.Fatalf("/metrics has no %s; the pages are not what the servers export", family)
		}
	}

	rules := parseAlerts(t, "prometheus/alerts.yml")
	for _, r := range rules {
		checkExpr(t, fmt.Sprintf("alerts.yml:%d %s", r.line, r.name), r.expr, m)
	}

	d := readDashboard(t)
	read := map[string]bool{}
	for _, q := range d.queries() {
		checkExpr(t, "ykstack.json "+q.where, q.expr, m)
		if e, err := parsePromQL(q.expr); err == nil {
			for _, r := range e.refs {
				read[r.metric] = true
			}
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		lv := labelValues.FindStringSubmatch(v.Definition)
		if lv == nil {
			t.Errorf("ykstack.json variable %s: query %q is not label_values(METRIC, LABEL)", v.Name, v.Definition)
			continue
		}
		if !m.has(lv[1]) {
			t.Errorf("ykstack.json variable %s: metric %s is not exported", v.Name, lv[1])
		}
	}

	// Every ykstack metric family is on the dashboard.
	for _, family := range slices.Sorted(maps.Keys(m.types)) {
		if !strings.HasPrefix(family, "ykksm_") && !strings.HasPrefix(family, "ykval_") {
			continue
		}
		if !read[family] && !read[family+"_bucket"] && !read[family+"_count"] && !read[family+"_sum"] {
			t.Errorf("ykstack.json has no panel for %s (%s)", family, m.types[family])
		}
	}
}
