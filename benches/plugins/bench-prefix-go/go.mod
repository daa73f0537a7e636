module strowger.dev/benches/bench-prefix-go

go 1.27.1

require strowger.dev/sdk/go v0.0.0

replace strowger.dev/sdk/go => ../../../sdk/go

require go.bytecodealliance.org/pkg v0.4.0 // indirect

replace go.bytecodealliance.org/pkg => ../../../sdk/go/third_party/go-pkg
