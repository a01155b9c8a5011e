package contrib

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const dashboardPath = "grafana/ykstack.json"

// dashboard is the part of Grafana's dashboard JSON the tests read.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	ID            *int    `json:"id"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID          int         `json:"id"`
	Type        string      `json:"type"`
	Title       string      `json:"title"`
	Description string      `json:"description"`
	Datasource  *datasource `json:"datasource"`
	GridPos     struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID        string      `json:"refId"`
		Expr         string      `json:"expr"`
		LegendFormat string      `json:"legendFormat"`
		Datasource   *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // of a collapsed row
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type variable struct {
	Name       string      `json:"name"`
	Type       string      `json:"type"`
	Query      any         `json:"query"`
	Definition string      `json:"definition"`
	Datasource *datasource `json:"datasource"`
}

// query is one PromQL expression of the dashboard.
type query struct{ where, expr string }

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var d dashboard
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	if dec.More() {
		t.Fatalf("%s: data after the dashboard object", dashboardPath)
	}
	return d
}

// allPanels lists the panels, those of collapsed rows included.
func (d dashboard) allPanels() []panel {
	var ps []panel
	for _, p := range d.Panels {
		ps = append(ps, p)
		ps = append(ps, p.Panels...)
	}
	return ps
}

func (d dashboard) queries() []query {
	var qs []query
	for _, p := range d.allPanels() {
		for _, tg := range p.Targets {
			qs = append(qs, query{fmt.Sprintf("panel %d %q target %s", p.ID, p.Title, tg.RefID), tg.Expr})
		}
	}
	return qs
}

// Grafana's own variables, usable in any query.
var grafanaGlobals = map[string]bool{"__rate_interval": true, "__interval": true, "__range": true}

// TestDashboard checks the dashboard's structure as Grafana imports it: a
// stable uid, no fixed id, the data source as a variable, unique panel ids,
// panels on the 24-column grid without overlaps, every panel with a query and
// a description, and every variable a query names defined.
func TestDashboard(t *testing.T) {
	d := readDashboard(t)
	if d.UID == "" || len(d.UID) > 40 || d.Title == "" {
		t.Errorf("uid %q, title %q: want a uid of 1 to 40 characters and a title", d.UID, d.Title)
	}
	if d.ID != nil {
		t.Errorf("id = %d, want null (Grafana assigns it on import)", *d.ID)
	}
	if d.SchemaVersion < 36 { // data sources by uid, as Grafana 9 and later write them
		t.Errorf("schemaVersion = %d, want 36 or later", d.SchemaVersion)
	}

	vars := map[string]variable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if ds, ok := vars["datasource"]; !ok || ds.Type != "datasource" || ds.Query != "prometheus" {
		t.Errorf("no datasource variable of Prometheus data sources: %+v", vars["datasource"])
	}
	for _, v := range d.Templating.List {
		if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != "${datasource}") {
			t.Errorf("variable %s: data source %+v, want uid ${datasource}", v.Name, v.Datasource)
		}
	}

	ids := map[int]string{}
	type rect struct {
		title          string
		x0, y0, x1, y1 int
	}
	var rects []rect
	for _, p := range d.allPanels() {
		if prev, dup := ids[p.ID]; dup || p.ID <= 0 {
			t.Errorf("panel %q: id %d (also %q); want unique positive ids", p.Title, p.ID, prev)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v is off the 24-column grid", p.Title, g)
		}
		rects = append(rects, rect{p.Title, g.X, g.Y, g.X + g.W, g.Y + g.H})
		if p.Type == "row" {
			continue
		}
		if p.Title == "" || p.Description == "" {
			t.Errorf("panel %d: title %q, description %q; want both", p.ID, p.Title, p.Description)
		}
		if p.Type != "timeseries" && p.Type != "stat" {
			t.Errorf("panel %q: type %q, want timeseries or stat", p.Title, p.Type)
		}
		if p.Datasource == nil || p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %+v, want prometheus ${datasource}", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refs[tg.RefID] || tg.Expr == "" {
				t.Errorf("panel %q: target %q: want a unique refId and an expr", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			if tg.Datasource != nil && tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q target %s: datasource %+v, want ${datasource}", p.Title, tg.RefID, tg.Datasource)
			}
			for _, m := range regexp.MustCompile(`\$\{?(\w+)`).FindAllStringSubmatch(tg.Expr, -1) {
				if _, ok := vars[m[1]]; !ok && !grafanaGlobals[m[1]] {
					t.Errorf("panel %q target %s: variable $%s is not defined", p.Title, tg.RefID, m[1])
				}
			}
		}
	}
	for i, a := range rects {
		for _, b := range rects[i+1:] {
			if a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1 {
				t.Errorf("panels %q and %q overlap", a.title, b.title)
			}
		}
	}

	// The panels issue 6 asks for.
	var exprs strings.Builder
	for _, q := range d.queries() {
		exprs.WriteString(q.expr + "\n")
	}
	for _, want := range []string{
		"sum by (result) (rate(ykksm_decrypt_total",                   // decrypts/s by result
		"sum by (status) (rate(ykval_verify_total",                    // verifies/s by status
		"histogram_quantile(0.5, sum by (instance, le) (rate(ykksm_",  // KSM p50
		"histogram_quantile(0.99, sum by (instance, le) (rate(ykksm_", // KSM p99
		"histogram_quantile(0.5, sum by (instance, le) (rate(ykval_",  // VAL p50
		"histogram_quantile(0.99, sum by (instance, le) (rate(ykval_", // VAL p99
		`status="BACKEND_ERROR"`,
		"process_resident_memory_bytes",
		"go_goroutines",
	} {
		if !strings.Contains(exprs.String(), want) {
			t.Errorf("no dashboard query has %q", want)
		}
	}
}

// TestDashboardPromQL has promtool parse every dashboard query, each as a
// recording rule, with Grafana's variables replaced by values.
func TestDashboardPromQL(t *testing.T) {
	promtool := need(t, "promtool", "prometheus")
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	vars := regexp.MustCompile(`\$\{?(\w+)\}?`)
	for i, q := range readDashboard(t).queries() {
		expr := vars.ReplaceAllStringFunc(q.expr, func(v string) string {
			if grafanaGlobals[strings.Trim(v, "${}")] {
				return "5m"
			}
			return ".*"
		})
		fmt.Fprintf(&rules, "      - record: dashboard:query%d\n        expr: |-\n          %s\n", i, expr)
	}
	p := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(p, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "", promtool, "check", "rules", p)
	if err != nil || !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool check rules (dashboard queries): %v\n%s\n%s", err, out, rules.String())
	}
}
