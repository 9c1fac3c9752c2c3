//! Final resources of an approved VM: the instance size's shape, its overcommit, and the
//! approver's overrides (docs/architecture.md#vms).

use super::Environment;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq)]
pub struct SizeShape {
    pub cpu_cores: i32,
    pub memory_mib: i64,
    pub cpu_overcommit: f64,
    pub memory_overcommit: f64,
    pub dedicated_cpu: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceOverrides {
    pub cpu_request_millis: Option<i64>,
    pub cpu_limit_millis: Option<i64>,
    pub memory_request_mib: Option<i64>,
    pub memory_limit_mib: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FinalResources {
    pub cpu_request_millis: i64,
    pub cpu_limit_millis: i64,
    pub memory_request_mib: i64,
    pub memory_limit_mib: i64,
    pub disk_gib: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    #[error("{what} request {request} exceeds its limit {limit}")]
    RequestAboveLimit {
        what: &'static str,
        request: i64,
        limit: i64,
    },
    #[error(
        "the instance size has dedicated CPUs, which need the CPU request ({request}m) equal to the limit ({limit}m)"
    )]
    DedicatedNeedsEqual { request: i64, limit: i64 },
}

/// Limits from the size, requests divided by its overcommit (rounded up), then overrides.
/// Overcommit in prod is allowed with a warning.
pub fn final_resources(
    size: &SizeShape,
    overrides: &ResourceOverrides,
    disk_gib: i32,
    environment: Environment,
) -> Result<(FinalResources, Vec<String>), ResourceError> {
    let cpu_limit = overrides
        .cpu_limit_millis
        .unwrap_or(i64::from(size.cpu_cores) * 1000);
    let mem_limit = overrides.memory_limit_mib.unwrap_or(size.memory_mib);
    let divide = |limit: i64, ratio: f64| ((limit as f64) / ratio.max(1.0)).ceil() as i64;
    let cpu_request = overrides
        .cpu_request_millis
        .unwrap_or(divide(cpu_limit, size.cpu_overcommit));
    let mem_request = overrides
        .memory_request_mib
        .unwrap_or(divide(mem_limit, size.memory_overcommit));
    if cpu_request > cpu_limit {
        return Err(ResourceError::RequestAboveLimit {
            what: "CPU",
            request: cpu_request,
            limit: cpu_limit,
        });
    }
    if mem_request > mem_limit {
        return Err(ResourceError::RequestAboveLimit {
            what: "memory",
            request: mem_request,
            limit: mem_limit,
        });
    }
    if size.dedicated_cpu && cpu_request != cpu_limit {
        return Err(ResourceError::DedicatedNeedsEqual {
            request: cpu_request,
            limit: cpu_limit,
        });
    }
    let mut warnings = Vec::new();
    if environment == Environment::Prod && (cpu_request < cpu_limit || mem_request < mem_limit) {
        warnings.push(format!(
            "overcommit in prod: CPU {cpu_request}m of {cpu_limit}m, memory {mem_request}Mi of {mem_limit}Mi requested"
        ));
    }
    let resources = FinalResources {
        cpu_request_millis: cpu_request,
        cpu_limit_millis: cpu_limit,
        memory_request_mib: mem_request,
        memory_limit_mib: mem_limit,
        disk_gib,
    };
    Ok((resources, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(overcommit: f64, dedicated: bool) -> SizeShape {
        SizeShape {
            cpu_cores: 2,
            memory_mib: 4096,
            cpu_overcommit: overcommit,
            memory_overcommit: 1.0,
            dedicated_cpu: dedicated,
        }
    }

    #[test]
    fn requests_follow_overcommit_and_limits_the_size() {
        let (r, w) = final_resources(
            &size(3.0, false),
            &Default::default(),
            20,
            Environment::Test,
        )
        .unwrap();
        assert_eq!(
            (
                r.cpu_request_millis,
                r.cpu_limit_millis,
                r.memory_request_mib,
                r.memory_limit_mib
            ),
            (667, 2000, 4096, 4096)
        );
        assert!(w.is_empty());
    }

    #[test]
    fn overcommit_in_prod_warns() {
        let (_, w) = final_resources(
            &size(2.0, false),
            &Default::default(),
            20,
            Environment::Prod,
        )
        .unwrap();
        assert_eq!(w.len(), 1);
        let (_, w) = final_resources(
            &size(1.0, false),
            &Default::default(),
            20,
            Environment::Prod,
        )
        .unwrap();
        assert!(w.is_empty());
    }

    #[test]
    fn overrides_replace_and_are_checked() {
        let o = ResourceOverrides {
            cpu_request_millis: Some(500),
            cpu_limit_millis: Some(1000),
            ..Default::default()
        };
        let (r, _) = final_resources(&size(1.0, false), &o, 20, Environment::Test).unwrap();
        assert_eq!((r.cpu_request_millis, r.cpu_limit_millis), (500, 1000));
        let o = ResourceOverrides {
            memory_request_mib: Some(9000),
            ..Default::default()
        };
        assert!(matches!(
            final_resources(&size(1.0, false), &o, 20, Environment::Test),
            Err(ResourceError::RequestAboveLimit { what: "memory", .. })
        ));
    }

    #[test]
    fn dedicated_cpu_refuses_request_below_limit() {
        let o = ResourceOverrides {
            cpu_request_millis: Some(1000),
            ..Default::default()
        };
        assert!(matches!(
            final_resources(&size(1.0, true), &o, 20, Environment::Test),
            Err(ResourceError::DedicatedNeedsEqual { .. })
        ));
        assert!(
            final_resources(&size(1.0, true), &Default::default(), 20, Environment::Test).is_ok()
        );
    }
}
