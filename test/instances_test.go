package test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/enarx/containerd-shim-enarx/enarxdev"
)

// TestInstances: the enarx.dev/instances annotation runs that many
// instances of the module in the Keep. A hello run three times greets three
// times and exits 0. An HTTPS server run twice answers a request while one
// of its instances is kept busy, where a single instance answers only once
// it is free again; /exit ends one instance with status 7, which ends the
// Keep with it. A bad number, or several instances with a connect socket,
// fails the container's creation naming what is wrong.
func TestInstances(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		hello := importWasmImage(t, d, ns, "docker.io/enarx-test/hello:latest", buildGoWasm(t, "hello"), false)
		instances := func(n string) []string { return []string{"--annotation", enarxdev.AnnotationInstances + "=" + n} }

		stdout, stderr, exit := runWasm(t, d, ns, instances("3"), hello, uniqueID("three"))
		if exit != 0 || strings.Count(stdout, "Hello from a Keep!") != 3 {
			t.Errorf("hello, 3 instances: exit %d, stdout %q, stderr %s; want the greeting 3 times and exit 0", exit, stdout, stderr)
		}

		for _, c := range []struct{ opts []string }{
			{instances("0")},
			{instances("65")},
			{instances("two")},
		} {
			_, stderr, exit := runWasm(t, d, ns, c.opts, hello, uniqueID("bad"))
			if exit == 0 || !strings.Contains(stderr, enarxdev.AnnotationInstances) || !strings.Contains(stderr, "from 1 to 64") {
				t.Errorf("%v: exit %d, stderr %s; want a failure naming the annotation and the range", c.opts, exit, stderr)
			}
		}
		connect := append(instances("2"), "--annotation", enarxdev.AnnotationConnectPrefix+"db=tcp://127.0.0.1:1")
		if _, stderr, exit := runWasm(t, d, ns, connect, hello, uniqueID("connect")); exit == 0 || !strings.Contains(stderr, `connect socket "db" is one connection`) {
			t.Errorf("2 instances with a connect socket: exit %d, stderr %s; want a failure naming the socket", exit, stderr)
		}

		server := importWasmImage(t, d, ns, "docker.io/enarx-test/httpserver:latest", buildGoWasm(t, "httpserver"), false)
		for _, n := range []string{"1", "2"} {
			port := freePort(t)
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			id := uniqueID("server" + n)
			opts := append([]string{"--net-host", "--annotation", fmt.Sprintf(enarxdev.AnnotationListenPrefix+"web=tls://%s", addr)}, instances(n)...)
			done := runWasmBackground(t, d, ns, opts, server, id, "/app.wasm", "web")
			concurrent, err := answeredWhileBusy(addr, 2*time.Second)
			switch {
			case err != nil:
				t.Errorf("%s instances: %v", n, err)
			case n == "1" && concurrent:
				t.Errorf("1 instance answered a request while it was busy: the busy request does not keep an instance busy, so this test proves nothing")
			case n == "2" && !concurrent:
				t.Errorf("2 instances: no request was answered while one instance was busy")
			}
			if n == "2" {
				if _, body, err := httpsGet(addr, &tls.Config{InsecureSkipVerify: true}, "/exit"); err != nil || body != "bye\n" {
					t.Errorf("/exit: %v, %q", err, body)
				}
				if r, ended := done.wait(30 * time.Second); !ended {
					t.Error("the Keep did not end when an instance exited 7")
				} else if r.exit != 7 {
					t.Errorf("ctr run: exit %d, want 7 (the instance's); stderr %s", r.exit, r.stderr)
				}
			}
			stopTask(t, d, ns, id, done)
		}
	})
}

// answeredWhileBusy sends GET /busy?ms=busy to the HTTPS server at addr
// (test/fixtures/httpserver), which keeps the instance that serves it busy,
// and once that instance is busy, GET / on another connection; it reports
// whether / was answered before /busy was done.
func answeredWhileBusy(addr string, busy time.Duration) (bool, error) {
	cfg := &tls.Config{InsecureSkipVerify: true}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(busy + 30*time.Second))
	fmt.Fprintf(conn, "GET /busy?ms=%d HTTP/1.0\r\nHost: keep\r\n\r\n", busy.Milliseconds())
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return false, fmt.Errorf("/busy: %w", err)
		}
		if line == "busy\n" {
			break
		}
	}
	busyDone := make(chan error, 1)
	go func() {
		line, err := r.ReadString('\n')
		if err == nil && line != "done\n" {
			err = fmt.Errorf("/busy: %q, want done", line)
		}
		busyDone <- err
	}()
	answered := make(chan error, 1)
	go func() {
		_, body, err := httpsGet(addr, cfg, "/other")
		if err == nil && body != "hello from /other\n" {
			err = fmt.Errorf("/other: %q", body)
		}
		answered <- err
	}()
	select {
	case err := <-answered:
		if err != nil {
			return false, err
		}
		return true, <-busyDone
	case err := <-busyDone:
		if err != nil {
			return false, err
		}
		return false, <-answered
	}
}
