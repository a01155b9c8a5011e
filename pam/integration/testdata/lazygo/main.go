// Command lazygo is a Go c-shared library for TestDesignLazyGo: its one
// function needs the Go runtime (a timer), as any real work does.
package main

import "C"

import "time"

//export go_authenticate
func go_authenticate() C.int {
	time.Sleep(20 * time.Millisecond)
	return 0
}

func main() {}
