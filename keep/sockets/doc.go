// Package sockets opens the sockets a Keep's config declares (Enarx.toml
// [[files]] of kind "listen" and "connect", prot "tcp" or "tls") and hands
// them to the engine as descriptors for the workload.
//
// Open opens them all at start, in a network namespace of the caller's
// choice, so that a Keep whose socket cannot be bound or connected fails at
// once with an error naming the socket; a wasip1 workload could not open
// them itself anyway (it has no socket, bind or connect).
//
//	listen  tcp  a listening socket; the workload accepts from it   Socket.File
//	listen  tls  the Keep accepts and handshakes; the workload       Socket.Acceptor
//	             accepts plaintext connections from a queue
//	connect tcp  a connected socket                                  Socket.File
//	connect tls  connected and handshaken by the Keep; the workload  Socket.File
//	             holds the plaintext end
//
// # TLS is terminated in the Keep
//
// For prot "tls" the Keep process, not the workload, runs TLS: it holds the
// Keep's certificate (and, in a TEE, the key that never leaves it, behind a
// crypto.Signer), takes the algorithms from a tlssock.Config (TLS 1.3,
// X25519MLKEM768 first by default), and checks servers against the CAs
// the Keep trusts. The workload sees a plain stream socket: one end of a
// socketpair(AF_UNIX, SOCK_STREAM), whose other end a pipe in the Keep
// joins to the tls.Conn, keeping half-closes (shutdown(SHUT_WR) one way,
// close_notify and FIN the other).
//
// Why not in the workload: wasip1 has no TLS, so a workload would carry its
// own TLS stack, need the private key in its memory, and each workload
// would choose and update its algorithms itself. In the Keep, one audited
// stack (crypto/tls) serves every workload, the key stays with the Keep,
// and changing an algorithm is a change of configuration. The cost, with a
// socketpair, is a copy of every byte and a wake-up of another thread per
// read (a stream has neither); and a workload cannot see the peer's
// certificate (a later host call could expose it).
//
// A listen socket with prot "tls" is served by goroutines: one accepts,
// one per connection handshakes (bounded by Options.HandshakeTimeout, so
// a slow or silent client delays nobody else), and the handshaken
// connections wait in a queue of Options.Backlog for the workload's
// sock_accept. Its Acceptor polls readable (an eventfd in semaphore mode)
// exactly while a connection waits, and Accept never blocks.
//
// A stream never blocks either: reads that find no whole TLS record say
// EAGAIN (tls.Conn keeps a partial one), and writes take everything,
// holding what the kernel does not take for a goroutine that sends it as
// the peer makes room, up to 256 KiB, beyond which writes say EAGAIN.
//
// # Network namespaces
//
// A socket belongs to the network namespace of the thread that created it,
// and stays there: binding, connecting and all I/O later act in that
// namespace from any thread. So only socket(2) runs on a dedicated OS
// thread that has entered the namespace (setns(2) to a path, or
// unshare(CLONE_NEWNET) and "lo" brought up for Options.NetNS = NewNetNS).
// That thread is never unlocked from its goroutine: when the goroutine
// ends, the Go runtime ends the thread rather than reuse it elsewhere.
// Host names of connect sockets are resolved by queries sent from inside
// the namespace too.
package sockets
