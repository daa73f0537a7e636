module strowger.dev/examples/go-portability

// Go >= 1.27.1 (the bindings' runtime package needs it). An older go
// fetches go1.27.1 for this line when GOTOOLCHAIN=auto (the upstream default);
// under GOTOOLCHAIN=local (set by some distributions' go.env) run
// `GOTOOLCHAIN=auto go test` (sdk/go/README.md, "Toolchain").
go 1.27.1

require strowger.dev/sdk/go v0.0.0

require go.bytecodealliance.org/pkg v0.4.0 // indirect

replace strowger.dev/sdk/go => ../../../sdk/go

replace go.bytecodealliance.org/pkg => ../../../sdk/go/third_party/go-pkg
