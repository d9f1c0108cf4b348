//go:build tools

// Package tools pins the docker compose CLI in this wrapper module (built by ../build-compose.sh).
package tools

import _ "github.com/docker/compose/v5/cmd"
