//! Planning an approval: placement, the snapshots of the template version and instance
//! size, and the final resources, read-only. `preview` shows it; `approve` records it.

use crate::app::AppError;
use crate::crd::approval::Overrides;
use crate::db;
use crate::db::catalog::{ClusterCandidate, InstanceSizeDetail, TemplateVersionRow};
use crate::db::tickets::TicketDetail;
use crate::domain::Environment;
use crate::domain::placement::{self, ClusterFacts, Needs};
use crate::domain::resources::{FinalResources, ResourceOverrides, SizeShape, final_resources};
use crate::domain::ticket::Operation;
use serde_json::Value;
use sqlx::PgConnection;

/// What an approval would create; `preview` returns it without writing.
#[derive(Debug, Clone)]
pub struct Plan {
    pub eligible_clusters: Vec<String>,
    /// Why each other cluster of the environment is out.
    pub not_eligible: Vec<String>,
    /// What the VMs need of a cluster; checked again under the cluster's row lock.
    pub needs: Needs,
    pub cluster: ClusterCandidate,
    pub template: TemplateVersionRow,
    pub size: InstanceSizeDetail,
    pub resources: FinalResources,
    pub storage_class: Option<String>,
    pub warnings: Vec<String>,
}

pub(super) fn request_str<'a>(request: &'a Value, key: &str) -> Result<&'a str, AppError> {
    request
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| AppError::invalid("tickets.request", format!("{key} is missing")))
}

/// The strings of the probe's capability `key` (`clusters.capabilities`).
fn strings(capabilities: &Value, key: &str) -> Vec<String> {
    capabilities
        .get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn facts(c: &ClusterCandidate) -> Result<ClusterFacts, AppError> {
    Ok(ClusterFacts {
        name: c.name.clone(),
        environment: c
            .environment
            .parse()
            .map_err(|e| AppError::invalid("clusters.environment", e))?,
        enabled: c.enabled,
        health: c
            .health
            .parse()
            .map_err(|e| AppError::invalid("clusters.health", e))?,
        weight: c.scheduling_weight,
        max_vms: c.max_vms.map(i64::from),
        live_vms: c.live_vms,
        gpu_devices: strings(&c.capabilities, "gpus"),
        hugepage_sizes: strings(&c.capabilities, "hugepages"),
    })
}

/// Computes placement, snapshots and final resources for a create ticket.
pub(super) async fn plan(
    conn: &mut PgConnection,
    ticket: &TicketDetail,
    env: Environment,
    overrides: &Overrides,
) -> Result<Plan, AppError> {
    check_override_ranges(overrides)?;
    if ticket.operation != Operation::Create.as_str() {
        return Err(AppError::invalid(
            "ticket",
            format!(
                "a {} ticket has no placement or resources to preview; approve or reject it",
                ticket.operation
            ),
        ));
    }
    let request = &ticket.request;
    let template_name = request_str(request, "template")?;
    let template = db::catalog::template_version(conn, template_name, overrides.template_version)
        .await?
        .ok_or_else(|| {
            AppError::invalid(
                "overrides.templateVersion",
                format!("template {template_name:?} has no such version"),
            )
        })?;
    let size_name = request_str(request, "instanceSize")?;
    let size = db::catalog::instance_size_detail(conn, size_name)
        .await?
        .ok_or_else(|| {
            AppError::invalid(
                "spec.instanceSize",
                format!("instance size {size_name:?} no longer exists"),
            )
        })?;
    let disk = overrides
        .disk_gib
        .or_else(|| {
            request
                .get("diskGiB")
                .and_then(Value::as_i64)
                .map(|d| d as i32)
        })
        .unwrap_or(size.disk_min_gib);
    if disk < size.disk_min_gib || disk > size.disk_max_gib {
        return Err(AppError::invalid(
            "overrides.diskGib",
            format!(
                "{disk} GiB is outside {:?}'s range {}..={} GiB",
                size.name, size.disk_min_gib, size.disk_max_gib
            ),
        ));
    }
    let shape = SizeShape {
        cpu_cores: size.cpu_cores,
        memory_mib: size.memory_mib,
        cpu_overcommit: size.cpu_overcommit,
        memory_overcommit: size.memory_overcommit,
        dedicated_cpu: size.dedicated_cpu,
    };
    let resource_overrides = ResourceOverrides {
        cpu_request_millis: overrides.cpu_request_millis,
        cpu_limit_millis: overrides.cpu_limit_millis,
        memory_request_mib: overrides.memory_request_mib,
        memory_limit_mib: overrides.memory_limit_mib,
    };
    let (resources, warnings) = final_resources(&shape, &resource_overrides, disk, env)
        .map_err(|e| AppError::invalid("overrides", e))?;
    let candidates = db::catalog::cluster_candidates(conn).await?;
    let all_facts = candidates
        .iter()
        .map(facts)
        .collect::<Result<Vec<_>, _>>()?;
    let needs = Needs {
        gpu_devices: size
            .gpus
            .as_array()
            .map(|g| {
                g.iter()
                    .filter_map(|x| {
                        x.get("deviceName")
                            .and_then(Value::as_str)
                            .map(String::from)
                    })
                    .collect()
            })
            .unwrap_or_default(),
        hugepages: size.hugepages_size.clone(),
        count: i64::from(ticket.vm_count),
    };
    let chosen = placement::choose(&all_facts, env, &needs, overrides.cluster.as_deref())
        .map_err(|e| AppError::invalid("overrides.cluster", e))?;
    let mut eligible_clusters = Vec::new();
    let mut not_eligible = Vec::new();
    for facts in &all_facts {
        match placement::check(facts, env, &needs) {
            Ok(()) => eligible_clusters.push(facts.name.clone()),
            Err(placement::Ineligible::OtherEnvironment { .. }) => {}
            Err(why) => not_eligible.push(why.to_string()),
        }
    }
    let cluster = candidates
        .into_iter()
        .find(|c| c.name == chosen.name)
        .expect("chosen from candidates");
    if let Some(class) = &overrides.storage_class {
        let offered = strings(&cluster.capabilities, "storageClasses");
        if !offered.contains(class) {
            return Err(AppError::invalid(
                "overrides.storageClass",
                format!(
                    "cluster {:?} has no storage class {class:?} (it has: {})",
                    cluster.name,
                    if offered.is_empty() {
                        "none".to_string()
                    } else {
                        offered.join(", ")
                    }
                ),
            ));
        }
    }
    let storage_class = overrides
        .storage_class
        .clone()
        .or_else(|| cluster.default_storage_class.clone());
    Ok(Plan {
        eligible_clusters,
        not_eligible,
        needs,
        cluster,
        template,
        size,
        resources,
        storage_class,
        warnings,
    })
}

/// The ranges the Approval CRD's schema declares for overrides, held for the REST API too
/// (which has no schema of its own to enforce them).
fn check_override_ranges(overrides: &Overrides) -> Result<(), AppError> {
    let at_least_one = [
        (
            "overrides.templateVersion",
            overrides.template_version.map(i64::from),
        ),
        ("overrides.cpuRequestMillis", overrides.cpu_request_millis),
        ("overrides.cpuLimitMillis", overrides.cpu_limit_millis),
        ("overrides.memoryRequestMib", overrides.memory_request_mib),
        ("overrides.memoryLimitMib", overrides.memory_limit_mib),
    ];
    for (field, value) in at_least_one {
        if value.is_some_and(|v| v < 1) {
            return Err(AppError::invalid(field, "must be at least 1"));
        }
    }
    if overrides
        .disk_gib
        .is_some_and(|d| !(1..=65536).contains(&d))
    {
        return Err(AppError::invalid(
            "overrides.diskGib",
            "must be between 1 and 65536",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod override_tests {
    use super::*;

    #[test]
    fn overrides_outside_the_crd_ranges_are_refused_naming_the_field() {
        assert!(check_override_ranges(&Overrides::default()).is_ok());
        let cases = [
            (
                Overrides {
                    cpu_request_millis: Some(-5),
                    ..Overrides::default()
                },
                "overrides.cpuRequestMillis",
            ),
            (
                Overrides {
                    cpu_limit_millis: Some(0),
                    ..Overrides::default()
                },
                "overrides.cpuLimitMillis",
            ),
            (
                Overrides {
                    memory_request_mib: Some(0),
                    ..Overrides::default()
                },
                "overrides.memoryRequestMib",
            ),
            (
                Overrides {
                    memory_limit_mib: Some(-1),
                    ..Overrides::default()
                },
                "overrides.memoryLimitMib",
            ),
            (
                Overrides {
                    template_version: Some(0),
                    ..Overrides::default()
                },
                "overrides.templateVersion",
            ),
            (
                Overrides {
                    disk_gib: Some(65537),
                    ..Overrides::default()
                },
                "overrides.diskGib",
            ),
            (
                Overrides {
                    disk_gib: Some(0),
                    ..Overrides::default()
                },
                "overrides.diskGib",
            ),
        ];
        for (overrides, field) in cases {
            match check_override_ranges(&overrides) {
                Err(AppError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        let fine = Overrides {
            cpu_request_millis: Some(1),
            disk_gib: Some(65536),
            ..Overrides::default()
        };
        assert!(check_override_ranges(&fine).is_ok());
    }
}
