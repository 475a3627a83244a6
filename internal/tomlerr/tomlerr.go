// Package tomlerr says where a go-toml decoding error is, so that every
// strict TOML document of the project (node policy, verifier policy, Steward
// config, Enarx.toml) names its unknown keys and the line of a bad value the
// same way. Each caller writes its own message around it: what the document
// is, and how to fix it.
package tomlerr

import (
	"errors"
	"fmt"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// UnknownKeys lists the keys a strict decoder (DisallowUnknownFields) did
// not know, with their positions: `"argz" (line 2, column 1)`, joined by
// ", ". ok is false when err is not go-toml's *toml.StrictMissingError.
func UnknownKeys(err error) (keys string, ok bool) {
	var strict *toml.StrictMissingError
	if !errors.As(err, &strict) || len(strict.Errors) == 0 {
		return "", false
	}
	list := make([]string, len(strict.Errors))
	for i := range strict.Errors {
		e := &strict.Errors[i]
		row, col := e.Position()
		list[i] = fmt.Sprintf("%q (line %d, column %d)", strings.Join(e.Key(), "."), row, col)
	}
	return strings.Join(list, ", "), true
}

// Position returns the line and column of a *toml.DecodeError (invalid
// TOML, or a value of the wrong type) and the dotted key it concerns, ""
// when none. ok is false for any other error.
func Position(err error) (line, column int, key string, ok bool) {
	var de *toml.DecodeError
	if !errors.As(err, &de) {
		return 0, 0, "", false
	}
	line, column = de.Position()
	return line, column, strings.Join(de.Key(), "."), true
}
