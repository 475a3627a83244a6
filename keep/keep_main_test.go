package keep

import (
	"reflect"
	"testing"
)

func TestWithPWD(t *testing.T) {
	for _, c := range []struct {
		env  []string
		cwd  string
		want []string
	}{
		{[]string{"A=1"}, "/data", []string{"A=1", "PWD=/data"}},
		{[]string{"PWD=/mine", "A=1"}, "/data", []string{"PWD=/mine", "A=1"}},
		{[]string{"A=1"}, "", []string{"A=1"}},
		{nil, "/", []string{"PWD=/"}},
	} {
		env := append([]string(nil), c.env...)
		if got := withPWD(env, c.cwd); !reflect.DeepEqual(got, c.want) {
			t.Errorf("withPWD(%q, %q) = %q, want %q", c.env, c.cwd, got, c.want)
		}
		if !reflect.DeepEqual(env, c.env) {
			t.Errorf("withPWD changed its input: %q", env)
		}
	}
}
