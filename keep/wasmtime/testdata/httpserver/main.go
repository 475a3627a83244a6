// Command httpserver is a test workload for the sockets prototype
// (sockets_proto_test.go). It serves HTTP on the listening socket it is given
// as file descriptor 3, the way Enarx hands sockets to a Keep's workload
// (FD_COUNT / FD_NAMES). The same source is built for GOOS=wasip1, where fd 3
// is a preopened WASI socket, and natively, where the test passes a listener
// in ExtraFiles, so the native run is the baseline.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
)

func main() {
	ln, err := net.FileListener(os.NewFile(3, "listener"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "httpserver: fd 3 is not a listening socket:", err)
		os.Exit(2)
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "hello from %s\n", r.URL.Path)
	})
	fmt.Fprintln(os.Stderr, "httpserver: serving on", ln.Addr())
	if err := http.Serve(ln, nil); err != nil {
		fmt.Fprintln(os.Stderr, "httpserver:", err)
		os.Exit(1)
	}
}
