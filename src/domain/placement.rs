//! Placement (docs/architecture.md#vms): the approver's cluster or the best eligible one.
//! Eligible means the namespace's environment, enabled, Healthy at its last probe (a cluster
//! never probed is not), room left, and the devices the size needs. Best means highest scheduling weight, then fewest VMs, then name (deterministic).

use super::Environment;

pub use super::cluster_probe::ClusterHealth as Health;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterFacts {
    pub name: String,
    pub environment: Environment,
    pub enabled: bool,
    pub health: Health,
    pub weight: i32,
    pub max_vms: Option<i64>,
    pub live_vms: i64,
    pub gpu_devices: Vec<String>,
    pub hugepage_sizes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Needs {
    pub gpu_devices: Vec<String>,
    pub hugepages: Option<String>,
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ineligible {
    #[error("cluster {cluster:?} is in environment {cluster_env:?}, the namespace in {wanted:?}")]
    OtherEnvironment {
        cluster: String,
        cluster_env: Environment,
        wanted: Environment,
    },
    #[error("cluster {0:?} is disabled")]
    Disabled(String),
    #[error("cluster {0:?} has not been probed yet: its health is unknown")]
    NeverProbed(String),
    #[error("cluster {cluster:?} is {health:?}, not Healthy")]
    NotHealthy { cluster: String, health: Health },
    #[error("cluster {0:?} has scheduling weight 0")]
    ZeroWeight(String),
    #[error("cluster {cluster:?} has no GPU device {device:?}")]
    MissingGpu { cluster: String, device: String },
    #[error("cluster {cluster:?} offers no {size} hugepages")]
    MissingHugepages { cluster: String, size: String },
    #[error("cluster {cluster:?} holds {live} of at most {max} VMs; {count} more do not fit")]
    Full {
        cluster: String,
        live: i64,
        max: i64,
        count: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("cluster {0:?} does not exist")]
    UnknownCluster(String),
    #[error("{0}")]
    Ineligible(Ineligible),
    #[error("no cluster can take these VMs in environment {environment:?}{}", reasons_suffix(.reasons))]
    NoEligibleCluster {
        environment: Environment,
        reasons: Vec<Ineligible>,
    },
}

fn reasons_suffix(reasons: &[Ineligible]) -> String {
    if reasons.is_empty() {
        String::new()
    } else {
        format!(
            ": {}",
            reasons
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )
    }
}

/// Whether `cluster` can take the VMs; the first failing rule otherwise.
pub fn check(
    cluster: &ClusterFacts,
    environment: Environment,
    needs: &Needs,
) -> Result<(), Ineligible> {
    let name = || cluster.name.clone();
    if cluster.environment != environment {
        return Err(Ineligible::OtherEnvironment {
            cluster: name(),
            cluster_env: cluster.environment,
            wanted: environment,
        });
    }
    if !cluster.enabled {
        return Err(Ineligible::Disabled(name()));
    }
    match cluster.health {
        Health::Healthy => {}
        Health::Unknown => return Err(Ineligible::NeverProbed(name())),
        health => {
            return Err(Ineligible::NotHealthy {
                cluster: name(),
                health,
            });
        }
    }
    if let Some(device) = needs
        .gpu_devices
        .iter()
        .find(|d| !cluster.gpu_devices.contains(d))
    {
        return Err(Ineligible::MissingGpu {
            cluster: name(),
            device: device.clone(),
        });
    }
    if let Some(size) = &needs.hugepages
        && !cluster.hugepage_sizes.contains(size)
    {
        return Err(Ineligible::MissingHugepages {
            cluster: name(),
            size: size.clone(),
        });
    }
    if let Some(max) = cluster.max_vms
        && cluster.live_vms + needs.count > max
    {
        return Err(Ineligible::Full {
            cluster: name(),
            live: cluster.live_vms,
            max,
            count: needs.count,
        });
    }
    Ok(())
}

/// Picks the cluster: the override if it is eligible (a zero weight does not stop an explicit
/// choice), else the best eligible one.
pub fn choose<'a>(
    clusters: &'a [ClusterFacts],
    environment: Environment,
    needs: &Needs,
    requested: Option<&str>,
) -> Result<&'a ClusterFacts, PlacementError> {
    if let Some(name) = requested {
        let cluster = clusters
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| PlacementError::UnknownCluster(name.to_string()))?;
        check(cluster, environment, needs).map_err(PlacementError::Ineligible)?;
        return Ok(cluster);
    }
    let mut reasons = Vec::new();
    let mut eligible = Vec::new();
    for c in clusters {
        match check(c, environment, needs) {
            Ok(()) if c.weight == 0 => reasons.push(Ineligible::ZeroWeight(c.name.clone())),
            Ok(()) => eligible.push(c),
            // Other environments are not reasons worth listing to an approver.
            Err(Ineligible::OtherEnvironment { .. }) => {}
            Err(e) => reasons.push(e),
        }
    }
    eligible
        .into_iter()
        .max_by(|a, b| {
            a.weight
                .cmp(&b.weight)
                .then(b.live_vms.cmp(&a.live_vms))
                .then(b.name.cmp(&a.name))
        })
        .ok_or(PlacementError::NoEligibleCluster {
            environment,
            reasons,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, env: Environment, weight: i32, live: i64) -> ClusterFacts {
        ClusterFacts {
            name: name.into(),
            environment: env,
            enabled: true,
            health: Health::Healthy,
            weight,
            max_vms: None,
            live_vms: live,
            gpu_devices: vec![],
            hugepage_sizes: vec![],
        }
    }

    const T: Environment = Environment::Test;
    const P: Environment = Environment::Prod;

    #[test]
    fn never_crosses_environments() {
        let clusters = [c("prod-1", P, 100, 0)];
        assert!(matches!(
            choose(&clusters, T, &Needs::default(), None),
            Err(PlacementError::NoEligibleCluster { .. })
        ));
        assert!(matches!(
            choose(&clusters, T, &Needs::default(), Some("prod-1")),
            Err(PlacementError::Ineligible(
                Ineligible::OtherEnvironment { .. }
            ))
        ));
    }

    #[test]
    fn best_by_weight_then_load_then_name() {
        let clusters = [
            c("a", T, 100, 5),
            c("b", T, 200, 9),
            c("c", T, 200, 3),
            c("d", T, 200, 3),
        ];
        assert_eq!(
            choose(&clusters, T, &Needs::default(), None).unwrap().name,
            "c"
        );
    }

    #[test]
    fn each_rule_excludes() {
        let needs = Needs {
            gpu_devices: vec!["nvidia.com/T4".into()],
            hugepages: Some("1Gi".into()),
            count: 2,
        };
        let mut ok = c("ok", T, 1, 0);
        ok.gpu_devices = vec!["nvidia.com/T4".into()];
        ok.hugepage_sizes = vec!["1Gi".into()];
        ok.max_vms = Some(2);
        assert_eq!(check(&ok, T, &needs), Ok(()));
        let variants: Vec<(ClusterFacts, &str)> = vec![
            (
                ClusterFacts {
                    enabled: false,
                    ..ok.clone()
                },
                "disabled",
            ),
            (
                ClusterFacts {
                    health: Health::Unknown,
                    ..ok.clone()
                },
                "not been probed",
            ),
            (
                ClusterFacts {
                    health: Health::Degraded,
                    ..ok.clone()
                },
                "is Degraded, not Healthy",
            ),
            (
                ClusterFacts {
                    health: Health::Unreachable,
                    ..ok.clone()
                },
                "is Unreachable, not Healthy",
            ),
            (
                ClusterFacts {
                    gpu_devices: vec![],
                    ..ok.clone()
                },
                "GPU",
            ),
            (
                ClusterFacts {
                    hugepage_sizes: vec!["2Mi".into()],
                    ..ok.clone()
                },
                "hugepages",
            ),
            (
                ClusterFacts {
                    live_vms: 1,
                    ..ok.clone()
                },
                "at most 2",
            ),
        ];
        for (cluster, expect) in variants {
            let err = check(&cluster, T, &needs).unwrap_err();
            assert!(err.to_string().contains(expect), "{err}");
        }
    }

    #[test]
    fn zero_weight_is_never_chosen_automatically_but_may_be_named() {
        let clusters = [c("z", T, 0, 0)];
        let err = choose(&clusters, T, &Needs::default(), None).unwrap_err();
        assert!(err.to_string().contains("weight 0"), "{err}");
        assert_eq!(
            choose(&clusters, T, &Needs::default(), Some("z"))
                .unwrap()
                .name,
            "z"
        );
        assert_eq!(
            choose(&clusters, T, &Needs::default(), Some("nope")),
            Err(PlacementError::UnknownCluster("nope".into()))
        );
    }
}
