// Command hello is a test workload for keep/wasmtime, built for
// GOOS=wasip1 GOARCH=wasm at test time. It prints "hello", its arguments and
// the GREETING environment variable to stdout, a line to stderr, echoes stdin
// when asked to, and exits with the status in EXIT_CODE, if set.
package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

func main() {
	fmt.Println("hello")
	fmt.Printf("args=%s\n", strings.Join(os.Args, "|"))
	fmt.Printf("GREETING=%s\n", os.Getenv("GREETING"))
	fmt.Fprintln(os.Stderr, "to stderr")
	for _, a := range os.Args[1:] {
		if a == "--cat" {
			if _, err := io.Copy(os.Stdout, os.Stdin); err != nil {
				fmt.Fprintln(os.Stderr, "cat:", err)
				os.Exit(2)
			}
		}
	}
	if s := os.Getenv("EXIT_CODE"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bad EXIT_CODE:", err)
			os.Exit(2)
		}
		os.Exit(n)
	}
}
