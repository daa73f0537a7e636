// Package gc controls the Go garbage collector inside a plugin instance.
//
// Why: when a GC cycle finishes inside cabi_realloc (while the host is
// copying the arguments of a call into the instance), the Go runtime reads
// the wall clock through WASI, which the component model forbids at that
// point; the host then traps the instance ("cannot leave component
// instance"), after about 6,100 calls in practice. So the automatic GC is
// switched off (SetGCPercent(-1)) when the instance starts, and a collection
// runs explicitly at the end of an exported call: every Interval calls, or
// sooner when more than HeapBytes were allocated since the last one. No
// memory limit is set (a limit re-enables automatic collections).
package gc

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
)

// Defaults, tuned so that a typical routing plugin (a few KiB of garbage
// per decision) stays well under 16 MiB of heap and spends little time in
// collections (one 0.3-1 ms collection per Interval calls).
const (
	DefaultInterval  = 256
	DefaultHeapBytes = 4 << 20
)

var (
	interval  uint32 = DefaultInterval
	heapBytes uint64 = DefaultHeapBytes
	calls     uint32
	lastAlloc uint64
	sample    = []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	enabled   bool
	// Collections counts the explicit collections run (for tests/metrics).
	Collections uint64
)

// Disable switches the automatic GC off. The WebAssembly glue calls it when
// the instance starts; native tests leave the GC alone.
func Disable() {
	debug.SetGCPercent(-1)
	enabled = true
	lastAlloc = allocated()
}

// Configure sets the collection interval in calls and the allocation budget
// in bytes between collections; zero keeps a value.
func Configure(everyCalls uint32, budgetBytes uint64) {
	if everyCalls > 0 {
		interval = everyCalls
	}
	if budgetBytes > 0 {
		heapBytes = budgetBytes
	}
}

func allocated() uint64 {
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return sample[0].Value.Uint64()
}

// AfterCall is called at the end of every exported call, inside the export
// (where the instance may use WASI): it collects when due.
func AfterCall() {
	if !enabled {
		return
	}
	calls++
	if calls < interval {
		a := allocated()
		if a-lastAlloc < heapBytes {
			return
		}
	}
	Collect()
}

// Collect runs a collection now (inside an export only).
func Collect() {
	if !enabled {
		return
	}
	runtime.GC()
	calls = 0
	Collections++
	lastAlloc = allocated()
}
