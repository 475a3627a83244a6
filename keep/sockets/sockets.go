package sockets

import (
	"os"
)

// Kinds and protocols of a Spec.
const (
	Listen  = "listen"
	Connect = "connect"
	TCP     = "tcp"
	TLS     = "tls"
)

// Spec is one declared socket.
type Spec struct {
	// Name labels the descriptor in FD_NAMES.
	Name string `json:"name"`
	// Kind is Listen or Connect.
	Kind string `json:"kind"`
	// Prot is TCP or TLS.
	Prot string `json:"prot"`
	// Addr is "host:port": the address to bind for Listen (host may be
	// empty or "::" for every address), the address to dial for Connect.
	Addr string `json:"addr"`
}

// Socket is an open socket, as the engine gives it to the workload.
type Socket struct {
	// Name labels the descriptor in FD_NAMES.
	Name string
	// File is a listening or connected stream socket the workload uses
	// directly. The engine's Run takes it over: it closes File once the
	// workload holds its own descriptor, so that a workload closing a
	// connection ends it.
	File *os.File
	// Acceptor, when File is nil, is a listener whose connections the Keep
	// accepts itself (TLS: after the handshake) and hands to the workload.
	Acceptor Acceptor
}

// Acceptor hands the workload connections the Keep accepted.
type Acceptor interface {
	// PollFD is a descriptor that polls readable while a connection is
	// waiting.
	PollFD() int
	// Accept returns a waiting connection without blocking, or an error
	// matching unix.EAGAIN when none is waiting. The caller owns the file.
	Accept() (*os.File, error)
}
