package guest

import (
	"math/rand"
	"regexp"
	"testing"
)

// TestIsCheckName checks that isCheckName accepts what the regular
// expression it replaces matches, and only that.
func TestIsCheckName(t *testing.T) {
	re := regexp.MustCompile(`^[a-z0-9._]{1,40}$`)
	names := []string{"", "a", "a\n", "é", "x-y", "a.b_c"}
	for b := 0; b < 256; b++ {
		names = append(names, string([]byte{byte(b)}), "a"+string([]byte{byte(b)}))
	}
	const alphabet = "abcxyz0189._-A"
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 5000; i++ {
		n := make([]byte, r.Intn(43))
		for j := range n {
			if r.Intn(20) == 0 {
				n[j] = byte(r.Intn(256))
			} else {
				n[j] = alphabet[r.Intn(len(alphabet))]
			}
		}
		names = append(names, string(n))
	}
	for _, n := range names {
		if got, want := isCheckName(n), re.MatchString(n); got != want {
			t.Errorf("isCheckName(%q) = %t, want %t", n, got, want)
		}
	}
}
