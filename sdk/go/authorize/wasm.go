//go:build wasip1

package authorize

import _ "strowger.dev/sdk/go/internal/bindings/authorize/exports/wit_exports"
