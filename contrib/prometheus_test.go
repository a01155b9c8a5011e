package contrib

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestPromtoolCheckConfig checks the scrape configuration, and with it the
// rule file it names.
func TestPromtoolCheckConfig(t *testing.T) {
	promtool := need(t, "promtool", "prometheus")
	out, err := run(t, "prometheus", promtool, "check", "config", "prometheus.yml")
	if err != nil || !strings.Contains(out, "SUCCESS: prometheus.yml is valid") {
		t.Errorf("promtool check config prometheus.yml: %v\n%s", err, out)
	}
	// The rules use these job names.
	for _, job := range []string{"ykksmd", "ykvald"} {
		if !regexp.MustCompile(`(?m)^\s*- job_name: ` + job + `$`).MatchString(readFile(t, "prometheus/prometheus.yml")) {
			t.Errorf("prometheus.yml has no job %s", job)
		}
	}
}

// TestPromtoolCheckRules checks the rules' syntax, PromQL and templates.
func TestPromtoolCheckRules(t *testing.T) {
	promtool := need(t, "promtool", "prometheus")
	rules := parseAlerts(t, "prometheus/alerts.yml")
	out, err := run(t, "prometheus", promtool, "check", "rules", "alerts.yml")
	if err != nil || !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool check rules alerts.yml: %v\n%s", err, out)
	}
	// promtool counts the rules; so does parseAlerts, which the metric
	// checks use: both must have seen all of them.
	if want := " " + strconv.Itoa(len(rules)) + " rules found"; !strings.Contains(out, want) {
		t.Errorf("promtool check rules: %q, want %q (parseAlerts found %d)", out, want, len(rules))
	}
}

// TestPromtoolTestRules runs the rules' unit tests: input series, expected
// alerts with their labels and rendered annotations.
func TestPromtoolTestRules(t *testing.T) {
	promtool := need(t, "promtool", "prometheus")
	out, err := run(t, "prometheus", promtool, "test", "rules", "alerts_test.yml")
	if err != nil || !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool test rules alerts_test.yml: %v\n%s", err, out)
	}
}

// TestAlertsAllTested makes sure alerts_test.yml has, for every alert, a
// case where it fires and one where it stays silent, and that every alert
// has a severity, a summary and a description.
func TestAlertsAllTested(t *testing.T) {
	rules := parseAlerts(t, "prometheus/alerts.yml")
	if len(rules) < 10 {
		t.Fatalf("alerts.yml: %d alerts read, want the dozen or so it has", len(rules))
	}
	// Split the test file into its eval cases.
	cases := regexp.MustCompile(`(?m)^\s*- (?:\{)?eval_time:`).Split(readFile(t, "prometheus/alerts_test.yml"), -1)[1:]
	alertname := regexp.MustCompile(`alertname: (\w+)`)
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, c := range cases {
		m := alertname.FindStringSubmatch(c)
		if m == nil {
			t.Errorf("alerts_test.yml: eval case without alertname: %q", c)
			continue
		}
		switch {
		case strings.Contains(c, "exp_alerts: []"):
			silent[m[1]] = true
		case strings.Contains(c, "exp_labels:") && strings.Contains(c, "exp_annotations:"):
			fires[m[1]] = true
		default:
			t.Errorf("alerts_test.yml: case of %s expects neither silence nor alerts with labels and annotations", m[1])
		}
	}
	text := readFile(t, "prometheus/alerts.yml")
	for _, r := range rules {
		if !fires[r.name] {
			t.Errorf("alerts_test.yml never makes %s fire", r.name)
		}
		if !silent[r.name] {
			t.Errorf("alerts_test.yml never checks that %s stays silent", r.name)
		}
		block := text[strings.Index(text, "- alert: "+r.name+"\n"):]
		if next := strings.Index(block[1:], "- alert: "); next > 0 {
			block = block[:next+1]
		}
		for _, want := range []string{"severity: ", "summary: ", "description: "} {
			if !strings.Contains(block, want) {
				t.Errorf("alert %s has no %s", r.name, strings.TrimSuffix(want, ": "))
			}
		}
	}
}

// TestAlertNamesExist checks that every alert the dashboard's descriptions,
// the alerts' own annotations and the operations guides name is one that
// alerts.yml defines.
func TestAlertNamesExist(t *testing.T) {
	defined := map[string]bool{}
	for _, r := range parseAlerts(t, "prometheus/alerts.yml") {
		defined[r.name] = true
	}
	var texts []struct{ where, text string }
	for _, p := range readDashboard(t).allPanels() {
		texts = append(texts, struct{ where, text string }{dashboardPath + " panel " + p.Title, p.Description})
	}
	for _, f := range []string{"prometheus/alerts.yml", "galera/README.md", "../docs/OPERATIONS.md", "../docs/REPLICATION.md"} {
		texts = append(texts, struct{ where, text string }{f, readFile(t, f)})
	}
	name := regexp.MustCompile(`\b(?:Ykstack|YKKSM|YKVAL)[A-Z][A-Za-z]+\b`)
	named := 0
	for _, x := range texts {
		for _, n := range name.FindAllString(x.text, -1) {
			named++
			if !defined[n] {
				t.Errorf("%s names the alert %s, which alerts.yml does not define", x.where, n)
			}
		}
	}
	if named < len(defined) {
		t.Errorf("found %d alert names in the texts; the reader must be broken", named)
	}
}

// TestPromtoolCheckConfigTLS uncomments the TLS example of prometheus.yml,
// with its files in a scratch directory, and has promtool check it.
func TestPromtoolCheckConfigTLS(t *testing.T) {
	promtool := need(t, "promtool", "prometheus")
	dir := t.TempDir()
	var lines []string
	uncommented := 0
	for _, l := range strings.Split(readFile(t, "prometheus/prometheus.yml"), "\n") {
		if rest, ok := strings.CutPrefix(l, "    #"); ok && (strings.HasPrefix(rest, "scheme:") || strings.HasPrefix(rest, "tls_config:") || strings.HasPrefix(rest, "  ")) {
			l = "    " + rest
			uncommented++
		}
		l = strings.ReplaceAll(l, "/etc/prometheus/ykstack", dir)
		lines = append(lines, l)
	}
	if uncommented != 5 {
		t.Fatalf("prometheus.yml: %d lines of the TLS example uncommented, want 5 (scheme, tls_config and its three files)", uncommented)
	}
	for _, f := range []string{"ksm-ca.crt", "prometheus.crt", "prometheus.key"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	alerts := readFile(t, "prometheus/alerts.yml")
	if err := os.WriteFile(filepath.Join(dir, "alerts.yml"), []byte(alerts), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, dir, promtool, "check", "config", "prometheus.yml")
	if err != nil || !strings.Contains(out, "SUCCESS: prometheus.yml is valid") {
		t.Errorf("promtool check config with the TLS example: %v\n%s\n%s", err, out, strings.Join(lines, "\n"))
	}
	// And promtool reads those lines: without the key file it fails.
	os.Remove(filepath.Join(dir, "prometheus.key"))
	if out, err := run(t, dir, promtool, "check", "config", "prometheus.yml"); err == nil {
		t.Errorf("promtool check config passed without the TLS key file; the example is not read:\n%s", out)
	}
}
