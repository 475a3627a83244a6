package guest

import (
	"encoding/json"
	"reflect"

	"github.com/enarx/containerd-shim-enarx/keep"
)

// warmJSON encodes and decodes a keep.Request, and encodes a keep.Response,
// with every pointer, slice and map of them set: encoding/json makes its
// encoder and decoder of each type (a walk of the type by reflection) the
// first time it meets it, which a Keep's config, its first message, would
// otherwise pay for. A spare Keep does it while it waits for a container.
// It reports nothing: a failure only leaves that work to the config.
func warmJSON() {
	defer func() { _ = recover() }()
	var req keep.Request
	fillValue(reflect.ValueOf(&req).Elem(), 0)
	if b, err := json.Marshal(&req); err == nil {
		_ = json.Unmarshal(b, new(keep.Request))
	}
	var resp keep.Response
	fillValue(reflect.ValueOf(&resp).Elem(), 0)
	_, _ = json.Marshal(&resp)
}

// maxFillDepth bounds fillValue on types that contain themselves.
const maxFillDepth = 12

// fillValue sets v, and what it holds, to values with every pointer made,
// every slice of one element and every map of one entry (byte slices and
// interfaces stay empty).
func fillValue(v reflect.Value, depth int) {
	if depth > maxFillDepth || !v.CanSet() {
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		fillValue(v.Elem(), depth+1)
	case reflect.Struct:
		for i := range v.NumField() {
			fillValue(v.Field(i), depth+1)
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return
		}
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fillValue(s.Index(0), depth+1)
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMapWithSize(v.Type(), 1)
		e := reflect.New(v.Type().Elem()).Elem()
		fillValue(e, depth+1)
		m.SetMapIndex(reflect.New(v.Type().Key()).Elem(), e)
		v.Set(m)
	}
}
