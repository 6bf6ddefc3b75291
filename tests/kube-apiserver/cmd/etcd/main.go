// Command etcd is the etcd server at the exact version kube-apiserver's own
// client libraries require (resolved through this module's go.mod), so the
// API server never runs against an older, degraded etcd.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
