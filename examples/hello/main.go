// Command hello is the demo workload: a WASI program that says where it runs.
//
//	GOOS=wasip1 GOARCH=wasm go build -o hello.wasm ./examples/hello
package main

import (
	"fmt"
	"os"
	"runtime"
)

func main() {
	fmt.Printf("Hello from a Keep! (%s/%s)\n", runtime.GOOS, runtime.GOARCH)
	if len(os.Args) > 1 {
		fmt.Printf("args: %q\n", os.Args[1:])
	}
}
