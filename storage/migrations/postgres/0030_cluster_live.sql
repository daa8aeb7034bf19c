-- Several nodes on one database show one wallboard and obey one supervisor.
-- node_live: each node's live part of the wallboard (its engine's agents and
-- pacers, its SIP trunks), published about once a second; published_at is the
-- database's clock in Unix milliseconds, so a part is judged fresh by the one
-- clock every node shares. change_versions: a counter per kind of change that
-- other nodes must act on at once, polled cheaply by every node; 'campaigns'
-- grows with every write to a campaign, 'trunks' with every supervisor's trunk
-- action. trunk_services: the state a supervisor chose for each SIP trunk (the
-- carrier is shared: out of service on one node is out on all), with the
-- 'trunks' version that set it. cluster_commands: what a node did at a
-- supervisor's word that every node must do to its own engine (an agent moved
-- between campaigns, calls to numbers just put on a do-not-call list stopped),
-- numbered by the 'commands' version and kept for ten minutes.
CREATE TABLE node_live (
    node_id TEXT PRIMARY KEY,
    published_at BIGINT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE change_versions (
    name TEXT PRIMARY KEY,
    version BIGINT NOT NULL
);
INSERT INTO change_versions(name, version) VALUES ('campaigns', 0), ('trunks', 0), ('commands', 0);
CREATE TABLE trunk_services (
    name TEXT PRIMARY KEY,
    out_of_service INTEGER NOT NULL,
    version BIGINT NOT NULL,
    changed_at BIGINT NOT NULL
);
CREATE TABLE cluster_commands (
    version BIGINT PRIMARY KEY,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
