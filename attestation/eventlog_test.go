package attestation

import (
	"crypto/sha512"
	"strings"
	"testing"
)

// TestCheckRuntimeEvents: a log replays to the registers it names, and a
// malformed or unexplained one is refused by what is wrong.
func TestCheckRuntimeEvents(t *testing.T) {
	a := RuntimeEventFor("sha256:" + strings.Repeat("a", 64))
	b := RuntimeEventFor("sha256:" + strings.Repeat("b", 64))
	other := RuntimeEvent{RTMR: 2, Event: "boot config"}
	log := []RuntimeEvent{a, other, b}
	da, db := a.Digest(), b.Digest()
	r3 := sha512.Sum384(append(make([]byte, 48), da[:]...))
	r3 = sha512.Sum384(append(r3[:], db[:]...))
	r2 := ReplayRTMR(log, 2)
	rtmrs := [][]byte{make([]byte, 48), make([]byte, 48), r2[:], r3[:]}
	runtimes, err := CheckRuntimeEvents(log, rtmrs)
	if err != nil || len(runtimes) != 2 || runtimes[1] != "sha256:"+strings.Repeat("b", 64) {
		t.Fatalf("CheckRuntimeEvents: %v, %v", runtimes, err)
	}
	for _, c := range []struct {
		name string
		log  []RuntimeEvent
		want string
	}{
		{"reordered", []RuntimeEvent{b, other, a}, "RTMR3 is"},
		{"one missing", []RuntimeEvent{a, other}, "RTMR3 is"},
		{"RTMR1", []RuntimeEvent{{RTMR: 1, Event: "x"}}, "only RTMR2 and RTMR3"},
		{"empty event", []RuntimeEvent{{RTMR: 3}}, "want 1 to"},
		{"control character", []RuntimeEvent{{RTMR: 3, Event: "a\nb"}}, "printable"},
		{"too many", make([]RuntimeEvent, MaxRuntimeEvents+1), "more than"},
	} {
		if _, err := CheckRuntimeEvents(c.log, rtmrs); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
}
