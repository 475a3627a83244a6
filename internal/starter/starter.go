// Package starter runs the functions that start long-lived child processes
// (test daemons, a test systemd) on one OS thread that never ends. A child's
// Pdeathsig is sent when the thread that started it ends, not the process:
// the Go runtime ends a thread whenever a goroutine that locked it returns
// (as namespace helpers do), which would kill such a child at a random time.
package starter

import (
	"runtime"
	"sync"
)

var thread = sync.OnceValue(func() chan<- func() {
	calls := make(chan func())
	go func() {
		runtime.LockOSThread() // never unlocked
		for f := range calls {
			f()
		}
	}()
	return calls
})

// Run runs f on the starter thread and returns its error.
func Run(f func() error) error {
	done := make(chan error, 1)
	thread() <- func() { done <- f() }
	return <-done
}
