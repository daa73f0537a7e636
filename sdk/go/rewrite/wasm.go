//go:build wasip1

package rewrite

import _ "strowger.dev/sdk/go/internal/bindings/rewrite/exports/wit_exports"
