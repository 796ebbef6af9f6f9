// compose-config loads a Compose file the way `docker compose config` does
// (compose-go, the library behind Compose v2): schema validation,
// interpolation, YAML anchors and merges, profile selection, normalisation.
// It prints the resolved project as YAML, or the loader's error and exit 1.
// No Docker engine is needed; test/deploy-compose.test.ts builds and runs it
// because Debian 12 packages only the Compose v1 client.
//
//	go run . PROFILE FILE...
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: compose-config PROFILE FILE...")
		os.Exit(2)
	}
	opts, err := cli.NewProjectOptions(os.Args[2:], cli.WithOsEnv, cli.WithProfiles([]string{os.Args[1]}))
	if err == nil {
		var project *types.Project
		if project, err = opts.LoadProject(context.Background()); err == nil {
			var out []byte
			if out, err = project.MarshalYAML(); err == nil {
				_, err = os.Stdout.Write(out)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
