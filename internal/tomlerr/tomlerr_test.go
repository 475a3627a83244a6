package tomlerr

import (
	"bytes"
	"errors"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

func decode(doc string) error {
	var v struct {
		Args []string `toml:"args"`
		Env  struct {
			A string `toml:"a"`
		} `toml:"env"`
	}
	dec := toml.NewDecoder(bytes.NewReader([]byte(doc))).DisallowUnknownFields()
	return dec.Decode(&v)
}

func TestUnknownKeys(t *testing.T) {
	keys, ok := UnknownKeys(decode("args = []\nargz = [\"x\"]\n[env]\nb = \"1\"\n"))
	if want := `"argz" (line 2, column 1), "env.b" (line 4, column 1)`; !ok || keys != want {
		t.Errorf("UnknownKeys = %q, %v; want %q", keys, ok, want)
	}
	if _, ok := UnknownKeys(errors.New("other")); ok {
		t.Error("UnknownKeys of another error: ok")
	}
}

func TestPosition(t *testing.T) {
	line, col, key, ok := Position(decode("# x\n\nargs = [1, 2]\n"))
	if !ok || line != 3 || col == 0 || key != "args" {
		t.Errorf("Position = %d, %d, %q, %v; want line 3 and key args", line, col, key, ok)
	}
	if line, _, key, ok := Position(decode("# x\nargs = [\"a\" \"b\"]\n")); !ok || line != 2 || key != "" {
		t.Errorf("Position of invalid TOML = line %d, key %q, %v; want line 2, no key", line, key, ok)
	}
	if _, _, _, ok := Position(errors.New("other")); ok {
		t.Error("Position of another error: ok")
	}
}
