// Command kube-apiserver is the upstream Kubernetes API server, built from
// the k8s.io/kubernetes Go module so the test harness needs no prebuilt
// download. It only calls the upstream command constructor, exactly as
// cmd/kube-apiserver does in the Kubernetes repository.
package main

import (
	"os"
	_ "time/tzdata"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
