//! The `-o table` view of each answer: the text printed to stdout, built as a string. Every
//! string from the server goes through [`terminal_safe`]: [`table`] escapes its cells, and
//! the `Field: value` lines escape each value.

use crate::output::{age, dash, table, terminal_safe};
use chrono::{DateTime, Utc};
use shepherd_types::api::{AuditRecord, Orphan, Preview, Snapshot, Ticket, Vm, Whoami};

/// `whoami`: the user, its groups, its bindings and its resource roles.
pub fn whoami(me: &Whoami) -> String {
    let mut out = format!(
        "Username: {}\nGroups:   {}\n",
        terminal_safe(&me.username),
        terminal_safe(&me.groups.join(", "))
    );
    let rows: Vec<Vec<String>> = me
        .bindings
        .iter()
        .map(|b| {
            vec![
                b.role.clone(),
                b.system.clone().unwrap_or_else(|| "global".into()),
                b.allowed_environments.join(","),
                b.permissions.join(","),
            ]
        })
        .collect();
    out.push('\n');
    out.push_str(&table(
        &["ROLE", "SCOPE", "ENVIRONMENTS", "PERMISSIONS"],
        &rows,
    ));
    if !me.system_roles.is_empty() {
        let rows: Vec<Vec<String>> = me
            .system_roles
            .iter()
            .map(|r| vec![r.system.clone(), r.role.clone()])
            .collect();
        out.push('\n');
        out.push_str(&table(&["SYSTEM", "RESOURCE ROLE"], &rows));
    }
    out
}

/// `pending` and `tickets`: one line per ticket.
pub fn tickets(tickets: &[Ticket], now: DateTime<Utc>) -> String {
    let rows: Vec<Vec<String>> = tickets
        .iter()
        .map(|t| {
            vec![
                t.id.to_string(),
                t.operation.clone(),
                t.status.clone(),
                t.requester.clone(),
                format!("{}/{}", t.system, t.service),
                t.environment.clone(),
                t.vm_count.to_string(),
                age(t.created_at, now),
            ]
        })
        .collect();
    table(
        &[
            "TICKET",
            "TYPE",
            "STATUS",
            "REQUESTER",
            "SERVICE",
            "ENV",
            "VMS",
            "AGE",
        ],
        &rows,
    )
}

/// `ticket` and `approve`: one ticket with its VMs.
pub fn ticket(t: &Ticket) -> String {
    let mut out = format!(
        "Ticket:     {}\nType:       {}\nStatus:     {}\nRequester:  {}\nService:    {}/{}\n\
         Namespace:  {} ({})\nVMs:        {}\nReason:     {}\n",
        t.id,
        terminal_safe(&t.operation),
        terminal_safe(&t.status),
        terminal_safe(&t.requester),
        terminal_safe(&t.system),
        terminal_safe(&t.service),
        terminal_safe(&t.namespace),
        terminal_safe(&t.environment),
        t.vm_count,
        terminal_safe(&t.reason)
    );
    if let Some(approver) = &t.approver {
        out.push_str(&format!(
            "Decided by: {}: {}\n",
            terminal_safe(approver),
            terminal_safe(t.decision_reason.as_deref().unwrap_or_default())
        ));
    }
    if let Some(vm) = &t.vm {
        out.push_str(&format!("VM:         {}\n", terminal_safe(vm)));
    }
    if let Some(cluster) = &t.cluster {
        out.push_str(&format!("Cluster:    {}\n", terminal_safe(cluster)));
    }
    if !t.vms.is_empty() {
        let rows: Vec<Vec<String>> = t
            .vms
            .iter()
            .map(|v| vec![v.name.clone(), dash(&v.cluster), v.status.clone()])
            .collect();
        out.push('\n');
        out.push_str(&table(&["VM", "CLUSTER", "STATUS"], &rows));
    }
    out
}

/// `preview`: what approving would create.
pub fn preview(p: &Preview) -> String {
    let r = &p.resources;
    let mut out = format!(
        "Ticket:            {}\n\
         Cluster:           {}\n\
         Eligible clusters: {}\n\
         Storage class:     {}\n\
         Template version:  {}\n\
         Instance size:     {}\n\
         CPU:               {}m request, {}m limit\n\
         Memory:            {}Mi request, {}Mi limit\n\
         Disk:              {}Gi\n\
         VM names:          {}\n",
        p.ticket_id,
        terminal_safe(&p.cluster),
        terminal_safe(&p.eligible_clusters.join(", ")),
        terminal_safe(&dash(&p.storage_class)),
        p.template_version,
        terminal_safe(&p.instance_size),
        r.cpu_request_millis,
        r.cpu_limit_millis,
        r.memory_request_mib,
        r.memory_limit_mib,
        r.disk_gib,
        terminal_safe(&p.vm_names.join(", ")),
    );
    for why in &p.not_eligible {
        out.push_str(&format!("Not eligible:      {}\n", terminal_safe(why)));
    }
    for w in &p.warnings {
        out.push_str(&format!("Warning:           {}\n", terminal_safe(w)));
    }
    out
}

/// `vms`: one line per VM, the status with its reason.
pub fn vms(vms: &[Vm], now: DateTime<Utc>) -> String {
    let rows: Vec<Vec<String>> = vms
        .iter()
        .map(|v| {
            let status = match &v.status_reason {
                Some(reason) => format!("{} ({reason})", v.status),
                None => v.status.clone(),
            };
            vec![
                v.name.clone(),
                status,
                format!("{}/{}", v.system, v.service),
                v.environment.clone(),
                dash(&v.cluster),
                dash(&v.ip),
                dash(&v.node),
                age(v.created_at, now),
            ]
        })
        .collect();
    table(
        &[
            "NAME", "STATUS", "SERVICE", "ENV", "CLUSTER", "IP", "NODE", "AGE",
        ],
        &rows,
    )
}

/// `audit`: one line per record, times in UTC to the second.
pub fn audit(records: &[AuditRecord]) -> String {
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                r.occurred_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                r.action.clone(),
                r.actor.clone(),
                format!("{}/{}", r.resource_type, r.resource_name),
                dash(&r.environment),
            ]
        })
        .collect();
    table(&["ID", "TIME", "ACTION", "ACTOR", "RESOURCE", "ENV"], &rows)
}

pub fn orphans(orphans: &[Orphan], now: DateTime<Utc>) -> String {
    let rows: Vec<Vec<String>> = orphans
        .iter()
        .map(|o| {
            vec![
                o.cluster.clone(),
                o.environment.clone(),
                o.namespace.clone(),
                o.name.clone(),
                age(o.first_seen_at, now),
            ]
        })
        .collect();
    table(&["CLUSTER", "ENV", "NAMESPACE", "NAME", "SEEN"], &rows)
}

pub fn snapshots(snapshots: &[Snapshot], now: DateTime<Utc>) -> String {
    let rows: Vec<Vec<String>> = snapshots
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.vm.clone(),
                s.cluster.clone(),
                if s.ready { "true" } else { "false" }.to_string(),
                age(s.created_at, now),
            ]
        })
        .collect();
    table(&["NAME", "VM", "CLUSTER", "READY", "AGE"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shepherd_types::api::{EffectiveBinding, Resources, SystemRole};
    use uuid::Uuid;

    #[test]
    fn whoami_lists_bindings_then_resource_roles() {
        let me = Whoami {
            username: "bob".into(),
            groups: vec!["approvers".into(), "system:authenticated".into()],
            bindings: vec![EffectiveBinding {
                role: "approver".into(),
                system: None,
                allowed_environments: vec!["test".into(), "prod".into()],
                permissions: vec!["approval:decide".into()],
            }],
            system_roles: vec![SystemRole {
                system: "shop".into(),
                role: "owner".into(),
            }],
        };
        assert_eq!(
            whoami(&me),
            "Username: bob\nGroups:   approvers, system:authenticated\n\n\
             ROLE       SCOPE    ENVIRONMENTS   PERMISSIONS\n\
             approver   global   test,prod      approval:decide\n\n\
             SYSTEM   RESOURCE ROLE\nshop     owner\n"
        );
    }

    fn ticket_with(reason: &str, approver: Option<&str>) -> Ticket {
        Ticket {
            id: Uuid::nil(),
            operation: "create".into(),
            status: "Rejected".into(),
            requester: "alice".into(),
            environment: "test".into(),
            system: "shop".into(),
            service: "web".into(),
            namespace: "test-shop".into(),
            vm_count: 1,
            reason: reason.into(),
            request: serde_json::Value::Null,
            approver: approver.map(Into::into),
            decision_reason: Some("no\u{1b}]8;;https://evil.example\u{7}link".into()),
            decided_at: None,
            cluster: None,
            vm: None,
            created_at: Utc::now(),
            vms: vec![],
        }
    }

    #[test]
    fn ticket_fields_from_the_server_are_escaped() {
        let t = ticket_with(
            "need\u{1b}[2J\u{1b}[Hit\r\nStatus:     Approved",
            Some("bob\u{9b}1m"),
        );
        let text = ticket(&t);
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text}");
        assert!(
            text.contains("Reason:     need\\x1b[2J\\x1b[Hit\\r\\nStatus:     Approved\n"),
            "{text}"
        );
        assert!(
            text.contains("Decided by: bob\\u{9b}1m: no\\x1b]8;;https://evil.example\\x07link\n"),
            "{text}"
        );
        // One line per field: the reason's newline did not start a line of its own.
        assert_eq!(text.lines().filter(|l| l.starts_with("Status:")).count(), 1);
    }

    #[test]
    fn table_views_escape_names_from_the_server() {
        let t = Ticket {
            requester: "mallory\u{1b}[8m".into(),
            ..ticket_with("ok", None)
        };
        let text = tickets(&[t], Utc::now());
        assert!(text.contains("mallory\\x1b[8m"), "{text}");
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text}");
    }

    #[test]
    fn preview_prints_one_field_a_line() {
        let p = Preview {
            ticket_id: Uuid::nil(),
            eligible_clusters: vec!["target-1".into(), "target-2".into()],
            not_eligible: vec!["cluster \"target-3\" is Degraded, not Healthy".into()],
            cluster: "target-1".into(),
            storage_class: None,
            template_version: 3,
            instance_size: "small".into(),
            resources: Resources {
                cpu_request_millis: 500,
                cpu_limit_millis: 1000,
                memory_request_mib: 1024,
                memory_limit_mib: 2048,
                disk_gib: 20,
            },
            vm_names: vec!["shop-web-1".into()],
            warnings: vec!["prod needs two approvers".into()],
        };
        assert_eq!(
            preview(&p),
            "Ticket:            00000000-0000-0000-0000-000000000000\n\
             Cluster:           target-1\n\
             Eligible clusters: target-1, target-2\n\
             Storage class:     -\n\
             Template version:  3\n\
             Instance size:     small\n\
             CPU:               500m request, 1000m limit\n\
             Memory:            1024Mi request, 2048Mi limit\n\
             Disk:              20Gi\n\
             VM names:          shop-web-1\n\
             Not eligible:      cluster \"target-3\" is Degraded, not Healthy\n\
             Warning:           prod needs two approvers\n"
        );
    }
}
