module strowger.dev/examples/go-portability

go 1.27.1

require strowger.dev/sdk/go v0.0.0

require go.bytecodealliance.org/pkg v0.4.0 // indirect

replace strowger.dev/sdk/go => ../../../sdk/go

replace go.bytecodealliance.org/pkg => ../../../sdk/go/third_party/go-pkg
