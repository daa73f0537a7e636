module strowger.dev/sdk/go

// Go >= 1.27.1 (the bindings' runtime package needs it). An older go
// fetches go1.27.1 for this line when GOTOOLCHAIN=auto (the upstream default);
// under GOTOOLCHAIN=local (set by some distributions' go.env) run
// `GOTOOLCHAIN=auto go test` (sdk/go/README.md, "Toolchain").
go 1.27.1

require go.bytecodealliance.org/pkg v0.4.0

// Taken from the crates.io package wit-bindgen-go 0.63.0 (the Go proxy does
// not serve it here): sdk/go/tools/gopkg.sh links it.
replace go.bytecodealliance.org/pkg => ./third_party/go-pkg
