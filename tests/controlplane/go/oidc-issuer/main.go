// Command oidc-issuer is the OpenID Connect provider the control-plane tests log in through: the
// example OpenID Provider of github.com/zitadel/oidc (an OpenID Certified Go library) with its
// username/password login page, served over TLS (kube-apiserver accepts only an https issuer)
// with users and one client given on the command line.
//
// Dex was the first choice, but the module proxy serves no Dex release with a go.mod: only
// v2.13.0+incompatible (2018), which predates its password grant. See tests/controlplane/README.md.
package main

import (
	"flag"
	"log"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	issuer := flag.String("issuer", "", "issuer URL (https://127.0.0.1:<port>)")
	cert := flag.String("tls-cert", "", "PEM certificate for the listener")
	key := flag.String("tls-key", "", "PEM private key for the listener")
	users := flag.String("users", "", "JSON file: {\"<subject>\": {\"ID\": ..., \"Username\": ..., \"Password\": ...}}")
	clientID := flag.String("client-id", "kubernetes", "OAuth client id")
	clientSecret := flag.String("client-secret", "", "OAuth client secret")
	redirects := flag.String("redirect-uris", "", "comma-separated redirect URIs of the client")
	flag.Parse()
	if *issuer == "" || *cert == "" || *key == "" || *users == "" || *clientSecret == "" || *redirects == "" {
		flag.Usage()
		os.Exit(2)
	}

	store, err := storage.StoreFromFile(*users)
	if err != nil {
		log.Fatalf("users: %v", err)
	}
	storage.RegisterClients(storage.WebClient(*clientID, *clientSecret, strings.Split(*redirects, ",")...))
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	router := exampleop.SetupServer(strings.TrimSuffix(*issuer, "/"), storage.NewStorage(store), logger, false)

	server := &http.Server{Addr: *addr, Handler: router}
	logger.Info("oidc-issuer listening", "addr", *addr, "issuer", *issuer)
	if err := server.ListenAndServeTLS(*cert, *key); err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
