"""The distributed mode: shards across processes and hosts, with NATS JetStream as the durable
log between ingest and each shard's one owner (server/cluster/owner.py). Off by default; the
embedded server (one process, local shard files) does not import it."""

from server.cluster.node import Cluster, ClusterNode, cluster_node
from server.cluster.shard_table import ShardTable

__all__ = ["Cluster", "ClusterNode", "ShardTable", "cluster_node"]
