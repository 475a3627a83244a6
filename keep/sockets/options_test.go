package sockets

import (
	"strings"
	"testing"
)

func TestOptionsDefaults(t *testing.T) {
	o, err := Options{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.HandshakeTimeout != DefaultHandshakeTimeout || o.DialTimeout != DefaultDialTimeout || o.Backlog != DefaultBacklog {
		t.Errorf("defaults = %+v", o)
	}
	for _, bad := range []Options{{Backlog: -1}, {HandshakeTimeout: -1}, {NetNS: "netns/x"}} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if _, err := (Options{NetNS: "netns/x"}).withDefaults(); err == nil || !strings.Contains(err.Error(), "absolute path such as /var/run/netns/NAME") {
		t.Errorf("relative NetNS: %v", err)
	}
}
