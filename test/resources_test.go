package test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// memoryLimit is the container memory limit of the resource tests: 64 MiB,
// less than compiling a Go module takes (about 90 MB), more than a Go module
// needs to run.
const memoryLimit = 64 << 20

// cgroupDir is the directory of cgroup path in the hierarchy of the memory
// controller: /sys/fs/cgroup/memory on v1 and hybrid hosts, the unified
// hierarchy on v2 hosts.
func cgroupDir(path string) string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return filepath.Join("/sys/fs/cgroup", path)
	}
	return filepath.Join("/sys/fs/cgroup/memory", path)
}

// metricValues parses the table `ctr tasks metrics` prints into metric →
// value.
func metricValues(out string) map[string]string {
	values := map[string]string{}
	for _, line := range readLines(out) {
		if f := strings.Fields(line); len(f) >= 2 {
			values[f[0]] = f[1]
		}
	}
	return values
}

// TestResources checks what the kernel and the engine do with a container's
// resources: the memory limit caps the workload's linear memory with a
// clear message, the Keep runs in the container's cgroup with its limits,
// `ctr tasks metrics` and `ctr tasks ps` report it, SIGTERM stops it, and
// deleting the task removes the cgroup.
func TestResources(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		limit := []string{"--memory-limit", strconv.Itoa(memoryLimit)}

		t.Run("memory-limit-exceeded", func(t *testing.T) {
			ref := importWasmImage(t, d, ns, "docker.io/enarx-test/alloc:latest", buildGoWasm(t, "alloc"), false)
			stdout, stderr, exit := runWasm(t, d, ns, limit, ref, uniqueID("alloc"))
			// As the kernel's OOM kill of a process at its limit: 137.
			if exit != 137 {
				t.Errorf("exit %d, want 137 (memory limit exceeded, as an OOM kill)\nstderr: %s", exit, tailLines(stderr, 20))
			}
			want := "memory limit " + strconv.Itoa(memoryLimit) + " bytes exceeded"
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr does not say %q:\n%s", want, tailLines(stderr, 20))
			}
			for _, line := range readLines(stderr) {
				if strings.Contains(line, want) {
					t.Logf("stderr: %s", line)
				}
			}
			// The workload got close to the cap: the Keep's own memory is
			// not taken from it, and the kernel did not kill the Keep first.
			if !strings.Contains(stdout, "allocated 48 MiB") {
				t.Errorf("the workload stopped early:\n%s", tailLines(stdout, 5))
			}
		})

		t.Run("memory-limit-respected", func(t *testing.T) {
			ref := importWasmImage(t, d, ns, "docker.io/enarx-test/alloc:latest", buildGoWasm(t, "alloc"), false)
			stdout, stderr, exit := runWasm(t, d, ns, limit, ref, uniqueID("alloc"), "/app.wasm", "16")
			if exit != 0 || !strings.Contains(stdout, "done, holding 16 blocks") {
				t.Errorf("a workload within its limit: exit %d\nstdout: %s\nstderr: %s", exit, tailLines(stdout, 5), tailLines(stderr, 20))
			}
		})

		t.Run("cgroup-metrics-ps-sigterm", func(t *testing.T) {
			ref := importWasmImage(t, d, ns, "docker.io/enarx-test/sleep:latest", buildGoWasm(t, "sleep"), false)
			id := uniqueID("res")
			d.mustCtr(t, ns, append(append([]string{"run", "-d", "--runtime", runtimeEnarx}, limit...), ref, id, "/app.wasm", "1h")...)
			waitStatus(t, d, ns, id, "RUNNING")

			// ctr gives the container the cgroup /<namespace>/<id>.
			dir := cgroupDir("/" + ns + "/" + id)
			lines := readLines(d.mustCtr(t, ns, "tasks", "ps", id))
			if len(lines) != 2 {
				t.Fatalf("tasks ps %s: %q, want one process", id, lines)
			}
			pid := strings.Fields(lines[1])[0]
			procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
			if err != nil {
				t.Fatalf("the container's cgroup: %v", err)
			}
			if got := readLines(string(procs)); len(got) != 1 || got[0] != pid {
				t.Errorf("%s/cgroup.procs = %q, want the Keep's pid %s (tasks ps)", dir, got, pid)
			}

			metrics := d.mustCtr(t, ns, "tasks", "metrics", id)
			t.Logf("tasks metrics %s:\n%s", id, metrics)
			values := metricValues(metrics)
			usage, ok := values["memory.usage_in_bytes"] // cgroup v1
			if !ok {
				usage = values["memory.usage"] // cgroup v2
			}
			if n, err := strconv.ParseUint(usage, 10, 64); err != nil || n == 0 {
				t.Errorf("tasks metrics: memory usage %q, want > 0; metrics: %v", usage, values)
			}
			if n, err := strconv.ParseUint(values["pids.current"], 10, 64); err != nil || n == 0 {
				t.Errorf("tasks metrics: pids.current %q, want > 0", values["pids.current"])
			}
			if l, ok := values["memory.limit_in_bytes"]; ok {
				// The container's limit, and room for the Keep itself.
				if n, err := strconv.ParseUint(l, 10, 64); err != nil || n < memoryLimit || n > 4*memoryLimit {
					t.Errorf("tasks metrics: memory.limit_in_bytes %q, want a little above %d", l, memoryLimit)
				}
			}

			began := time.Now()
			d.mustCtr(t, ns, "tasks", "kill", id)
			waitStatus(t, d, ns, id, "STOPPED")
			t.Logf("SIGTERM to STOPPED in %v", time.Since(began).Round(time.Millisecond))
			// ctr tasks rm warns of the task's non-zero status.
			_, stderr, exit := d.ctr(t, ns, "tasks", "rm", id)
			if exit != 0 || !strings.Contains(stderr, "exit with non-zero exit code 143") {
				t.Errorf("tasks rm after SIGTERM: exit %d, stderr %q; want a warning of the task's status 143", exit, stderr)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("cgroup %s after tasks rm: %v, want it gone", dir, err)
			}
			d.mustCtr(t, ns, "containers", "rm", id)
			assertNoLeftovers(t, id)
			assertNoTaskState(t, d, ns, id)
		})
	})
}
