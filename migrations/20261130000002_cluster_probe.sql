-- Cluster probes (docs/architecture.md#vms): what the last probe of each target cluster
-- saw. `health` gains the probe's verdicts (Degraded: reachable, KubeVirt missing or not
-- deployed; Unreachable: refused credentials, timeouts, connection failures); a cluster
-- never probed stays Unknown and is not eligible for placement.
--  * health_reason, health_message: why, e.g. KubeVirtNotInstalled and a sentence.
--  * health_changed_at: when health, reason, version or capabilities last changed (what
--    the Cluster's status shows as lastProbeTime); last_probe_at: the last probe at all.
--  * capabilities (jsonb, existing): gpus, hugepages, storageClasses, defaultStorageClass,
--    featureGates, snapshot, liveMigration, nodes, cpuMillis, memoryBytes.
ALTER TABLE clusters DROP CONSTRAINT clusters_health_check;
UPDATE clusters SET health = 'Degraded' WHERE health = 'Unhealthy';
ALTER TABLE clusters
    ADD CONSTRAINT clusters_health_check
        CHECK (health IN ('Unknown', 'Healthy', 'Degraded', 'Unreachable')),
    ADD COLUMN health_reason     text,
    ADD COLUMN health_message    text,
    ADD COLUMN health_changed_at timestamptz;
