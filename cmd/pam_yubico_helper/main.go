// Command pam_yubico_helper is the Go half of ykstack's pam_yubico.so: the
// PAM module starts it for every authentication and talks to it over the
// socket on descriptor 3 (see package pam/helper). It is not meant to be run
// by hand. Install it where the module's helper= argument (or its built-in
// default, /usr/local/libexec/ykstack/pam_yubico_helper) points, owned by
// root and not writable by others.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/ykstack/ykstack/pam/helper"
)

func main() {
	err := helper.ServeFD(context.Background(), helper.FD, helper.Options{Stdout: os.Stdout, Stderr: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, "pam_yubico_helper:", err)
		os.Exit(1)
	}
}
