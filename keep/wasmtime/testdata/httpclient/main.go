// Command httpclient is a test workload for a connected socket: it finds
// the descriptor named by its first argument in FD_NAMES, sends
// "GET <second argument> HTTP/1.0" on it and prints the whole reply on
// stdout.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: httpclient NAME PATH")
		os.Exit(2)
	}
	fd, err := fdByName(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "httpclient:", err)
		os.Exit(2)
	}
	conn, err := net.FileConn(os.NewFile(uintptr(fd), os.Args[1]))
	if err != nil {
		fmt.Fprintf(os.Stderr, "httpclient: fd %d is not a connected socket: %v\n", fd, err)
		os.Exit(2)
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.0\r\nHost: upstream\r\n\r\n", os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "httpclient: send:", err)
		os.Exit(1)
	}
	if _, err := io.Copy(os.Stdout, conn); err != nil {
		fmt.Fprintln(os.Stderr, "httpclient: receive:", err)
		os.Exit(1)
	}
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
