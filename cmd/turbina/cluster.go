package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"

	"github.com/turbina-dialer/turbina/web"
)

// runCluster shares this process's live part of the wallboard with the other
// nodes on its database and applies their supervisors' changes here (web.RunCluster),
// until ctx ends.
func (a *app) runCluster(ctx context.Context) error {
	return a.web.RunCluster(ctx, web.ClusterOptions{
		Node: newNodeID(),
		// Only PostgreSQL has other nodes; a SQLite file has one.
		Publish: a.cfg.DatabaseURL != "",
	})
}

// newNodeID names this process among the nodes: its host, for people reading
// the wallboard, and a random suffix, since each start is a new node.
func newNodeID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "turbina"
	}
	var b [3]byte
	rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}
