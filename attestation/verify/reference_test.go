package verify

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var (
	digestA = "sha256:" + strings.Repeat("aa", 32)
	digestB = "sha256:" + strings.Repeat("bb", 32)
)

func TestReferenceValuesRoundTrip(t *testing.T) {
	r := &ReferenceValues{}
	for _, e := range []Runtime{{"shim", "v0.2.0", digestB}, {"shim", "v0.1.0", digestA}} {
		if err := r.Add(e.Name, e.Version, e.Digest); err != nil {
			t.Fatal(err)
		}
	}
	// Add replaces the entry with the same digest.
	if err := r.Add("shim", "v0.1.1", digestA); err != nil {
		t.Fatal(err)
	}
	if len(r.Runtimes) != 2 {
		t.Fatalf("%+v", r.Runtimes)
	}
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "runtimes": [
    {
      "name": "shim",
      "version": "v0.1.1",
      "digest": "` + digestA + `"
    },
    {
      "name": "shim",
      "version": "v0.2.0",
      "digest": "` + digestB + `"
    }
  ]
}
`
	if string(b) != want {
		t.Errorf("Marshal:\n%s\nwant\n%s", b, want)
	}
	back, err := ParseReferenceValues(b, "ref.json")
	if err != nil {
		t.Fatal(err)
	}
	if rt, ok := back.Lookup(digestB); !ok || rt.Version != "v0.2.0" {
		t.Errorf("Lookup: %+v %v", rt, ok)
	}
	if _, ok := back.Lookup("sha256:" + strings.Repeat("cc", 32)); ok {
		t.Error("Lookup of an unknown digest")
	}
	b2, _ := back.Marshal()
	if !bytes.Equal(b, b2) {
		t.Error("Marshal is not deterministic")
	}
	if b, _ := (&ReferenceValues{}).Marshal(); string(b) != "{\n  \"runtimes\": []\n}\n" {
		t.Errorf("empty: %q", b)
	}
	var nilRef *ReferenceValues
	if _, ok := nilRef.Lookup(digestA); ok {
		t.Error("nil reference values know a digest")
	}
}

func TestReferenceValuesErrors(t *testing.T) {
	for name, tc := range map[string]struct{ doc, want string }{
		"unknown field": {`{"runtimes":[],"extra":1}`, "ref.json"},
		"bad digest":    {`{"runtimes":[{"version":"v1","digest":"sha256:AB"}]}`, "runtimes[0]: digest"},
		"no version":    {`{"runtimes":[{"digest":"` + digestA + `"}]}`, "version is empty"},
		"space":         {`{"runtimes":[{"version":"v 1","digest":"` + digestA + `"}]}`, "printable"},
		"duplicate":     {`{"runtimes":[{"version":"v1","digest":"` + digestA + `"},{"version":"v2","digest":"` + digestA + `"}]}`, "listed twice"},
		"trailing":      {`{"runtimes":[]} {}`, "after"},
		"not JSON":      {`runtimes = []`, "not valid JSON"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseReferenceValues([]byte(tc.doc), "ref.json")
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "ref.json") {
				t.Errorf("err = %v, want it to name ref.json and say %q", err, tc.want)
			}
		})
	}
	if err := (&ReferenceValues{}).Add("x", "v1", "md5:00"); err == nil {
		t.Error("Add accepted a bad digest")
	}
}

func TestLoadReferenceValuesAndFileDigest(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "keep")
	content := []byte("a Keep binary")
	if err := os.WriteFile(bin, content, 0o755); err != nil {
		t.Fatal(err)
	}
	d, err := FileDigest(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	if d != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Errorf("FileDigest = %s", d)
	}
	r := &ReferenceValues{}
	if err := r.Add("keep", "v0.1.0", d); err != nil {
		t.Fatal(err)
	}
	b, _ := r.Marshal()
	path := filepath.Join(dir, "ref.json")
	os.WriteFile(path, b, 0o644)
	back, err := LoadReferenceValues(path)
	if err != nil {
		t.Fatal(err)
	}
	if rt, ok := back.Lookup(d); !ok || rt.Name != "keep" || back.where() != path {
		t.Errorf("%+v %v", rt, ok)
	}
	if _, err := LoadReferenceValues(filepath.Join(dir, "missing.json")); !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("missing: %v", err)
	}
	if _, err := FileDigest(filepath.Join(dir, "missing")); err == nil {
		t.Error("FileDigest of a missing file")
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}
