// Command https is a WASI web server for a Keep: it serves HTTP on the
// socket named "https" in FD_NAMES, and the Keep terminates TLS for it with
// its attested certificate. Declare the socket in Enarx.toml
//
//	[[files]]
//	kind = "listen"
//	name = "https"
//	port = 8443
//
// (after the stdin, stdout and stderr entries), or with the annotation
// enarx.dev/listen.https=tls://[::]:8443.
//
//	GOOS=wasip1 GOARCH=wasm go build -o https.wasm ./examples/https
package main

import (
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
)

func main() {
	for fd, name := range strings.Split(os.Getenv("FD_NAMES"), ":") {
		if name != "https" {
			continue
		}
		ln, err := net.FileListener(os.NewFile(uintptr(fd), name))
		if err != nil {
			log.Fatalf("descriptor %d: %v", fd, err)
		}
		log.Fatal(http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "Hello over TLS from a Keep! You asked for %s\n", r.URL.Path)
		})))
	}
	log.Fatal(`no socket named "https" in FD_NAMES: declare one in Enarx.toml or with the enarx.dev/listen.https annotation`)
}
