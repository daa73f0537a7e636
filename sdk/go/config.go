package strowger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

var timeNow = time.Now

// DecodeConfig parses the plugin configuration JSON into v, strictly:
// unknown fields and trailing data are errors (a typo in an operator's
// configuration must refuse the plugin, not be ignored). Empty text is
// treated as "{}".
func DecodeConfig(config string, v any) error {
	if strings.TrimSpace(config) == "" {
		config = "{}"
	}
	dec := json.NewDecoder(strings.NewReader(config))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if dec.More() {
		return fmt.Errorf("config: trailing data after the JSON value")
	}
	var rest bytes.Buffer
	if _, err := rest.ReadFrom(dec.Buffered()); err == nil && strings.TrimSpace(rest.String()) != "" {
		return fmt.Errorf("config: trailing data after the JSON value")
	}
	return nil
}
