package strowger

import "strowger.dev/sdk/go/internal/gc"

// SetGCInterval tunes the SDK's garbage collection inside the switch: a
// collection runs at the end of a decision every everyCalls decisions, or
// sooner once budgetBytes were allocated since the last one (defaults 256
// calls, 4 MiB; zero keeps a value). Plugins that allocate a lot per
// decision may lower the budget to keep their instance small; the host's
// memory cap for the plugin must exceed the Go runtime's base (about 5 MiB)
// plus the budget plus the live data.
func SetGCInterval(everyCalls uint32, budgetBytes uint64) { gc.Configure(everyCalls, budgetBytes) }
