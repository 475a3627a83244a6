// Package registrytest runs an OCI distribution registry (distribution/v3,
// in memory) on loopback for tests: `enarx push` pushes to it and containerd
// pulls from it, and nothing leaves the machine.
//
// Only tests import it, so the binaries do not link the registry.
package registrytest

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"

	// The drivers and the access controller are found by name in the
	// configuration, so they must be linked in.
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
)

// Options configure a registry.
type Options struct {
	// Username and Password, when set, make the registry demand them
	// (HTTP basic authentication through an htpasswd file).
	Username, Password string
}

// Server is a running registry.
type Server struct {
	// Host is its address, "127.0.0.1:PORT": the registry part of an image
	// reference ("127.0.0.1:PORT/enarx/hello:1"). It speaks plain HTTP.
	Host string
	// URL is "http://" + Host.
	URL string
	// Requests counts the requests it has served.
	Requests func() int
}

// quiet silences the registry's log.
var quiet sync.Once

// Start starts a registry for the test and stops it in t.Cleanup.
//
// The registry logs every request to logrus's standard logger, which has no
// per-instance setting: Start discards that logger's output for the rest of
// the test binary.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	quiet.Do(func() { logrus.SetOutput(io.Discard) })
	config := &configuration.Configuration{
		Storage: configuration.Storage{
			"inmemory": configuration.Parameters{},
			// No background upload purging: the registry lives as long as a test.
			"maintenance": configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}},
		},
	}
	config.Log.AccessLog.Disabled = true
	if opts.Username != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(opts.Password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		htpasswd := filepath.Join(t.TempDir(), "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(opts.Username+":"+string(hash)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		config.Auth = configuration.Auth{"htpasswd": configuration.Parameters{"realm": "enarx-test", "path": htpasswd}}
	}
	ctx, cancel := context.WithCancel(context.Background())
	app := handlers.NewApp(ctx, config)
	var n counter
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.add()
		app.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		srv.Close()
		cancel()
	})
	host := strings.TrimPrefix(srv.URL, "http://")
	return &Server{Host: host, URL: srv.URL, Requests: n.get}
}
