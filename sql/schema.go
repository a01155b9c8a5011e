// Package sql embeds the database schemas of ykstack: Yubico's YK-KSM and
// YK-VAL tables, one file per service and dialect, so that an existing
// ykksm or ykval database keeps working unchanged.
package sql

import (
	"embed"
	"fmt"
)

//go:embed ksm/*.sql val/*.sql
var files embed.FS

// Schema returns the schema script of service ("ksm" or "val") for dialect
// ("sqlite" or "mysql").
func Schema(service, dialect string) (string, error) {
	b, err := files.ReadFile(service + "/" + dialect + ".sql")
	if err != nil {
		return "", fmt.Errorf("sql: no %s schema for %s: %w", service, dialect, err)
	}
	return string(b), nil
}
