package main

import (
	"context"

	"github.com/turbina-dialer/turbina/dialer"
	"github.com/turbina-dialer/turbina/web"
)

// runCluster shares this process's live part of the wallboard with the other
// nodes on its database and applies their supervisors' changes here (web.RunCluster),
// until ctx ends. The node is the engine's: the one its leases are held by.
func (a *app) runCluster(ctx context.Context) error {
	return a.web.RunCluster(ctx, web.ClusterOptions{
		Node: a.engine.NodeID(),
		// Only PostgreSQL has other nodes; a SQLite file has one.
		Publish: a.cfg.DatabaseURL != "",
	})
}

// webCluster makes the HTTP server one node of several when the database is
// shared (PostgreSQL): agents' requests go to the node that runs their
// campaign. A SQLite file has one node, which serves every agent itself.
func webCluster(cfg config, e *dialer.Engine) web.Cluster {
	if cfg.DatabaseURL == "" {
		return web.Cluster{}
	}
	return web.Cluster{Node: e.NodeID()}
}
