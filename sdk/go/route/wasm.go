//go:build wasip1

package route

import _ "strowger.dev/sdk/go/internal/bindings/route/exports/wit_exports"
