package nodepolicy

import (
	"math/rand"
	"regexp"
	"strings"
	"testing"
)

// namesLike returns the strings a name check must agree on: the edges of
// the lengths, every byte in each position, and random ones from alphabet.
func namesLike(alphabet string, maxLen int) []string {
	names := []string{"", strings.Repeat("a", maxLen), strings.Repeat("a", maxLen+1), "a\n", "\na", "é", "a.b", "-a", ".a", "_a"}
	for b := 0; b < 256; b++ {
		names = append(names, string([]byte{byte(b)}), "a"+string([]byte{byte(b)}), string([]byte{byte(b)})+"a")
	}
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 5000; i++ {
		n := make([]byte, r.Intn(maxLen+3))
		for j := range n {
			if r.Intn(20) == 0 {
				n[j] = byte(r.Intn(256))
			} else {
				n[j] = alphabet[r.Intn(len(alphabet))]
			}
		}
		names = append(names, string(n))
	}
	return names
}

// TestIsStewardName checks that isStewardName accepts what the regular
// expression it replaces matches, and only that.
func TestIsStewardName(t *testing.T) {
	re := regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	for _, n := range namesLike("abcxyz0189._-A", 63) {
		if got, want := isStewardName(n), re.MatchString(n); got != want {
			t.Errorf("isStewardName(%q) = %t, want %t", n, got, want)
		}
	}
}
