package keep

import (
	"strings"
	"testing"
)

func TestCheckNullStdio(t *testing.T) {
	if err := CheckNullStdio([]string{"stdin", "stdout", "stderr"}); err != nil {
		t.Error(err)
	}
	if err := CheckNullStdio([]string{"stdout", "fd3"}); err == nil || !strings.Contains(err.Error(), `"fd3"`) {
		t.Errorf("unknown stream: %v", err)
	}
}
