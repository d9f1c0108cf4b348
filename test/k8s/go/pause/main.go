// The pod sandbox process: holds the pod's namespaces, reaps zombies (it is PID 1 when the pod
// shares its PID namespace) and exits on SIGINT/SIGTERM, like Kubernetes' pause.c.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version keys the build cache and the image tag (build-tools.sh reads it from this line).
const version = "v3.10.0-kvstore.1"

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "-v" || os.Args[1] == "--version") {
		fmt.Println("pause", version)
		return
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "warning: pause should be the first process")
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			fmt.Fprintf(os.Stderr, "shutting down, got signal %v\n", s)
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
