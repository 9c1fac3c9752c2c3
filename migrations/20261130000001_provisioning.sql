-- Provisioning (DESIGN §5, §7): what the target clusters report about each VM.
--  * status_reason: why a VM is in its state when that needs saying: KubeVirt's reason
--    (ErrorUnschedulable, ErrImagePull) or ours (NameConflict).
--  * ip_address, node: from the VirtualMachineInstance.
--  * k8s_uid: the uid of the VirtualMachine we applied.
ALTER TABLE vms
    ADD COLUMN status_reason text,
    ADD COLUMN ip_address    text,
    ADD COLUMN node          text,
    ADD COLUMN k8s_uid       text;

CREATE INDEX vms_cluster_live ON vms (cluster_id) WHERE deleted_at IS NULL;
CREATE INDEX vms_ticket ON vms (ticket_id);
