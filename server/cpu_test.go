package server

import (
	"syscall"
	"time"
)

// ProcessCPU returns the CPU time the process has used so far, user and
// system, on every thread: the garbage collector's and the goroutines a
// request starts included. Benchmarks report it per operation (cpu-ns/op)
// beside ns/op: one request at a time, a request whose work spreads over
// both cores takes less wall time than CPU time, and under load it is the
// CPU time that bounds throughput.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
