//go:build wasip1

package portability

import _ "strowger.dev/sdk/go/internal/bindings/portability/exports/wit_exports"
