// Command eks-token-verifier runs aws-iam-authenticator's own token verifier (pkg/token, the code
// its server runs on every token) on one token read from stdin, and prints how far it got as
// JSON: {"stage": "format"} when the verifier refused the token itself, {"stage": "sts"} when it
// accepted it and went on to call STS (which a test makes fail at a local proxy: no AWS is
// reachable), {"stage": "verified"} when STS answered.
//
// usage: eks-token-verifier CLUSTER_ID PARTITION REGION < token
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"sigs.k8s.io/aws-iam-authenticator/pkg/token"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: eks-token-verifier CLUSTER_ID PARTITION REGION < token")
		os.Exit(2)
	}
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	verifier := token.NewVerifier(os.Args[1], os.Args[2], os.Args[3])
	id, err := verifier.Verify(strings.TrimSpace(string(in)))
	out := map[string]string{}
	var formatErr token.FormatError
	var stsErr token.STSError
	switch {
	case err == nil:
		out["stage"] = "verified"
		out["arn"] = id.ARN
	case errors.As(err, &formatErr):
		out["stage"] = "format"
	case errors.As(err, &stsErr):
		out["stage"] = "sts"
	default:
		out["stage"] = "other"
	}
	if err != nil {
		out["error"] = err.Error()
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		os.Exit(2)
	}
}
