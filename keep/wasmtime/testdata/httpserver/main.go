// Command httpserver is a test workload: net/http on the listening socket
// named by its first argument, found in FD_NAMES the way an Enarx workload
// finds the sockets its Keep gives it.
//
//	GET /env     answers the FD_COUNT and FD_NAMES entries of its environment,
//	             one a line
//	GET /exit/N  answers, then exits with status N
//	GET /<path>  answers "hello from /<path>"
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: httpserver NAME")
		os.Exit(2)
	}
	fd, err := fdByName(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "httpserver:", err)
		os.Exit(2)
	}
	ln, err := net.FileListener(os.NewFile(uintptr(fd), os.Args[1]))
	if err != nil {
		fmt.Fprintf(os.Stderr, "httpserver: fd %d is not a listening socket: %v\n", fd, err)
		os.Exit(2)
	}
	exit := make(chan int, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		for _, kv := range os.Environ() {
			if strings.HasPrefix(kv, "FD_COUNT=") || strings.HasPrefix(kv, "FD_NAMES=") {
				fmt.Fprintln(w, kv)
			}
		}
	})
	mux.HandleFunc("/exit/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.PathValue("n"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "exiting with %d\n", n)
		select {
		case exit <- n:
		default:
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", r.URL.Path)
	})
	srv := &http.Server{Handler: mux}
	shutdown := make(chan int)
	go func() {
		n := <-exit
		// Shutdown lets the answer to /exit go out first.
		srv.Shutdown(context.Background())
		shutdown <- n
	}()
	err = srv.Serve(ln)
	if err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "httpserver:", err)
		os.Exit(1)
	}
	os.Exit(<-shutdown)
}

// fdByName is the descriptor FD_NAMES gives name: the names are those of
// descriptors 0, 1, 2, ... in order, FD_COUNT of them.
func fdByName(name string) (int, error) {
	names := strings.Split(os.Getenv("FD_NAMES"), ":")
	if n, err := strconv.Atoi(os.Getenv("FD_COUNT")); err != nil || n != len(names) {
		return 0, fmt.Errorf("FD_COUNT=%q does not count FD_NAMES=%q", os.Getenv("FD_COUNT"), os.Getenv("FD_NAMES"))
	}
	for fd, n := range names {
		if n == name {
			return fd, nil
		}
	}
	return 0, fmt.Errorf("no descriptor named %q in FD_NAMES=%q", name, os.Getenv("FD_NAMES"))
}
