// Package tlssock gives TLS 1.3 (stream, crypto/tls) and DTLS 1.2 (datagram,
// pion/dtls) sockets whose algorithms are configuration data: key-exchange
// groups, signature schemes, cipher suites and versions are named by their
// IANA or Go names in a Config (or its TOML form), so that changing an
// algorithm is a change of configuration, not of code (crypto agility).
//
// The default key exchange for TLS is the post-quantum hybrid X25519MLKEM768,
// with X25519, P-256 and P-384 as classical fallbacks for peers that do not
// offer it. pion/dtls has no post-quantum group: DTLS uses the classical
// groups of the same list (see docs/tlssock.md).
//
// Listen and Dial pick TLS for "tcp" networks and DTLS for "udp" networks;
// Server and Client wrap an existing stream connection. ConnectionState
// reports what was negotiated, by name, and PeerAssertions reads the
// attestation assertions a Keep's certificate carries.
package tlssock
